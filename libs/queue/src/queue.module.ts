import { BullModule } from '@nestjs/bull';
import { Global, Module } from '@nestjs/common';
import type { AppConfig } from '../../config/src/config.js';
import { APP_CONFIG } from '../../config/src/config.module.js';
import { QUEUES } from './job-registry.js';
import { JobsService } from './jobs.service.js';

/** Bull on the shared Redis, the queues of the registry, and the service that enqueues and cancels jobs. */
@Global()
@Module({
  imports: [
    BullModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({
        redis: c.redis.url,
        prefix: `${c.redis.prefix}:bull`,
        settings: {
          lockDuration: c.jobs.lockDurationMs,
          lockRenewTime: Math.floor(c.jobs.lockDurationMs / 2),
          stalledInterval: c.jobs.stalledIntervalMs,
          maxStalledCount: c.jobs.maxStalledCount,
        },
      }),
    }),
    BullModule.registerQueue(...QUEUES.map((name) => ({ name }))),
  ],
  providers: [JobsService],
  exports: [BullModule, JobsService],
})
export class QueueModule {}
