import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelsDir, loadManifest, type ModelManifest } from '@aperture/models/manifest.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, login, registerAndLogin } from './support/http.js';

/** A models folder whose manifest declares the X-ray effect as a YOLO detector: its graph cannot fit that contract. */
function brokenModelsDir(): string {
  const shipped = loadManifest();
  const dir = mkdtempSync(join(tmpdir(), 'aperture-models-'));
  const xray = shipped.models.find((m) => m.name === 'xray')!;
  const scene = shipped.models.find((m) => m.name === 'scene-gru')!;
  for (const f of [...xray.files, ...scene.files]) copyFileSync(join(defaultModelsDir(), f.path), join(dir, f.path));
  const manifest: ModelManifest = {
    version: 1,
    total_size_bytes: 0,
    models: [
      { ...xray, name: 'fake-detector', kind: 'detector', task: 'detect', contract: 'ultralytics-detect', labels: ['a', 'b'] },
      scene,
    ],
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

describe('models API (API + worker in one process)', () => {
  let t: TestApp;
  let admin: LoggedIn;
  let user: LoggedIn;
  beforeAll(async () => {
    t = await createTestApp(testEnv('models', { ADMIN_USERNAME: 'models_admin', ADMIN_PASSWORD: 'admin-password-1' }), { worker: true });
    admin = await login(t.server, 'models_admin', 'admin-password-1');
    user = await registerAndLogin(t.server, 'modeluser');
  });
  afterAll(() => t?.close());

  it('lists every shipped model with its manifest facts and its state on the live worker', async () => {
    const res = await request(t.server).get('/api/v1/models').set(user.auth);
    expect(res.status).toBe(200);
    expect(res.body.map((m: { name: string }) => m.name).sort()).toEqual([
      'fragments-seg',
      'primitives-obb',
      'sam-tiny',
      'scene-gru',
      'xray',
    ]);
    const obb = res.body.find((m: { name: string }) => m.name === 'primitives-obb');
    expect(obb).toMatchObject({
      kind: 'detector',
      contract: 'ultralytics-obb',
      input_size: [320, 320],
      labels: ['cone', 'cube', 'cylinder', 'sphere', 'torus'],
    });
    expect(obb.size_mb).toBeGreaterThan(0);
    expect(obb.workers).toHaveLength(1);
    expect(obb.workers[0]).toMatchObject({ state: 'available', memory_mb: 0 });

    const only = await request(t.server).get('/api/v1/models?kind=sam').set(user.auth);
    expect(only.body.map((m: { name: string }) => m.name)).toEqual(['sam-tiny']);
    expectProblem(await request(t.server).get('/api/v1/models?kind=teapot').set(user.auth), 400, 'VALIDATION_ERROR');
  });

  it("shows a model's files with inputs, outputs and metadata; an unknown model is a 404", async () => {
    const res = await request(t.server).get('/api/v1/models/sam-tiny').set(user.auth);
    expect(res.status).toBe(200);
    expect(res.body.files.map((f: { role: string }) => f.role)).toEqual(['encoder', 'decoder']);
    const dec = res.body.files[1];
    expect(dec.inputs.map((i: { name: string }) => i.name)).toEqual([
      'image_embeddings',
      'point_coords',
      'point_labels',
      'mask_input',
      'has_mask_input',
      'orig_im_size',
    ]);
    expect(res.body.metrics).toHaveProperty('box_mIoU');
    expectProblem(await request(t.server).get('/api/v1/models/nope').set(user.auth), 404, 'NOT_FOUND', 'Model nope does not exist.');
    expectProblem(await request(t.server).get('/api/v1/models/nope/stats').set(user.auth), 404, 'NOT_FOUND');
  });

  it('loads and unloads on the worker for admins only, and reports state and memory', async () => {
    expectProblem(await request(t.server).post('/api/v1/models/xray/load').set(user.auth), 403, 'FORBIDDEN');
    expectProblem(await request(t.server).post('/api/v1/models/nope/load').set(admin.auth), 404, 'NOT_FOUND');

    const load = await request(t.server).post('/api/v1/models/scene-gru/load').set(admin.auth);
    expect(load.status, JSON.stringify(load.body)).toBe(200);
    expect(load.body).toMatchObject({ name: 'scene-gru', op: 'load', settled: true });
    expect(load.body.workers).toEqual([expect.objectContaining({ state: 'loaded', done: true, ok: true, execution_provider: 'cpu' })]);

    const listed = (await request(t.server).get('/api/v1/models?kind=classifier').set(user.auth)).body[0];
    expect(listed.state).toBe('loaded');
    expect(listed.memory_mb).toBeGreaterThan(0);
    expect(listed.workers[0].loaded_at).toEqual(expect.any(String));

    const unload = await request(t.server).post('/api/v1/models/scene-gru/unload').set(admin.auth);
    expect(unload.status).toBe(200);
    expect(unload.body.workers[0]).toMatchObject({ state: 'available', memory_mb: 0, done: true, ok: true });
    expect((await request(t.server).get('/api/v1/models/scene-gru').set(user.auth)).body.state).toBe('available');
  });

  it('answers 202 when wait_ms runs out before the worker finishes, and validates wait_ms', async () => {
    const res = await request(t.server).post('/api/v1/models/fragments-seg/load?wait_ms=0').set(admin.auth);
    expect(res.status).toBe(202);
    expect(res.body.settled).toBe(false);
    expectProblem(await request(t.server).post('/api/v1/models/xray/load?wait_ms=-5').set(admin.auth), 400, 'VALIDATION_ERROR');
    // The request still completes on the worker.
    const deadline = Date.now() + 10000;
    let state = '';
    while (Date.now() < deadline && state !== 'loaded') {
      state = (await request(t.server).get('/api/v1/models/fragments-seg').set(user.auth)).body.state;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(state).toBe('loaded');
  });

  it('gives per-worker and total statistics', async () => {
    const res = await request(t.server).get('/api/v1/models/xray/stats').set(user.auth);
    expect(res.status).toBe(200);
    expect(res.body.total).toMatchObject({ inference_count: 0, compute: { count: 0, total_ms: 0, mean_ms: 0 }, last_inference_at: null });
    expect(res.body.workers).toHaveLength(1);
  });
});

describe('models API without a worker, and with a model that breaks its contract', () => {
  let api: TestApp;
  let broken: TestApp;
  let admin: LoggedIn;
  beforeAll(async () => {
    api = await createTestApp(testEnv('models-noworker', { ADMIN_USERNAME: 'nw_admin', ADMIN_PASSWORD: 'admin-password-1' }));
    broken = await createTestApp(
      testEnv('models-broken', { ADMIN_USERNAME: 'nw_admin', ADMIN_PASSWORD: 'admin-password-1', MODELS_DIR: brokenModelsDir() }),
      { worker: true },
    );
    admin = await login(api.server, 'nw_admin', 'admin-password-1');
  });
  afterAll(async () => {
    await api?.close();
    await broken?.close();
  });

  it('503 when no worker is running to load the model', async () => {
    expectProblem(
      await request(api.server).post('/api/v1/models/xray/load').set(admin.auth),
      503,
      'SERVICE_UNAVAILABLE',
      /No worker is running/,
    );
  });

  it('wait_ms on a job no worker takes answers "queued" when it runs out; deleting the job wakes the waiting request', async () => {
    const post = await request(api.server)
      .post('/api/v1/models/xray/infer')
      .set(admin.auth)
      .attach('image', resolve(defaultModelsDir(), 'fixtures/xray/input-00-640x480.jpg'));
    expect(post.status).toBe(202);
    const id = post.body.job_id as string;
    const t0 = Date.now();
    const waited = await request(api.server).get(`/api/v1/jobs/${id}/status?wait_ms=400`).set(admin.auth);
    expect(waited.body).toMatchObject({ id, status: 'queued' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350); // it did wait
    const pending = request(api.server)
      .get(`/api/v1/jobs/${id}/status?wait_ms=30000`)
      .set(admin.auth)
      .then((r) => r);
    await new Promise((r) => setTimeout(r, 300));
    const t1 = Date.now();
    expect((await request(api.server).delete(`/api/v1/jobs/${id}`).set(admin.auth)).status).toBe(204);
    const woken = await pending;
    expect(Date.now() - t1).toBeLessThan(15000); // woken by the cancellation, not by the 30 s limit
    if (woken.status === 200) expect(woken.body.status).toBe('cancelled');
    else expectProblem(woken, 404, 'JOB_NOT_FOUND');
  });

  it('a model that does not fit its contract fails with MODEL_ERROR naming the mismatch; the others keep working', async () => {
    const a = await login(broken.server, 'nw_admin', 'admin-password-1');
    const res = await request(broken.server).post('/api/v1/models/fake-detector/load').set(a.auth);
    expectProblem(res, 422, 'MODEL_ERROR', /ultralytics-detect contract: .*output output must have rank 3/);
    expect(res.body.workers[0]).toMatchObject({ state: 'failed', ok: false });
    const listed = (await request(broken.server).get('/api/v1/models/fake-detector').set(a.auth)).body;
    expect(listed.state).toBe('failed');
    expect(listed.workers[0].reason).toMatch(/rank 3/);
    const ok = await request(broken.server).post('/api/v1/models/scene-gru/load').set(a.auth);
    expect(ok.status).toBe(200);
  });
});
