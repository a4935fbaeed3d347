import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { SessionHost } from '@aperture/inference/session-host.js';
import { InjectManifest, MODELS_DIR } from '@aperture/models/manifest.provider.js';
import type { ModelEntry, ModelManifest } from '@aperture/models/manifest.js';
import { InstalledModel } from '@aperture/database/entities/installed-model.entity.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
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
  /** Installs in progress by model name (a job and the control message may ask at once). */
  private readonly installing = new Map<string, Promise<boolean>>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @InjectManifest() private readonly manifest: ModelManifest,
    @Inject(MODELS_DIR) dir: string,
    private readonly em: EntityManager,
    @Inject(STORAGE) private readonly storage: StoragePort,
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
      // Every job's model lookup (ModelRunner.resolve): an installed model whose announcement this worker missed.
      fetchMissing: (name) => this.ensure(name),
      log: (level, message) => this.logger[level](message),
    });
    const unknown = config.models.preload.filter((n) => !this.registry.has(n));
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
    await this.loadInstalled();
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

  /** The models installed through the API, from the database and storage (at boot). */
  private async loadInstalled(): Promise<void> {
    let rows: InstalledModel[];
    try {
      rows = await this.em.fork().find(InstalledModel, {}, { orderBy: { installedAt: 'asc' } });
    } catch (e) {
      this.logger.warn(`Cannot read the installed models: ${(e as Error).message}`);
      return;
    }
    for (const row of rows) await this.install(row).catch((e: Error) => this.logger.error(`Installed model ${row.name}: ${e.message}`));
  }

  /**
   * Makes sure an installed model is known here (a job may arrive before the control message, or the message may have
   * been lost): true when the registry has the model, after fetching it from the database (unless its row is given) and
   * storage if needed. Every job's model lookup comes here for a name the registry lacks (the registry's fetchMissing).
   */
  async ensure(name: string, known?: InstalledModel): Promise<boolean> {
    if (this.registry.has(name)) return true;
    const pending = this.installing.get(name);
    if (pending) return pending;
    const run = (async (): Promise<boolean> => {
      const row = known ?? (await this.em.fork().findOne(InstalledModel, { name }));
      if (!row) return false;
      await this.install(row);
      return this.registry.has(name);
    })().finally(() => this.installing.delete(name));
    this.installing.set(name, run);
    return run;
  }

  /** Copies an installed model's files from storage to the local cache (once per installation) and adds it. */
  private async install(row: InstalledModel): Promise<void> {
    if (this.registry.has(row.name)) return;
    const entry = structuredClone(row.entry) as unknown as ModelEntry;
    entry.source = 'installed';
    const dir = join(this.config.models.cacheDir, row.id);
    await mkdir(dir, { recursive: true });
    for (const f of entry.files) {
      const stored = row.files.find((x) => x.role === f.role);
      if (!stored) throw new Error(`no stored ${f.role} file`);
      const local = join(dir, `${f.role}.onnx`);
      const have = await stat(local).catch(() => null);
      if (have?.size !== stored.size_bytes) {
        const part = `${local}.${process.pid}.part`;
        await pipeline(await this.storage.read(stored.key), createWriteStream(part));
        await rename(part, local);
      }
      f.path = local;
    }
    if (this.registry.has(row.name)) return;
    this.registry.add(entry);
    this.manifest.models.push(entry);
    this.logger.log(`Installed model ${row.name} (${entry.kind}, ${entry.contract}) added`);
  }

  /** Forgets an installed model that was removed: unloads it, drops its local copies. */
  private async uninstall(name: string): Promise<void> {
    const entry = this.manifest.models.find((m) => m.name === name);
    if (!entry || entry.source !== 'installed') return;
    await this.registry.remove(name);
    this.manifest.models.splice(this.manifest.models.indexOf(entry), 1);
    const dir = entry.files[0] ? join(entry.files[0].path, '..') : null;
    if (dir?.startsWith(this.config.models.cacheDir)) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    this.logger.log(`Installed model ${name} removed`);
  }

  private async handle(msg: ControlMessage): Promise<void> {
    if (this.stopped) return;
    if (msg.op === 'install' || msg.op === 'remove') {
      try {
        if (msg.op === 'install') {
          // A model of that name installed before (a removal this worker missed) is replaced by the row's.
          const row = await this.em.fork().findOne(InstalledModel, { name: msg.model });
          const current = this.manifest.models.find((m) => m.name === msg.model && m.source === 'installed');
          const digests = (files: { sha256: string }[]): string => files.map((f) => f.sha256).join(',');
          if (row && current && digests(current.files) !== digests(row.files)) await this.uninstall(msg.model);
          if (row) await this.ensure(msg.model, row);
        } else await this.uninstall(msg.model);
      } catch (e) {
        this.logger.error(`Model ${msg.model}: ${msg.op} failed: ${(e as Error).message}`);
      }
      await this.publish();
      return;
    }
    if (!this.registry.has(msg.model)) return;
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
