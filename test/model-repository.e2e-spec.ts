import { createHash, randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MikroORM } from '@mikro-orm/core';
import { type AppConfig, loadConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { InstalledModel } from '@aperture/database/entities/installed-model.entity.js';
import { StorageSweeper } from '@aperture/queue/storage-sweeper.js';
import { defaultModelsDir } from '@aperture/models/manifest.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { ModelAgent } from '@apps/worker/models/model-agent.service.js';
import { createTestApp, type TestApp } from './support/app.js';
import { type Env, testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { expectProblem, type LoggedIn, login, registerAndLogin, waitFor } from './support/http.js';
import { ownDatabase } from './support/own-database.js';

/**
 * Bring-your-own models through HTTP, the queue and a real worker (one process): install unmodified Ultralytics
 * exports (detect at 416, classify, segment at 640) and an official-named SAM pair without any model.json, run a job on
 * each, refuse broken uploads, delete (409 while a job uses the model), and find installed models again after a restart.
 */

const variants = resolve(defaultModelsDir(), '../test/fixtures/models');
const shipped = defaultModelsDir();
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const suffix = randomBytes(3).toString('hex');
const n = (base: string): string => `${base}-${suffix}`;
const scene = 'primitives/greenhouse-09-800x600.jpg';

/**
 * An Ultralytics classify export's class probabilities for an image, computed here without any of Aperture's code: sharp
 * covers the input square (short side resized, centre crop), RGB /255, one onnxruntime session on the file.
 */
async function referenceClassify(model: string, image: string, size: number): Promise<number[]> {
  const data = await sharp(image).rotate().removeAlpha().resize(size, size, { fit: 'cover' }).raw().toBuffer();
  const plane = size * size;
  const t = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) t[c * plane + i] = data[i * 3 + c]! / 255;
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', t, [1, 3, size, size]) });
    return Array.from(out[session.outputNames[0]!]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

describe('model repository: POST/DELETE /models', () => {
  let env: Env;
  let db: { url: string; drop: () => Promise<void> };
  let t: TestApp;
  let admin: LoggedIn;
  let user: LoggedIn;
  const tmp = mkdtempSync(join(tmpdir(), 'model-repo-e2e-'));

  beforeAll(async () => {
    // A database of its own: every app of the run lists the installed models it finds at boot.
    db = await ownDatabase('modelrepo');
    env = testEnv('modelrepo', { DATABASE_URL: db.url, ADMIN_USERNAME: 'repo_admin', ADMIN_PASSWORD: 'admin-password-1' });
    t = await createTestApp(env, { worker: true });
    admin = await login(t.server, 'repo_admin', 'admin-password-1');
    user = await registerAndLogin(t.server, 'repo_user');
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const install = (files: string[], fields: Record<string, string> = {}, who = admin) => {
    let req = request(t.server).post('/api/v1/models').set(who.auth);
    for (const f of files) req = req.attach('file', f);
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req;
  };

  async function infer(model: string, fields: Record<string, string> = {}): Promise<Record<string, unknown>> {
    let req = request(t.server).post(`/api/v1/models/${model}/infer`).set(admin.auth).attach('image', resolve(fixtures, scene));
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    const res = await req;
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const done = await finished(res.body.job_id as string);
    expect(done.status, JSON.stringify(done)).toBe('completed');
    return done.result as Record<string, unknown>;
  }

  /** Every model's numeric id by name, as GET /models lists them. */
  const ids = async (): Promise<Map<string, number>> => {
    const list = (await request(t.server).get('/api/v1/models').set(admin.auth)).body as { name: string; id: number }[];
    return new Map(list.map((m) => [m.name, m.id]));
  };

  /** The job's result body once it is final (long-polling 30 s at a time). */
  const finished = (jobId: string): Promise<{ status: string; result?: unknown }> =>
    waitFor(async () => {
      const r = await request(t.server).get(`/api/v1/jobs/${jobId}/result?wait_ms=30000`).set(admin.auth);
      return ['completed', 'failed', 'cancelled'].includes(r.body.status) ? (r.body as { status: string; result?: unknown }) : null;
    }, 90000);

  it('installs an unmodified Ultralytics detect export (3 classes, 416) without model.json and runs it', async () => {
    const file = join(variants, 'yolo-detect-416.onnx');
    const res = await install([file], { name: n('yolo-det') });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      name: n('yolo-det'),
      kind: 'detector',
      contract: 'ultralytics-detect',
      labels: ['person', 'car', 'dog'],
      input_size: [416, 416],
      source: 'installed',
      file_digests: [{ role: 'model', sha256: sha256(file), size_bytes: readFileSync(file).length }],
    });
    expect(res.body.files[0].outputs).toEqual([{ name: 'output0', dtype: 'float32', shape: [1, 7, 3549] }]);

    // The announcement on the control channel reached the worker: it reports the model before any job asked for it.
    const known = await waitFor(async () => {
      const d = await request(t.server)
        .get(`/api/v1/models/${n('yolo-det')}`)
        .set(user.auth);
      return (d.body.workers as { state: string }[]).length > 0 ? d.body : null;
    }, 10000);
    expect(known.workers[0]).toMatchObject({ state: 'available' });

    const list = await request(t.server).get('/api/v1/models').set(user.auth);
    const byName = new Map((list.body as { name: string; source: string; id: number }[]).map((m) => [m.name, m]));
    expect(byName.get(n('yolo-det'))?.source).toBe('installed');
    expect(byName.get('primitives-obb')?.source).toBe('shipped');
    expect(byName.get(n('yolo-det'))!.id).toBeGreaterThan(byName.get('xray')!.id);

    // Random weights: a low threshold gives detections, each labelled with one of the metadata's class names.
    const result = await infer(n('yolo-det'), { conf: '0.001' });
    expect(result).toMatchObject({ model: n('yolo-det'), kind: 'detector', width: 800, height: 600 });
    const dets = result['detections'] as { class: string; box_xyxy: number[] }[];
    expect(dets.length).toBeGreaterThan(0);
    for (const d of dets) {
      expect(['person', 'car', 'dog']).toContain(d.class);
      expect(d.box_xyxy).toHaveLength(4);
    }
  });

  it('a worker that missed the install announcement fetches the model when a project job names it', async () => {
    // As a worker that started between the database write and the announcement (or lost the message): no registry
    // entry and no local copy. The project's detect job must fetch the model itself, not fail.
    const agent = t.app.get(ModelAgent, { strict: false });
    await agent.registry.remove(n('yolo-det'));
    rmSync(loadConfig().models.cacheDir, { recursive: true, force: true });
    expect(agent.registry.has(n('yolo-det'))).toBe(false);

    const created = await request(t.server)
      .post('/api/v1/projects')
      .set(admin.auth)
      .send({ name: 'byo', model: n('yolo-det') });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const up = await request(t.server).post(`/api/v1/projects/${id}/images`).set(admin.auth).attach('images', resolve(fixtures, scene));
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect((await request(t.server).post(`/api/v1/projects/${id}/start`).set(admin.auth)).status).toBe(202);
    const done = await waitFor(async () => {
      const p = (await request(t.server).get(`/api/v1/projects/${id}`).set(admin.auth)).body;
      return p.status === 'COMPLETED' || p.status === 'FAILED' ? p : null;
    }, 90000);
    expect(done).toMatchObject({ status: 'COMPLETED', images_with_result: 1 });
    expect(agent.registry.has(n('yolo-det'))).toBe(true);
    const results = (await request(t.server).get(`/api/v1/projects/${id}/results`).set(admin.auth)).body as { model: string }[];
    expect(results.map((r) => r.model)).toEqual([n('yolo-det')]);
    expect((await request(t.server).delete(`/api/v1/projects/${id}`).set(admin.auth)).status).toBe(204);
  });

  it('installs a classify export and a segment export at 640, and runs each', async () => {
    const before = await ids();
    const cls = await install([join(variants, 'yolo-classify-224.onnx')], { name: n('yolo-cls') });
    expect(cls.status, JSON.stringify(cls.body)).toBe(201);
    expect(cls.body).toMatchObject({ kind: 'classifier', contract: 'ultralytics-classify', input_size: [224, 224] });
    const c = await infer(n('yolo-cls'));
    const top = c['top'] as { class: string; score: number }[];
    expect(top).toHaveLength(4);
    expect(top.reduce((a, x) => a + x.score, 0)).toBeCloseTo(1, 2);
    // The file's own probabilities under the metadata's names in index order (the names' mapping and the order of
    // `top`; this random-weight head barely depends on its input, so the preprocessing is checked by its unit tests).
    const labels = ['cat', 'dog', 'bird', 'fish'];
    const expected = await referenceClassify(join(variants, 'yolo-classify-224.onnx'), resolve(fixtures, scene), 224);
    const best = expected.indexOf(Math.max(...expected));
    expect(c['class']).toBe(labels[best]);
    expect(top[0]!.class).toBe(labels[best]);
    for (const x of top) expect(x.score, x.class).toBeCloseTo(expected[labels.indexOf(x.class)]!, 3);

    const seg = await install([join(variants, 'yolo-seg-640.onnx')], { config: JSON.stringify({ name: n('yolo-seg') }) });
    expect(seg.status, JSON.stringify(seg.body)).toBe(201);
    expect(seg.body).toMatchObject({
      kind: 'segmenter',
      contract: 'ultralytics-segment',
      input_size: [640, 640],
      labels: ['stone', 'ball'],
    });
    const s = await infer(n('yolo-seg'), { conf: '0.001', max_det: '5' });
    const dets = s['detections'] as { class: string; mask: { size: number[] } }[];
    expect(s).toMatchObject({ kind: 'segmenter', count: dets.length });
    expect(dets.length).toBeGreaterThan(0);
    for (const d of dets) {
      expect(['stone', 'ball']).toContain(d.class);
      expect(d.mask.size).toEqual([600, 800]);
    }
    // Installing moved no other model's id.
    const after = await ids();
    for (const [name, id] of before) expect(after.get(name), name).toBe(id);
    expect(new Set(after.values()).size).toBe(after.size);
  });

  it('recognises an official Segment Anything encoder/decoder pair by its tensor names and runs a click', async () => {
    const res = await install([join(shipped, 'sam-tiny-decoder.onnx'), join(shipped, 'sam-tiny-encoder.onnx')], { name: n('my-sam') });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ kind: 'sam', contract: 'segment-anything', source: 'installed' });
    expect(res.body.files.map((f: { role: string }) => f.role)).toEqual(['encoder', 'decoder']);
    const r = await infer(n('my-sam'), { points: JSON.stringify([{ x: 400, y: 300, label: 1 }]) });
    expect(r).toMatchObject({ model: n('my-sam'), kind: 'sam', mask: { size: [600, 800] } });
    // Its files are served like a shipped model's, from storage, with the sha256 as ETag.
    const dec = await request(t.server)
      .get(`/api/v1/models/${n('my-sam')}/files/decoder`)
      .set(user.auth);
    expect(dec.status).toBe(200);
    expect(dec.headers['etag']).toBe(`"${sha256(join(shipped, 'sam-tiny-decoder.onnx'))}"`);

    // A worker that missed the announcement computes an image embedding with it all the same (an image.embedding job):
    // the model leaves this worker's registry, model list and cache, as on a worker that never heard of it.
    const agent = t.app.get(ModelAgent, { strict: false });
    await (agent as unknown as { uninstall: (name: string) => Promise<void> }).uninstall(n('my-sam'));
    expect(agent.registry.has(n('my-sam'))).toBe(false);
    const up = await request(t.server).post('/api/v1/images').set(user.auth).attach('images', resolve(fixtures, scene));
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    const emb = await request(t.server)
      .get(`/api/v1/images/${up.body.data[0].id as string}/embedding?model=${n('my-sam')}`)
      .set(user.auth)
      .buffer(true)
      .parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => done(null, Buffer.concat(chunks)));
      });
    expect(emb.status, (emb.body as Buffer).toString().slice(0, 300)).toBe(200);
    expect(emb.headers).toMatchObject({ 'x-model-name': n('my-sam'), 'x-embedding-shape': '1,256,64,64' });
    expect(agent.registry.has(n('my-sam'))).toBe(true);
  });

  it('refuses a truncated file, a graph with the wrong outputs, a bad config and a name clash', async () => {
    const bytes = readFileSync(join(variants, 'yolo-detect-416.onnx'));
    const cut = join(tmp, 'cut.onnx');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
    expectProblem(await install([cut], { name: n('cut') }), 400, 'VALIDATION_ERROR', /cut\.onnx: the file is truncated/);

    expectProblem(
      await install([join(variants, 'bad-detect-rows.onnx')], { name: n('bad') }),
      400,
      'VALIDATION_ERROR',
      /bad-detect-rows\.onnx: output output0 has 9 rows, ultralytics-detect with 3 classes needs 7/,
    );
    expectProblem(
      await install([join(variants, 'yolo-classify-224.onnx')], { name: n('cls2'), config: '{"labels": ["a", "b"]}' }),
      400,
      'VALIDATION_ERROR',
      /output0 has 4 classes, the labels name 2/,
    );
    expectProblem(
      await install([join(variants, 'yolo-classify-224.onnx')], { name: n('cls3'), config: '{"kind": "robot"}' }),
      400,
      'VALIDATION_ERROR',
      /config: "kind" must be one of/,
    );
    const cls = join(variants, 'yolo-classify-224.onnx');
    expectProblem(await install([cls], { name: 'primitives-obb' }), 409, 'CONFLICT', /already exists/);
    expectProblem(await install([join(variants, 'yolo-classify-224.onnx')], { name: n('yolo-det') }), 409, 'CONFLICT', /already exists/);
    // The admin check answers before the body is read: a file would only race the refusal (EPIPE).
    expectProblem(await install([], { name: n('x') }, user), 403, 'FORBIDDEN');
    const list = (await request(t.server).get('/api/v1/models').set(admin.auth)).body as { name: string }[];
    expect(list.map((m) => m.name)).not.toContain(n('cut'));
    expect(list.map((m) => m.name)).not.toContain(n('bad'));
  });

  it('deletes an installed model: 409 while a job uses it, then 204; shipped models stay', async () => {
    const jobs = t.app.get(JobsService);
    await jobs.queue('inference').pause(true);
    let jobId: string;
    try {
      const res = await request(t.server)
        .post(`/api/v1/models/${n('yolo-cls')}/infer`)
        .set(admin.auth)
        .attach('image', resolve(fixtures, scene));
      expect(res.status).toBe(202);
      jobId = res.body.job_id;
      expectProblem(
        await request(t.server)
          .delete(`/api/v1/models/${n('yolo-cls')}`)
          .set(admin.auth),
        409,
        'CONFLICT',
        /in use by 1/,
      );
    } finally {
      await jobs.queue('inference').resume(true);
    }
    expect((await finished(jobId)).status).toBe('completed');
    const before = await ids();
    expectProblem(
      await request(t.server)
        .delete(`/api/v1/models/${n('yolo-cls')}`)
        .set(user.auth),
      403,
      'FORBIDDEN',
    );
    expect(
      (
        await request(t.server)
          .delete(`/api/v1/models/${n('yolo-cls')}`)
          .set(admin.auth)
      ).status,
    ).toBe(204);
    expectProblem(
      await request(t.server)
        .get(`/api/v1/models/${n('yolo-cls')}`)
        .set(admin.auth),
      404,
      'NOT_FOUND',
    );
    expectProblem(
      await request(t.server)
        .delete(`/api/v1/models/${n('yolo-cls')}`)
        .set(admin.auth),
      404,
      'NOT_FOUND',
    );
    expectProblem(await request(t.server).delete('/api/v1/models/primitives-obb').set(admin.auth), 400, 'VALIDATION_ERROR', /shipped/);
    // Removing moved no other model's id, and the removed one's id names no model any more.
    const after = await ids();
    const clsId = before.get(n('yolo-cls'));
    before.delete(n('yolo-cls'));
    expect(after).toEqual(before);
    expect(clsId).toBeGreaterThan(0);
    expect([...after.values()]).not.toContain(clsId);
    // The worker forgot it: a job naming it now fails at the intake.
    const again = request(t.server)
      .post(`/api/v1/models/${n('yolo-cls')}/infer`)
      .set(admin.auth);
    expect((await again.attach('image', resolve(fixtures, scene))).status).toBe(404);
  });

  it('the storage sweep removes model files no installed model references, once past the grace period', async () => {
    const storageDir = t.app.get<AppConfig>(APP_CONFIG).storage.dir;
    const old = new Date(Date.now() - 3 * 3_600_000);
    const group = (name: string, when: Date | null): string => {
      const d = join(storageDir, 'models', name);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'model.onnx'), 'x');
      if (when) utimesSync(d, when, when);
      return d;
    };
    const orphan = group('4f5e6d7c-8b9a-4c0d-9e1f-2a3b4c5d6e7f', old); // an install that never saved its row
    const young = group('5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d', null); // an install in progress
    const row = await t.app
      .get(MikroORM)
      .em.fork()
      .findOneOrFail(InstalledModel, { name: n('my-sam') });
    const live = join(storageDir, 'models', row.id);
    utimesSync(live, old, old); // old, but its row is alive
    const report = await t.app.get(StorageSweeper).sweep();
    expect(report.removed['models']).toBe(1);
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(young)).toBe(true);
    expect(readdirSync(live).sort()).toEqual(['decoder.onnx', 'encoder.onnx']);
    rmSync(young, { recursive: true, force: true });
  });

  it('finds the installed models again after a restart, from the database and storage', async () => {
    await t.close();
    // The worker's local copies go too: the restarted worker must fetch the files from storage.
    rmSync(loadConfig().models.cacheDir, { recursive: true, force: true });
    t = await createTestApp(env, { worker: true });
    admin = await login(t.server, 'repo_admin', 'admin-password-1');
    const list = (await request(t.server).get('/api/v1/models').set(admin.auth)).body as { name: string; source: string }[];
    const names = list.filter((m) => m.source === 'installed').map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining([n('yolo-det'), n('yolo-seg'), n('my-sam')]));
    expect(names).not.toContain(n('yolo-cls'));
    const result = await infer(n('yolo-det'), { conf: '0.001' });
    expect((result['detections'] as unknown[]).length).toBeGreaterThan(0);
    for (const m of [n('yolo-det'), n('yolo-seg'), n('my-sam')]) {
      expect((await request(t.server).delete(`/api/v1/models/${m}`).set(admin.auth)).status).toBe(204);
    }
  });
});

