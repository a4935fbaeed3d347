import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest, notFound, ProblemException } from '@aperture/common/problem.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { ImageRejectedError, inspectImage } from '@aperture/imaging/inspect.js';
import { imageProblem } from '../images/upload.js';
import type { UploadedImage } from '../images/images.service.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { InferOptions } from '@aperture/queue/job-registry.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { REDIS } from '@aperture/redis/redis.module.js';
import { InjectManifest } from '@aperture/models/manifest.provider.js';
import type { ModelEntry, ModelKind, ModelManifest } from '@aperture/models/manifest.js';
import { type ControlMessage, ModelControlKeys, publishControl, readWorkerDocs, type WorkerDoc, type WorkerModelState } from '@aperture/models/model-control.js';
import type { ModelStats, PhaseStats } from '@aperture/models/model-status.js';
import {
  type ModelControlResponseDto,
  type ModelInferAcceptedDto,
  type ModelInferFormDto,
  type ModelDetailDto,
  type ModelStatsDto,
  type ModelStatsResponseDto,
  type ModelSummaryDto,
  type ModelWorkerStateDto,
  PhaseStatsDto,
  round,
} from './models.dto.js';

const MB = 1024 * 1024;

const PHASES = ['success', 'failure', 'queue', 'preprocess', 'compute', 'postprocess'] as const;

/**
 * The API's view of the models: static facts from the manifest, live state and statistics from the workers'
 * documents in Redis. It never opens a model; load and unload are requests published to every worker.
 */
@Injectable()
export class ModelsService {
  private readonly keys: ModelControlKeys;

