import { Controller, Get, Inject } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import {
  DiskHealthIndicator,
  HealthCheck,
  HealthCheckService,
  HealthIndicatorService,
  type HealthCheckResult,
  type HealthIndicatorResult,
} from '@nestjs/terminus';
import { MikroORM } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { ExposedBy, Public } from '@aperture/common/auth.decorators.js';
import { SchemaService } from '@aperture/database/schema.service.js';
import { probeDatabase, probeQueue, probeRedis } from '@aperture/health/probes.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { REDIS } from '@aperture/redis/redis.module.js';
import { NoRateLimit } from '../throttle/principal-throttler.guard.js';

const TIMEOUT_MS = 1000;

const healthSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ok', 'error', 'shutting_down'] },
    info: { type: 'object', additionalProperties: true },
    error: { type: 'object', additionalProperties: true },
    details: { type: 'object', additionalProperties: true },
  },
};

/** Kubernetes probes: live (process only), ready (dependencies and schema), and a detailed report. */
@ApiTags('health')
@Public()
@NoRateLimit()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly disk: DiskHealthIndicator,
    private readonly orm: MikroORM,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly jobs: JobsService,
    private readonly schema: SchemaService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private database(): PromiseLike<HealthIndicatorResult> {
    return this.indicators
      .check('database')
      .attempt(() => probeDatabase(this.orm).then(() => ({ dialect: this.config.database.dialect })))
      .withTimeout(TIMEOUT_MS);
  }

  private redisCheck(): PromiseLike<HealthIndicatorResult> {
    return this.indicators
      .check('redis')
      .attempt(() => probeRedis(this.redis))
      .withTimeout(TIMEOUT_MS);
  }

  private migrations(): Promise<HealthIndicatorResult> {
    const s = this.indicators.check('migrations');
    return this.schema.isCurrent().then((ok) => (ok ? s.up() : s.down({ message: 'pending migrations' })));
  }

  @Get()
  @ExposedBy('healthDetails')
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOperation({
    summary: 'Detailed health: database, Redis, queues, disk',
    description: 'HEALTH_DETAILS decides who may read it: public, admin (an admin credential) or off (404). Production default: admin.',
  })
  @ApiOkResponse({ description: 'Everything is up', schema: healthSchema })
  @ApiServiceUnavailableResponse({ description: 'Something is down', schema: healthSchema })
  getHealth(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.database(),
      () => this.redisCheck(),
      () => this.migrations(),
      ...this.jobs.queueNames.map(
        (name) => () =>
          this.indicators
            .check(`queue:${name}`)
            .attempt(() => probeQueue(this.jobs.queue(name)))
            .withTimeout(TIMEOUT_MS),
      ),
      () => this.disk.checkStorage('disk', { path: this.config.dataDir, thresholdPercent: 0.98 }),
    ]);
  }

  @Get('live')
  @ApiOperation({ summary: 'Liveness: the process answers (no dependency is checked)' })
  @ApiOkResponse({ description: 'Alive', schema: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } } })
  getLiveness(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOperation({ summary: 'Readiness: database and Redis reachable, migrations applied' })
  @ApiOkResponse({ description: 'Ready', schema: healthSchema })
  @ApiServiceUnavailableResponse({ description: 'Not ready', schema: healthSchema })
  getReadiness(): Promise<HealthCheckResult> {
    return this.health.check([() => this.database(), () => this.redisCheck(), () => this.migrations()]);
  }
}
