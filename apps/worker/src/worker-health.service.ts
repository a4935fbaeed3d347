import { createServer, type Server } from 'node:http';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { MikroORM } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { SchemaService } from '@aperture/database/schema.service.js';
import { Metrics } from '@aperture/metrics/metrics.js';
import { probeDatabase, probeRedis, withTimeout } from '@aperture/health/probes.js';
import { REDIS } from '@aperture/redis/redis.module.js';
import { JobRunner } from './job-runner.service.js';
import { ModelAgent } from './models/model-agent.service.js';

type Check = { status: 'up' | 'down'; message?: string };

/**
 * The worker's own probes on a small port: /health/live (the event loop answers) and
 * /health/ready (database, Redis, schema current, preloaded models loaded, consuming), and its Prometheus metrics on
 * /metrics unless METRICS=off (the port has no sign-in: keep it inside the cluster). Plain node:http: the worker has
 * no HTTP app.
 */
@Injectable()
export class WorkerHealth implements OnApplicationShutdown {
  private readonly logger = new Logger('WorkerHealth');
  private server: Server | null = null;
  private shuttingDown = false;

  constructor(
    private readonly orm: MikroORM,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly schema: SchemaService,
    private readonly runner: JobRunner,
    private readonly models: ModelAgent,
    private readonly metrics: Metrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async readiness(): Promise<{ ok: boolean; details: Record<string, Check> }> {
    const run = async (p: Promise<unknown>, what: string): Promise<Check> => {
      try {
        await withTimeout(p, 1000, what);
        return { status: 'up' };
      } catch (e) {
        return { status: 'down', message: (e as Error).message };
      }
    };
    const [database, redis] = await Promise.all([run(probeDatabase(this.orm), 'database'), run(probeRedis(this.redis), 'redis')]);
    const preload = this.models.preloadState();
    const details: Record<string, Check> = {
      database,
      redis,
      migrations: (await this.schema.isCurrent()) ? { status: 'up' } : { status: 'down', message: 'pending migrations' },
      models: preload.ok ? { status: 'up' } : { status: 'down', message: preload.message },
      consumer:
        this.runner.isStarted && !this.shuttingDown
          ? { status: 'up' }
          : { status: 'down', message: this.shuttingDown ? 'shutting down' : 'not started' },
    };
    return { ok: Object.values(details).every((c) => c.status === 'up'), details };
  }

  listen(port: number, host = '0.0.0.0'): Promise<number> {
    this.server = createServer((req, res) => {
      const send = (code: number, body: unknown): void => {
        res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
      };
      if (req.method !== 'GET') return send(405, { status: 'error', message: 'method not allowed' });
      if (req.url === '/health/live') return send(200, { status: 'ok' });
      if (req.url === '/metrics' && this.config.exposure.metrics !== 'off') {
        void this.metrics.text().then(
          (text) => res.writeHead(200, { 'Content-Type': this.metrics.contentType, 'Cache-Control': 'no-store' }).end(text),
          (e: Error) => send(500, { status: 'error', message: e.message }),
        );
        return;
      }
      if (req.url === '/health/ready' || req.url === '/health') {
        void this.readiness().then(
          (r) => send(r.ok ? 200 : 503, { status: r.ok ? 'ok' : 'error', details: r.details }),
          (e: Error) => send(503, { status: 'error', message: e.message }),
        );
        return;
      }
      send(404, { status: 'error', message: 'not found' });
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => {
        const addr = this.server!.address();
        const actual = typeof addr === 'object' && addr ? addr.port : port;
        this.logger.log(`Worker health on http://${host}:${actual}/health/live`);
        resolve(actual);
      });
    });
  }

  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  async onApplicationShutdown(): Promise<void> {
    this.shuttingDown = true;
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
