import { Module } from '@nestjs/common';
import { MetricsModule } from '@aperture/metrics/metrics.module.js';
import { MetricsController } from './metrics.controller.js';

@Module({ imports: [MetricsModule], controllers: [MetricsController] })
export class ApiMetricsModule {}