  constructor(
    @InjectManifest() private readonly manifest: ModelManifest,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {
    this.keys = new ModelControlKeys(config.redis.prefix);
  }

  entry(name: string): ModelEntry {
    const m = this.manifest.models.find((x) => x.name === name);
    if (!m) throw notFound(`Model ${name} does not exist.`);
    return m;
  }

  entryOrNull(name: string): ModelEntry | null {
    return this.manifest.models.find((x) => x.name === name) ?? null;
  }

  /** A model's numeric id: its 1-based position in the manifest (stable while the manifest's order is). */
  idOf(m: ModelEntry): number {
    return this.manifest.models.indexOf(m) + 1;
  }

  /**
   * A model chosen by numeric id or by name among the given kinds, or the first model of those kinds when none is
   * named. Anything else is a 400 whose detail lists the valid (id, name, kind) triples, as seed 001 did.
   */
  resolve(ref: string | number | undefined | null, kinds: readonly ModelKind[], field: string, accept: (m: ModelEntry) => boolean = () => true): ModelEntry {
    const valid = this.manifest.models.filter((m) => kinds.includes(m.kind) && accept(m));
    if (ref === undefined || ref === null || ref === '') {
      const first = valid[0];
      if (!first) throw badRequest(`No ${kinds.join(' or ')} model is installed for ${field}.`);
      return first;
    }
    const key = String(ref).trim();
    const found = /^\d+$/.test(key) ? valid.find((m) => this.idOf(m) === Number(key)) : valid.find((m) => m.name === key);
    if (!found) {
      const triples = valid.map((m) => `(${this.idOf(m)}, '${m.name}', '${m.kind}')`).join(', ');
      throw badRequest(`Model id was not correct. Choose from (id, name, kind) [${triples}].`, {
        errors: [{ field, messages: [`unknown ${kinds.join('/')} model "${key}"`] }],
        valid_models: valid.map((m) => ({ id: this.idOf(m), name: m.name, kind: m.kind })),
      });
    }
    return found;
  }

  workers(): Promise<WorkerDoc[]> {
    return readWorkerDocs(this.redis, this.keys, this.config.models.stateTtlSeconds);
  }

  async list(kind?: ModelKind): Promise<ModelSummaryDto[]> {
    const docs = await this.workers();
    return this.manifest.models.filter((m) => !kind || m.kind === kind).map((m) => this.summary(m, docs));
  }

  async detail(name: string): Promise<ModelDetailDto> {
    const m = this.entry(name);
    return {
      ...this.summary(m, await this.workers()),
      files: m.files.map((f) => ({ role: f.role, path: f.path, sha256: f.sha256, size_bytes: f.size_bytes, inputs: f.inputs, outputs: f.outputs, metadata: f.metadata })),
      preprocess: m.preprocess,
      metrics: m.metrics,
    };
  }

  async stats(name: string): Promise<ModelStatsResponseDto> {
    this.entry(name);
    const docs = await this.workers();
    const per = docs.filter((d) => d.models[name]).map((d) => ({ worker_id: d.worker_id, stats: d.models[name]!.stats }));
    const total = per.reduce<ModelStats>(
      (acc, { stats }) => {
        acc.inference_count += stats.inference_count;
        for (const p of PHASES) {
          acc[p].count += stats[p].count;
          acc[p].total_ms += stats[p].total_ms;
        }
        if (stats.last_inference_at && (!acc.last_inference_at || stats.last_inference_at > acc.last_inference_at)) acc.last_inference_at = stats.last_inference_at;
        return acc;
      },
      { inference_count: 0, success: zero(), failure: zero(), queue: zero(), preprocess: zero(), compute: zero(), postprocess: zero(), last_inference_at: null },
    );
    return { name, total: statsDto(total), workers: per.map((w) => ({ worker_id: w.worker_id, stats: statsDto(w.stats) })) };
  }

  /**
   * Asks every live worker to load or unload the model and waits (up to waitMs) until each has answered.
   * Throws 503 when no worker is running, 422 MODEL_ERROR when a worker could not load it.
   */
  async control(op: ControlMessage['op'], name: string, waitMs: number): Promise<ModelControlResponseDto> {
    this.entry(name);
    const before = await this.workers();
    if (before.length === 0) throw noWorker();
    const requestId = randomUUID();
    const receivers = await publishControl(this.redis, this.keys, { op, model: name, request_id: requestId });
    if (receivers === 0) throw noWorker();
    const asked = new Set(before.map((d) => d.worker_id));
    const deadline = Date.now() + waitMs;
    const poll = async (): Promise<{ docs: WorkerDoc[]; settled: boolean }> => {
      const docs = (await this.workers()).filter((d) => asked.has(d.worker_id));
      return { docs, settled: docs.every((d) => d.models[name]?.last_request?.id === requestId) };
    };
    let { docs, settled } = await poll();
    while (!settled && Date.now() < deadline) {
      await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
      ({ docs, settled } = await poll());
    }
    const workers = docs.map((d) => {
      const s = d.models[name];
      const done = s?.last_request?.id === requestId;
      return { ...workerState(d, s), done, ok: done && s!.last_request!.ok, error: done ? s!.last_request!.error : null };
    });
    const failed = workers.filter((w) => w.done && !w.ok);
    if (settled && failed.length > 0) {
      throw new ProblemException(422, 'MODEL_ERROR', `Model ${name} could not be ${op}ed on ${failed.length} of ${workers.length} worker(s): ${failed[0]!.error}`, { workers });
    }
    return { name, op, request_id: requestId, settled, workers };
  }

  /**
   * Queues one model run on an uploaded image (validated by content here; the worker decodes it again). The image
   * is stored under the job's input prefix and deleted with the job.
   */
  async infer(name: string, file: UploadedImage | undefined, form: ModelInferFormDto, p: Principal): Promise<ModelInferAcceptedDto> {
    const m = this.entry(name);
    if (m.kind === 'classifier') throw badRequest(`Model ${name} classifies detected primitives, not images: create a prediction task with it instead.`);
    if (!file) throw badRequest('Send the image as the multipart field "image".', { errors: [{ field: 'image', messages: ['image is required'] }] });
    await this.validateImage(file.buffer);
    const options: InferOptions = {};
    if (form.conf !== undefined) options.conf = form.conf;
    if (form.iou !== undefined) options.iou = form.iou;
    if (form.max_det !== undefined) options.max_det = form.max_det;
    if (m.kind === 'sam') {
      if (form.points !== undefined) options.points = parsePoints(form.points);
      if (form.box !== undefined) options.box = parseBox(form.box);
      if (!options.points?.length && !options.box) throw badRequest('A SAM model needs a prompt: "points" (JSON array of {x, y, label}) and/or "box" (JSON {x1, y1, x2, y2}).');
    }
    const em = this.em.fork();
    const owner = p.userId ? em.getReference(User, p.userId) : null;
    const id = randomUUID();
    const imageKey = StorageKeys.input(id, 'image');
    const job = this.jobs.build(em, 'model.infer', owner, { model: name, imageKey, options }, id);
    await this.storage.put(imageKey, file.buffer);
    try {
      await em.persist(job).flush();
    } catch (e) {
      await this.storage.deletePrefix(StorageKeys.inputPrefix(job.id)).catch(() => undefined);
      throw e;
    }
    await this.jobs.enqueue(job);
    return { job_id: job.id, status: job.status, job_url: `/api/v1/jobs/${job.id}`, result_url: `/api/v1/jobs/${job.id}/result` };
  }

  private async validateImage(buf: Buffer): Promise<void> {
    try {
      await inspectImage(buf, this.config.images.maxSide);
    } catch (e) {
      if (e instanceof ImageRejectedError) throw imageProblem(e);
      throw e;
    }
  }

  private summary(m: ModelEntry, docs: WorkerDoc[]): ModelSummaryDto {
    const workers = docs.filter((d) => d.models[m.name]).map((d) => workerState(d, d.models[m.name]));
    const states = workers.map((w) => w.state);
    const state = states.includes('failed')
      ? 'failed'
      : states.includes('loading')
        ? 'loading'
        : states.length > 0 && states.every((s) => s === 'loaded')
          ? 'loaded'
          : 'available';
    return {
      id: this.idOf(m),
      name: m.name,
      kind: m.kind,
      task: m.task,
      contract: m.contract,
      version: m.version,
      description: m.description,
      size_mb: m.size_mb,
      labels: m.labels,
      input_size: m.input_size,
      state,
      memory_mb: round(workers.reduce((a, w) => a + w.memory_mb, 0)),
      workers,
    };
  }
}

const zero = (): PhaseStats => ({ count: 0, total_ms: 0 });

function statsDto(s: ModelStats): ModelStatsDto {
  return {
    inference_count: s.inference_count,
    success: PhaseStatsDto.from(s.success),
    failure: PhaseStatsDto.from(s.failure),
    queue: PhaseStatsDto.from(s.queue),
    preprocess: PhaseStatsDto.from(s.preprocess),
    compute: PhaseStatsDto.from(s.compute),
    postprocess: PhaseStatsDto.from(s.postprocess),
    last_inference_at: s.last_inference_at,
  };
}

function workerState(d: WorkerDoc, s: WorkerModelState | undefined): ModelWorkerStateDto {
  return {
    worker_id: d.worker_id,
    state: s?.state ?? 'available',
    reason: s?.reason ?? null,
    loaded_at: s?.loaded_at ?? null,
    last_used_at: s?.last_used_at ?? null,
    memory_mb: round((s?.memory_bytes ?? 0) / MB),
    rss_mb: round(d.rss_bytes / MB),
    execution_provider: s?.execution_provider ?? null,
  };
}

const noWorker = (): ProblemException =>
  new ProblemException(503, 'SERVICE_UNAVAILABLE', 'No worker is running to act on the request: start one (npm run start:worker, or npm start for API and worker in one process).');

function parseJson(field: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw badRequest(`"${field}" is not valid JSON.`, { errors: [{ field, messages: ['must be valid JSON'] }] });
  }
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function parsePoints(raw: string): NonNullable<InferOptions['points']> {
  const v = parseJson('points', raw);
  if (!Array.isArray(v) || v.length > 64 || !v.every((p) => p && typeof p === 'object' && finite(p.x) && finite(p.y) && (p.label === 0 || p.label === 1))) {
    throw badRequest('"points" must be a JSON array of at most 64 {x, y, label} with label 0 or 1.', { errors: [{ field: 'points', messages: ['must be [{x, y, label}]'] }] });
  }
  return v.map((p: { x: number; y: number; label: 0 | 1 }) => ({ x: p.x, y: p.y, label: p.label }));
}

function parseBox(raw: string): NonNullable<InferOptions['box']> {
  const b = parseJson('box', raw) as Record<string, unknown> | null;
  if (!b || typeof b !== 'object' || !finite(b['x1']) || !finite(b['y1']) || !finite(b['x2']) || !finite(b['y2']) || b['x2'] <= b['x1'] || b['y2'] <= b['y1']) {
    throw badRequest('"box" must be JSON {x1, y1, x2, y2} with x2 > x1 and y2 > y1.', { errors: [{ field: 'box', messages: ['must be {x1, y1, x2, y2}'] }] });
  }
  return { x1: b['x1'], y1: b['y1'], x2: b['x2'], y2: b['y2'] };
}
