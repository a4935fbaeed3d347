import { Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG, ConfigModule } from '@aperture/config/config.module.js';
import { ProblemDetailsFilter } from '@aperture/common/problem.filter.js';
import { DatabaseModule } from '@aperture/database/database.module.js';
import { LoggingModule } from '@aperture/logging/logging.module.js';
import { QueueModule } from '@aperture/queue/queue.module.js';
import { REDIS, RedisModule } from '@aperture/redis/redis.module.js';
import { StorageModule } from '@aperture/storage/storage.module.js';
import { AuthGuard } from './auth/auth.guard.js';
import { AuthModule } from './auth/auth.module.js';
import { EmbeddingModule } from './embedding/embedding.module.js';
import { BoothModule } from './booth/booth.module.js';
import { HealthModule } from './health/health.module.js';
import { ImagesModule } from './images/images.module.js';
import { JobsModule } from './jobs/jobs.module.js';
import { ApiMetricsModule } from './metrics/metrics.module.js';
import { ModelsModule } from './models/models.module.js';
import { ModelRepositoryModule } from './models/model-repository.controller.js';
import { ProjectsModule } from './projects/projects.module.js';
import { SegmentAutoModule } from './segment-auto/segment-auto.module.js';
import { SegmentBatchesModule } from './segment-batches/segment-batches.module.js';
import { SegmentObjectsModule } from './segment-objects/segment-objects.module.js';
import { QrModule } from './qr/qr.module.js';
import { SegmentModule } from './segment/segment.module.js';
import { DriveModule } from './storage/drive.module.js';
import { TasksModule } from './tasks/tasks.module.js';
import { UsersModule } from './users/users.module.js';
import { PrincipalThrottlerGuard } from './throttle/principal-throttler.guard.js';
import { RedisThrottlerStorage } from './throttle/redis-throttler.storage.js';

/** The HTTP API: controllers, guards, DTOs. It enqueues work and never runs a model. */
@Module({
  imports: [
    ConfigModule,
    LoggingModule,
    DatabaseModule,
    RedisModule,
    StorageModule,
    QueueModule,
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG, REDIS],
      useFactory: (c: AppConfig, redis: Redis) => ({
        throttlers: [
          { name: 'minute', ttl: 60_000, limit: c.rateLimit.perMinute },
          { name: 'hour', ttl: 3_600_000, limit: c.rateLimit.perHour },
        ],
        storage: new RedisThrottlerStorage(redis, c.redis.prefix),
      }),
    }),
    AuthModule,
    UsersModule,
    HealthModule,
    ApiMetricsModule,
    JobsModule,
    ModelsModule,
    ModelRepositoryModule,
    QrModule,
    ImagesModule,
    TasksModule,
    ProjectsModule,
    DriveModule,
    SegmentModule,
    SegmentAutoModule,
    EmbeddingModule,
    SegmentBatchesModule,
    SegmentObjectsModule,
    BoothModule,
  ],
  providers: [
    { provide: APP_FILTER, useClass: ProblemDetailsFilter },
    { provide: APP_GUARD, useExisting: AuthGuard },
    { provide: APP_GUARD, useClass: PrincipalThrottlerGuard },
  ],
})
export class ApiModule {}
