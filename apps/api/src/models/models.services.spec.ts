import type { EntityManager } from '@mikro-orm/core';
import type { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { AppConfig } from '@aperture/config/config.js';
import { ProblemException } from '@aperture/common/problem.js';
import { createValidationPipe } from '@aperture/common/validation.js';
import type { InstalledModel } from '@aperture/database/entities/installed-model.entity.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import { loadManifest } from '@aperture/models/manifest.js';
import type { ControlMessage, WorkerDoc, WorkerModelState } from '@aperture/models/model-control.js';
import { folderModelId, INSTALLED_MODEL_IDS, manifestModelId } from '@aperture/models/model-ids.js';
import type { ModelStats } from '@aperture/models/model-status.js';
import type { JobsService } from '@aperture/queue/jobs.service.js';
import type { StoragePort } from '@aperture/storage/storage.port.js';
import { ModelCatalogueService } from './model-catalogue.service.js';
import { ModelControlService } from './model-control.service.js';
import { ModelInferenceService } from './model-inference.service.js';
import { entryOfRow } from './model-repository.service.js';
import { ModelInferFormDto } from './models.dto.js';
import { tempUpload } from '@test/support/uploads.js';

/**
 * The three models services built by hand on fakes (no Nest app, no Redis, no database): an in-memory Redis that
 * holds worker documents and lets a fake worker answer control requests, and job/storage/entity-manager fakes that
 * record what the intake did.
 */
const manifest = loadManifest();
const config = { redis: { prefix: 't' }, models: { stateTtlSeconds: 30 }, images: { maxSide: 4096 } } as unknown as AppConfig;

const stats = (n: number): ModelStats => ({
  inference_count: n,
  success: { count: n, total_ms: 10 * n },
  failure: { count: 0, total_ms: 0 },
  queue: { count: n, total_ms: n },
  preprocess: { count: n, total_ms: 2 * n },
  compute: { count: n, total_ms: 5 * n },
  postprocess: { count: n, total_ms: 3 * n },
  last_inference_at: n ? `2026-01-0${n}T00:00:00.000Z` : null,
});

function modelState(name: string, state: WorkerModelState['state'], n = 0): WorkerModelState {
  return {
    name,
    state,
    reason: null,
    loaded_at: null,
    last_used_at: null,
    memory_bytes: state === 'loaded' ? 2 * 1024 * 1024 : 0,
    execution_provider: 'cpu',
    warnings: [],
    stats: stats(n),
    last_request: null,
  };
}

const workerDoc = (id: string, models: Record<string, WorkerModelState>): WorkerDoc => ({
  worker_id: id,
  hostname: 'h',
  pid: 1,
  started_at: '',
  updated_at: '',
  rss_bytes: 100 * 1024 * 1024,
  models_memory_bytes: 0,
  models,
});

/** The Redis commands the control plane uses, on documents in memory; `answer` plays the workers. */
class FakeRedis {
  readonly published: ControlMessage[] = [];
  constructor(
    readonly docs: WorkerDoc[],
    private readonly answer: (msg: ControlMessage, doc: WorkerDoc) => void = () => undefined,
  ) {}
  async zremrangebyscore(): Promise<number> {
    return 0;
  }
  async zrange(): Promise<string[]> {
    return this.docs.map((d) => d.worker_id);
  }
  async mget(keys: string[]): Promise<(string | null)[]> {
    return keys.map((k) => {
      const d = this.docs.find((x) => k.endsWith(`:${x.worker_id}`));
      return d ? JSON.stringify(d) : null;
    });
  }
  async publish(_channel: string, raw: string): Promise<number> {
    const msg = JSON.parse(raw) as ControlMessage;
    this.published.push(msg);
    for (const d of this.docs) this.answer(msg, d);
    return this.docs.length;
  }
}

function newTestServices(docs: WorkerDoc[] = [], answer?: (msg: ControlMessage, doc: WorkerDoc) => void) {
  const redis = new FakeRedis(docs, answer);
  const control = new ModelControlService(redis as unknown as Redis, config);
  const catalogue = new ModelCatalogueService(manifest, control);
  const stored = new Map<string, Buffer>();
  const storage = {
    put: async (key: string, data: Buffer | Readable) => {
      const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(await data.toArray());
      stored.set(key, bytes);
      return { key, size: bytes.length };
    },
    deletePrefix: async () => undefined,
  } as unknown as StoragePort;
  const enqueued: Job[] = [];
  const jobs = {
    build: (_em: EntityManager, type: string, owner: unknown, params: unknown, id: string) => {
      return { id, type, owner, params, status: 'queued' };
    },
    enqueue: async (job: Job) => void enqueued.push(job),
  } as unknown as JobsService;
  const em = {
    fork: () => em,
    getReference: (_cls: unknown, id: string) => ({ id }),
    persist: () => ({ flush: async () => undefined }),
    insert: async () => undefined,
  } as unknown as EntityManager;
  const intake = new ModelInferenceService(catalogue, config, em, jobs, storage);
  return { redis, control, catalogue, intake, stored, enqueued };
}

const principal = { userId: 'u1', username: 'alice', role: 'user' as const };

async function problem(p: Promise<unknown> | (() => unknown)): Promise<ProblemException> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(ProblemException);
    return e as ProblemException;
  }
  throw new Error('expected a problem');
}

