import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { SessionHost } from '@aperture/inference/session-host.js';
import { InjectManifest, MODELS_DIR } from '@aperture/models/manifest.provider.js';
import type { ModelManifest } from '@aperture/models/manifest.js';
import {
  type ControlMessage,
  ModelControlKeys,
  parseControlMessage,
  removeWorkerDoc,
  type WorkerDoc,
  type WorkerModelState,
  writeWorkerDoc,
} from '@aperture/models/model-control.js';
import { ModelRegistry } from '@aperture/models/model-registry.js';
import { createRedis, REDIS } from '@aperture/redis/redis.module.js';

/**
 * The worker's side of model management: owns the SessionHost (ONNX sessions in worker threads) and the
 * ModelRegistry, preloads MODELS_PRELOAD, acts on the API's load/unload requests from the Redis control channel,
 * and publishes this worker's model states and statistics (heartbeat with a TTL).
 */
@Injectable()
export class ModelAgent implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('Models');
  readonly workerId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  readonly host: SessionHost;
  readonly registry: ModelRegistry;
  private readonly keys: ModelControlKeys;
  private readonly startedAt = new Date().toISOString();
  private readonly lastRequest = new Map<string, WorkerModelState['last_request']>();
  private subscriber: Redis | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private publishTimer: NodeJS.Timeout | null = null;
  private preloadDone = false;
  private stopped = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @InjectManifest() manifest: ModelManifest,
    @Inject(MODELS_DIR) dir: string,
  ) {
    this.keys = new ModelControlKeys(config.redis.prefix);
    this.host = new SessionHost({ poolSize: config.inference.threads });
    this.registry = new ModelRegistry(manifest, this.host, {
      dir,
      sessionOptions: {
        intraOpNumThreads: config.inference.intraOpThreads,
        graphOptimizationLevel: config.inference.graphOptimization,
        executionProviders: [config.inference.executionProvider],
      },
      memoryBudgetBytes: config.models.memoryBudgetMb * 1024 * 1024,
      warmup: config.models.warmup,
      onChange: () => this.schedulePublish(),
      log: (level, message) => this.logger[level](message),
    });
    const unknown = config.models.preload.filter((n) => !this.registry.names().includes(n));
    if (unknown.length)
      throw new Error(
        `MODELS_PRELOAD names models that are not in the manifest: ${unknown.join(', ')} (known: ${this.registry.names().join(', ')})`,
      );
  }

  async onApplicationBootstrap(): Promise<void> {
    this.subscriber = createRedis(this.config.redis.url, 'aperture-models-control');
    this.subscriber.on('message', (_channel: string, raw: string) => {
      const msg = parseControlMessage(raw);
      if (msg) void this.handle(msg);
    });
    await this.subscriber.subscribe(this.keys.channel);
    await this.publish();
    const every = Math.max(1000, (this.config.models.stateTtlSeconds * 1000) / 3);
    this.heartbeat = setInterval(() => void this.publish(), every);
    this.heartbeat.unref();
    // Preload in the background: the worker's /health/ready waits for it.
    void Promise.allSettled(this.config.models.preload.map((n) => this.registry.load(n))).then(() => {
      this.preloadDone = true;
      void this.publish();
    });
  }

  /** For /health/ready: every preloaded model is loaded. */
  preloadState(): { ok: boolean; message?: string } {
    const pending = this.config.models.preload.filter((n) => this.registry.status(n).state !== 'loaded');
    if (pending.length === 0) return { ok: true };
    const detail = pending.map(
      (n) => `${n}: ${this.registry.status(n).state}${this.registry.status(n).reason ? ` (${this.registry.status(n).reason})` : ''}`,
    );
    return { ok: false, message: `${this.preloadDone ? 'preload failed' : 'preloading'}: ${detail.join('; ')}` };
  }

  private async handle(msg: ControlMessage): Promise<void> {
    if (this.stopped || !this.registry.names().includes(msg.model)) return;
    let ok = true;
    let error: string | null = null;
    try {
      if (msg.op === 'load') await this.registry.load(msg.model);
      else await this.registry.unload(msg.model);
    } catch (e) {
      ok = false;
      error = (e as Error).message;
    }
    this.lastRequest.set(msg.model, { id: msg.request_id, op: msg.op, ok, error });
    await this.publish();
  }

  doc(): WorkerDoc {
    const models: Record<string, WorkerModelState> = {};
    for (const s of this.registry.statuses()) models[s.name] = { ...s, last_request: this.lastRequest.get(s.name) ?? null };
    return {
      worker_id: this.workerId,
      hostname: hostname(),
      pid: process.pid,
      started_at: this.startedAt,
      updated_at: new Date().toISOString(),
      rss_bytes: process.memoryUsage.rss(),
      models_memory_bytes: this.registry.memoryBytes(),
      models,
    };
  }

  private schedulePublish(): void {
    if (this.publishTimer || this.stopped) return;
    this.publishTimer = setTimeout(() => {
      this.publishTimer = null;
      void this.publish();
    }, 50);
  }

  async publish(): Promise<void> {
    if (this.stopped) return;
    try {
      await writeWorkerDoc(this.redis, this.keys, this.doc(), this.config.models.stateTtlSeconds);
    } catch (e) {
      this.logger.warn(`Cannot publish model state: ${(e as Error).message}`);
    }
  }

  /** Leaves the control plane while the shared Redis connection is still open. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.publishTimer) clearTimeout(this.publishTimer);
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
    await removeWorkerDoc(this.redis, this.keys, this.workerId).catch(() => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.registry.close().catch(() => undefined);
    await this.host.close().catch(() => undefined);
  }
}
