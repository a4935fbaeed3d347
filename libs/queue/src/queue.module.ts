import { BullModule } from '@nestjs/bull';
import { Global, Module } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { QUEUES } from './job-registry.js';
import { JobWaiter } from './job-events.js';
import { JobsService } from './jobs.service.js';

/** Bull on the shared Redis, the queues of the registry, the service that enqueues and cancels jobs, and the waiter on their completion. */
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
  providers: [JobsService, JobWaiter],
  exports: [BullModule, JobsService, JobWaiter],
})
export class QueueModule {}