describe('ModelCatalogueService', () => {
  it('resolves a model by numeric id, by name, or the first of its kinds; anything else is a 400 listing the valid ones', async () => {
    const { catalogue } = newTestServices();
    const detector = manifest.models.find((m) => m.kind === 'detector')!;
    const id = catalogue.idOf(detector);
    expect(id).toBe(manifest.models.indexOf(detector) + 1);
    expect(catalogue.resolve(String(id), ['detector'], 'detection_model')).toBe(detector);
    expect(catalogue.resolve(detector.name, ['detector'], 'detection_model')).toBe(detector);
    expect(catalogue.resolve(undefined, ['detector'], 'detection_model')).toBe(detector);
    expect(catalogue.entryOrNull('nope')).toBeNull();
    const bad = await problem(() => catalogue.resolve('sam-tiny', ['detector'], 'detection_model'));
    expect(bad.getStatus()).toBe(400);
    expect(bad.detail).toMatch(/^Model id was not correct\. Choose from \(id, name, kind\) \[/);
    expect(bad.extras['valid_models']).toEqual([{ id, name: detector.name, kind: 'detector' }]);
    expect((await problem(() => catalogue.entry('nope'))).getStatus()).toBe(404);
  });

  it("keeps every model's id when another model is installed or removed", () => {
    const shipped = structuredClone(manifest.models).map((m, i) => ({ ...m, id: manifestModelId(i) }));
    const folder = { ...shipped[0]!, name: 'byo-det', id: folderModelId('byo-det') };
    const row = (id: string, name: string) => ({ id, name, entry: { ...shipped[0]!, name } }) as unknown as InstalledModel;
    const a = entryOfRow(row('8d0f6c38-4a53-4f4b-9d4f-2b0c1e3a5f71', 'a'));
    const b = entryOfRow(row('1f7e2d90-6b1c-4c8e-8a2d-5e9f0b3c7d12', 'b'));
    const c = entryOfRow(row('c3a1b2d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d', 'c'));
    const models = { ...manifest, models: [...shipped, folder, a, b] };
    const catalogue = new ModelCatalogueService(models, {} as ModelControlService);
    const ids = () => new Map(models.models.map((m) => [m.name, catalogue.idOf(m)]));
    const before = ids();
    expect(shipped.map((m) => before.get(m.name))).toEqual(shipped.map((_, i) => i + 1));
    expect(new Set(before.values()).size).toBe(before.size);
    expect(before.get('a')).toBeGreaterThanOrEqual(INSTALLED_MODEL_IDS.first);
    // a removed, c installed: every other model keeps its id, and a's id names no model any more.
    models.models.splice(models.models.indexOf(a), 1);
    models.models.push(c);
    const after = ids();
    for (const [name, id] of after) if (name !== 'c') expect(id, name).toBe(before.get(name));
    expect(after.get('c')).not.toBe(before.get('a'));
    expect(catalogue.resolve(String(after.get('b')), ['detector', 'segmenter'], 'model').name).toBe('b');
    expect(() => catalogue.resolve(String(before.get('a')), ['detector', 'segmenter'], 'model')).toThrow(ProblemException);
  });

  it('resolves one model named by a field and its older aliases: each must name a model, and all the same one', async () => {
    // Two detectors, so that an alias and its canonical field can name different valid models.
    const detector = manifest.models.find((m) => m.kind === 'detector')!;
    const twin = { ...detector, name: `${detector.name}-twin` };
    const two = new ModelCatalogueService(
      { ...manifest, models: [...manifest.models, twin] },
      new ModelControlService(new FakeRedis([]) as unknown as Redis, config),
    );
    const twinId = two.idOf(twin);
    const fields = (canonical: string | undefined, alias: number | undefined) => [
      { field: 'detection_model', ref: canonical },
      { field: 'detection_model_id', ref: alias },
    ];
    expect(two.resolveFields(fields(undefined, undefined), ['detector'])).toBe(detector);
    expect(two.resolveFields(fields(undefined, undefined), ['detector'], { fallback: twin.name })).toBe(twin);
    expect(two.resolveFields(fields(undefined, twinId), ['detector'])).toBe(twin);
    expect(two.resolveFields(fields(twin.name, twinId), ['detector'])).toBe(twin);
    const clash = await problem(() => two.resolveFields(fields(detector.name, twinId), ['detector']));
    expect(clash.getStatus()).toBe(400);
    expect(clash.detail).toBe(
      `detection_model and detection_model_id name different models (${detector.name}, ${twin.name}): send one of them.`,
    );
    expect(clash.extras['errors']).toEqual([
      { field: 'detection_model_id', messages: [`names ${twin.name}, but detection_model names ${detector.name}`] },
    ]);
    const unknown = await problem(() => two.resolveFields(fields(undefined, 99), ['detector']));
    expect(unknown.extras['errors']).toEqual([{ field: 'detection_model_id', messages: ['unknown detector model "99"'] }]);
  });

  it('lists each model with its state over the live workers, and sums its statistics', async () => {
    const { catalogue } = newTestServices([
      workerDoc('w1', { 'sam-tiny': modelState('sam-tiny', 'loaded', 1), xray: modelState('xray', 'loaded') }),
      workerDoc('w2', { 'sam-tiny': modelState('sam-tiny', 'loaded', 2), xray: modelState('xray', 'failed') }),
    ]);
    const list = await catalogue.list();
    expect(list.map((m) => m.name)).toEqual(manifest.models.map((m) => m.name));
    const sam = list.find((m) => m.name === 'sam-tiny')!;
    expect(sam).toMatchObject({ state: 'loaded', memory_mb: 4, workers: [{ worker_id: 'w1', rss_mb: 100 }, { worker_id: 'w2' }] });
    expect(list.find((m) => m.name === 'xray')!.state).toBe('failed');
    expect((await catalogue.list('sam')).map((m) => m.name)).toEqual(['sam-tiny']);
    const s = await catalogue.stats('sam-tiny');
    expect(s.total).toMatchObject({
      inference_count: 3,
      compute: { count: 3, total_ms: 15, mean_ms: 5 },
      last_inference_at: '2026-01-02T00:00:00.000Z',
    });
    expect(s.workers.map((w) => w.stats.inference_count)).toEqual([1, 2]);
    expect((await catalogue.detail('xray')).files.length).toBeGreaterThan(0);
  });
});

describe('ModelControlService', () => {
  const sam = manifest.models.find((m) => m.name === 'sam-tiny')!;

  it('answers 503 when no worker is running', async () => {
    const p = await problem(newTestServices().control.control('load', sam, 0));
    expect([p.getStatus(), p.code]).toEqual([503, 'SERVICE_UNAVAILABLE']);
  });

  it('publishes the request and waits until every worker has answered it', async () => {
    const { control, redis } = newTestServices([workerDoc('w1', {}), workerDoc('w2', {})], (msg, doc) => {
      const last_request = { id: msg.request_id, op: msg.op, ok: true, error: null };
      doc.models[msg.model] = { ...modelState(msg.model, 'loaded'), last_request };
    });
    const r = await control.control('load', sam, 1000);
    expect(redis.published).toEqual([{ op: 'load', model: 'sam-tiny', request_id: r.request_id }]);
    expect(r).toMatchObject({ name: 'sam-tiny', op: 'load', settled: true });
    expect(r.workers.map((w) => [w.worker_id, w.done, w.ok, w.state])).toEqual([
      ['w1', true, true, 'loaded'],
      ['w2', true, true, 'loaded'],
    ]);
  });

  it('is 422 MODEL_ERROR when a worker could not load it, and unsettled when a worker does not answer in time', async () => {
    const failing = newTestServices([workerDoc('w1', {})], (msg, doc) => {
      const last_request = { id: msg.request_id, op: msg.op, ok: false, error: 'bad file' };
      doc.models[msg.model] = { ...modelState(msg.model, 'failed'), last_request };
    });
    const p = await problem(failing.control.control('load', sam, 1000));
    expect([p.getStatus(), p.code]).toEqual([422, 'MODEL_ERROR']);
    expect(p.detail).toBe('Model sam-tiny could not be loaded on 1 of 1 worker(s): bad file');
    const silent = await newTestServices([workerDoc('w1', {})]).control.control('unload', sam, 0);
    expect(silent).toMatchObject({ settled: false, workers: [{ worker_id: 'w1', done: false, ok: false }] });
  });
});

describe('ModelInferenceService', () => {
  const png = (): Promise<Buffer> =>
    sharp({ create: { width: 8, height: 6, channels: 3, background: '#888' } })
      .png()
      .toBuffer();
  const upload = async () => tempUpload(await png(), 'a.png');
  const form = (v: Partial<ModelInferFormDto>): ModelInferFormDto => Object.assign(new ModelInferFormDto(), v);

  it('queues a model.infer job with the image stored under the job and the options the model takes', async () => {
    const { intake, stored, enqueued } = newTestServices();
    const f = form({ conf: 0.5, points: [{ x: 1, y: 2, label: 1 }], box: { x1: 0, y1: 0, x2: 4, y2: 3 } });
    const r = await intake.infer('sam-tiny', await upload(), f, principal);
    expect(r).toMatchObject({ status: 'queued', job_url: `/api/v1/jobs/${r.job_id}` });
    expect(enqueued.map((j) => j.params)).toEqual([
      {
        model: 'sam-tiny',
        imageKey: `inputs/${r.job_id}/image`,
        options: { conf: 0.5, points: [{ x: 1, y: 2, label: 1 }], box: { x1: 0, y1: 0, x2: 4, y2: 3 } },
      },
    ]);
    expect([...stored.keys()]).toEqual([`inputs/${r.job_id}/image`]);
    const det = await intake.infer('primitives-obb', await upload(), form({ points: [{ x: 1, y: 2, label: 1 }] }), principal);
    expect(enqueued.at(-1)!.params).toMatchObject({ model: 'primitives-obb', options: {} });
    expect(det.job_id).not.toBe(r.job_id);
  });

  it('refuses a classifier, a missing image, a SAM model without a prompt and an unknown model, storing nothing', async () => {
    const { intake, stored, enqueued } = newTestServices();
    const classifier = await problem(intake.infer('scene-gru', await upload(), form({}), principal));
    expect(classifier.detail).toMatch(/classifies detected primitives/);
    expect((await problem(intake.infer('xray', undefined, form({}), principal))).detail).toMatch(/multipart field "image"/);
    expect((await problem(intake.infer('sam-tiny', await upload(), form({}), principal))).detail).toMatch(/needs a prompt/);
    expect((await problem(intake.infer('nope', await upload(), form({}), principal))).getStatus()).toBe(404);
    const notImage = tempUpload(Buffer.from('not an image'), 'x.jpg');
    expect((await problem(intake.infer('xray', notImage, form({}), principal))).code).toBe('IMAGE_VALIDATION_ERROR');
    expect([stored.size, enqueued.length]).toEqual([0, 0]);
  });
});

describe('ModelInferFormDto (the validation pipe)', () => {
  const pipe = createValidationPipe();
  const validate = (body: Record<string, string>) => pipe.transform(body, { type: 'body', metatype: ModelInferFormDto });

  it('parses the SAM JSON fields into typed prompts', async () => {
    const body = { points: '[{"x":1.5,"y":2,"label":0}]', box: '{"x1":1,"y1":2,"x2":3,"y2":4}', conf: '0.3' };
    const f = (await validate(body)) as ModelInferFormDto;
    expect(f.points).toEqual([{ x: 1.5, y: 2, label: 0 }]);
    expect(f.box).toEqual({ x1: 1, y1: 2, x2: 3, y2: 4 });
    expect(f.conf).toBe(0.3);
  });

  it.each([
    [{ points: '[{"x":1}]' }, /points\[0\]\.y must be a number.*points\[0\]\.label must be one of the following values: 0, 1/],
    [{ points: 'nope' }, /^points must be valid JSON$/],
    [{ points: '{"x":1,"y":2,"label":1}' }, /^points must be a JSON array$/],
    [{ points: JSON.stringify(Array.from({ length: 65 }, () => ({ x: 1, y: 1, label: 1 }))) }, /^points must hold at most 64 items$/],
    [{ points: '[3]' }, /^points\[0\] must be an object$/],
    [{ box: '{"x1":5,"y1":0,"x2":4,"y2":3}' }, /^box\.x2 must be greater than x1$/],
    [{ box: '[1,2,3,4]' }, /^box must be a JSON object$/],
    [{ conf: '0' }, /conf must be a number strictly between 0 and 1/],
    [{ iou: '1' }, /iou must be a number strictly between 0 and 1/],
  ])('refuses %j with a 400 naming the field', async (body, detail) => {
    const p = await problem(validate(body));
    expect([p.getStatus(), p.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect(p.detail).toMatch(detail);
  });
});
