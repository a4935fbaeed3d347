import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ConfigModule } from '@aperture/config/config.module.js';
import { DatabaseModule } from '@aperture/database/database.module.js';
import { LoggingModule } from '@aperture/logging/logging.module.js';
import { MetricsModule } from '@aperture/metrics/metrics.module.js';
import { QueueModule } from '@aperture/queue/queue.module.js';
import { RedisModule } from '@aperture/redis/redis.module.js';
import { StorageModule } from '@aperture/storage/storage.module.js';
import { manifestProviders } from '@aperture/models/manifest.provider.js';
import { ModelRegistry } from '@aperture/models/model-registry.js';
import { modelPipelineProviders } from '@aperture/models/pipelines.js';
import { BoothXrayHandler } from './booth/booth-xray.handler.js';
import { JobRunner } from './job-runner.service.js';
import { ModelAgent } from './models/model-agent.service.js';
import { ModelInferHandler } from './models/model-infer.handler.js';
import { ProjectDetectHandler } from './projects/project-detect.handler.js';
import { QrBatchHandler } from './qr/qr-batch.handler.js';
import { ImageEmbeddingHandler } from './segment/image-embedding.handler.js';
import { SegmentPromptHandler } from './segment/segment-prompt.handler.js';
import { SegmentAutoHandler } from './segment-auto/segment-auto.handler.js';
import { SegmentObjectsHandler } from './segment-objects/segment-objects.handler.js';
import { FragmentsTaskHandler } from './tasks/fragments-task.handler.js';
import { ImageJobSupport } from './tasks/image-job-support.js';
import { PredictTaskHandler } from './tasks/predict-task.handler.js';
import { StorageSweepService } from './storage-sweep.service.js';
import { WorkerHealth } from './worker-health.service.js';
import { WorkerMetrics } from './worker-metrics.service.js';

/** The worker: Bull consumers and their handlers. No controllers: it serves no HTTP routes (its health port is separate). */
@Module({
  imports: [ConfigModule, LoggingModule, DatabaseModule, RedisModule, StorageModule, QueueModule, MetricsModule, DiscoveryModule],
  providers: [
    ...manifestProviders,
    ModelAgent,
    // The pipelines run on the agent's registry.
    { provide: ModelRegistry, useFactory: (agent: ModelAgent) => agent.registry, inject: [ModelAgent] },
    ...modelPipelineProviders,
    JobRunner,
    StorageSweepService,
    WorkerHealth,
    WorkerMetrics,
    QrBatchHandler,
    ModelInferHandler,
    ImageJobSupport,
    PredictTaskHandler,
    FragmentsTaskHandler,
    ProjectDetectHandler,
    SegmentPromptHandler,
    SegmentAutoHandler,
    ImageEmbeddingHandler,
    SegmentObjectsHandler,
    BoothXrayHandler,
  ],
  exports: [JobRunner, WorkerHealth, ModelAgent],
})
export class WorkerModule {}
