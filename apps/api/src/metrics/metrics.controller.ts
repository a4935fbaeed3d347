import { Controller, Get, Header, Res } from '@nestjs/common';
import {
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ExposedBy, Public } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { Metrics } from '@aperture/metrics/metrics.js';
import { NoRateLimit } from '../throttle/principal-throttler.guard.js';

/** Prometheus metrics of this process (the worker serves its own on its probe port). */
@ApiTags('health')
@Public()
@NoRateLimit()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: Metrics) {}

  @Get()
  @ExposedBy('metrics')
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'Prometheus metrics: HTTP request durations, queue depth, job counts; in the single-process mode also the worker',
    description:
      'Prometheus text exposition format. METRICS decides who may read it: public, admin (an admin credential) or off (404). ' +
      'Production default: admin.',
  })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'The metrics, in the Prometheus text format (version 0.0.4)', schema: { type: 'string' } })
  @ApiUnauthorizedResponse({ description: 'METRICS=admin and no valid credential', type: ProblemDto })
  @ApiForbiddenResponse({ description: 'METRICS=admin and the caller is not an admin', type: ProblemDto })
  @ApiNotFoundResponse({ description: 'METRICS=off', type: ProblemDto })
  async getMetrics(@Res({ passthrough: true }) res: Response): Promise<string> {
    const text = await this.metrics.text();
    res.type(this.metrics.contentType);
    return text;
  }
}
