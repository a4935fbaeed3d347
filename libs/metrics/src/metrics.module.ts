import { Module } from '@nestjs/common';
import { Metrics } from './metrics.js';
import { QueueMetrics } from './queue-metrics.js';

/**
 * The process's metrics registry and the queue-depth gauges every process reports. The API and the worker both
 * import it; in the single-process mode Nest makes it once, so both sides record into one registry.
 */
@Module({
  providers: [Metrics, QueueMetrics],
  exports: [Metrics, QueueMetrics],
})
export class MetricsModule {}
