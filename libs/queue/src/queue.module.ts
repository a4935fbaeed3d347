import { BullModule } from '@nestjs/bull';
import { Global, Module } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { QUEUES } from './job-registry.js';
import { JobWaiter } from './job-events.js';
import { JobLifecycle } from './job-lifecycle.js';
import { JobQueues } from './job-queues.js';
import { JobsService } from './jobs.service.js';
import { StorageSweeper } from './storage-sweeper.js';

/**
 * Bull on the shared Redis, the queues of the registry, the job lifecycle (every status transition), the API's facade
 * on it, and the waiter on their completion.
 */
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
  providers: [JobQueues, JobLifecycle, JobsService, JobWaiter, StorageSweeper],
  exports: [BullModule, JobQueues, JobLifecycle, JobsService, JobWaiter, StorageSweeper],
})
export class QueueModule {}