describe('model repository: a folder in MODELS_DIR is a model', () => {
  let t: TestApp;
  let admin: LoggedIn;
  const dir = mkdtempSync(join(tmpdir(), 'models-dir-'));

  beforeAll(async () => {
    // The shipped models (manifest.json and links to their files), plus two folders: an Ultralytics export alone, and
    // one with a model.json that names it and relabels its classes.
    copyFileSync(join(shipped, 'manifest.json'), join(dir, 'manifest.json'));
    for (const f of readdirSync(shipped).filter((x) => x.endsWith('.onnx'))) symlinkSync(join(shipped, f), join(dir, f));
    mkdirSync(join(dir, 'byo-det'));
    copyFileSync(join(variants, 'yolo-detect-416.onnx'), join(dir, 'byo-det', 'best.onnx'));
    mkdirSync(join(dir, 'Seg Export'));
    copyFileSync(join(variants, 'yolo-seg-640.onnx'), join(dir, 'Seg Export', 'yolo.onnx'));
    writeFileSync(join(dir, 'Seg Export', 'model.json'), JSON.stringify({ name: n('byo-seg'), labels: ['rock', 'marble'] }));
    const env = testEnv('modelfolders', {
      MODELS_DIR: dir,
      MODEL_UPLOAD_MAX_MB: '1',
      ADMIN_USERNAME: 'folders_admin',
      ADMIN_PASSWORD: 'admin-password-1',
    });
    t = await createTestApp(env, { worker: true });
    admin = await login(t.server, 'folders_admin', 'admin-password-1');
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the folder models as shipped, runs them, and refuses to delete them', async () => {
    const list = (await request(t.server).get('/api/v1/models').set(admin.auth)).body as Record<string, unknown>[];
    const det = list.find((m) => m['name'] === 'byo-det');
    expect(det).toMatchObject({ kind: 'detector', contract: 'ultralytics-detect', source: 'shipped', input_size: [416, 416] });
    expect(list.find((m) => m['name'] === n('byo-seg'))).toMatchObject({ kind: 'segmenter', labels: ['rock', 'marble'] });
    let res = await request(t.server)
      .post('/api/v1/models/byo-det/infer')
      .set(admin.auth)
      .set('Prefer', 'wait=60')
      .attach('image', resolve(fixtures, scene))
      .field('conf', '0.001');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const dets = res.body.result.detections as { class: string }[];
    expect(dets.length).toBeGreaterThan(0);
    for (const d of dets) expect(['person', 'car', 'dog']).toContain(d.class);
    res = await request(t.server)
      .post(`/api/v1/models/${n('byo-seg')}/infer`)
      .set(admin.auth)
      .set('Prefer', 'wait=60')
      .attach('image', resolve(fixtures, scene))
      .field('conf', '0.001');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const masks = res.body.result.detections as { class: string }[];
    expect(masks.length).toBeGreaterThan(0);
    for (const d of masks) expect(['rock', 'marble']).toContain(d.class);
    expectProblem(await request(t.server).delete('/api/v1/models/byo-det').set(admin.auth), 400, 'VALIDATION_ERROR', /shipped/);
  });

  it('refuses a file over MODEL_UPLOAD_MAX_MB with 413 while streaming it', async () => {
    const big = request(t.server).post('/api/v1/models').set(admin.auth).field('name', n('big'));
    const res = await big.attach(
      'file',
      Buffer.concat([readFileSync(join(variants, 'yolo-detect-416.onnx')), randomBytes(900_000)]),
      'big.onnx',
    );
    expectProblem(res, 413, 'PAYLOAD_TOO_LARGE', /larger than the upload size limit/);
    const list = (await request(t.server).get('/api/v1/models').set(admin.auth)).body as { name: string }[];
    expect(list.map((m) => m.name)).not.toContain(n('big'));
  });
});
