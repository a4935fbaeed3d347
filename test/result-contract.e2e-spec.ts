import { resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { boothDatabase, qrCodes, STATION_PASSWORD, stationAuth, submit } from './support/booth.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { type LoggedIn, login, uniqueName, waitFor } from './support/http.js';
import { openApiValidator, type Validate } from './support/openapi-schema.js';

/**
 * The contract of results: real jobs of every kind the worker runs here (shipped models, committed fixtures) go through the
 * API, the queue and the worker, and every body that carries a result is validated against its component schema in the
 * committed openapi.yaml (closed: a field the contract does not describe fails too). So the document cannot drift from
 * what the worker returns.
 */
describe('result schemas in openapi.yaml match what the worker returns', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let validate: Validate;
  beforeAll(async () => {
    ({ t, alice } = await workerAppWithTwoUsers('contract'));
    validate = openApiValidator();
  });
  afterAll(() => t?.close());

  const get = (path: string) => request(t.server).get(path).set(alice.auth);

  /** Waits for the job, then validates GET /jobs/{id}/result and GET /jobs/{id}; returns the result. */
  async function jobResult(jobId: string, type: string): Promise<Record<string, unknown>> {
    const res = await waitFor(async () => {
      const r = await get(`/api/v1/jobs/${jobId}/result?wait_ms=20000`);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return ['completed', 'failed', 'cancelled'].includes(r.body.status as string) ? r : null;
    }, 180_000);
    expect(res.body.status, JSON.stringify(res.body)).toBe('completed');
    expect(res.body.type).toBe(type);
    expect(validate('JobResultDto', res.body)).toEqual([]);
    const job = await get(`/api/v1/jobs/${jobId}`);
    expect(job.status).toBe(200);
    expect(validate('JobDto', job.body)).toEqual([]);
    return res.body.result as Record<string, unknown>;
  }

  async function infer(model: string, file: string, fields: Record<string, string> = {}): Promise<Record<string, unknown>> {
    let req = request(t.server).post(`/api/v1/models/${model}/infer`).set(alice.auth).attach('image', resolve(fixtures, file));
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    const res = await req;
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return jobResult(res.body.job_id as string, 'model.infer');
  }

  async function task(type: string, file: string, fields: Record<string, string>): Promise<Record<string, unknown>> {
    let req = request(t.server).post('/api/v1/tasks').set(alice.auth).attach('image', resolve(fixtures, file)).field('type', type);
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    const res = await req;
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.id as string;
    const r = await waitFor(async () => {
      const x = await get(`/api/v1/tasks/${id}/result?wait_ms=20000`);
      expect(x.status, JSON.stringify(x.body)).toBe(200);
      return ['completed', 'failed', 'cancelled'].includes(x.body.status as string) ? x : null;
    }, 180_000);
    expect(r.body.status, JSON.stringify(r.body)).toBe('completed');
    expect(validate('TaskResultDto', r.body)).toEqual([]);
    const full = await get(`/api/v1/tasks/${id}`);
    expect(validate('TaskDto', full.body)).toEqual([]);
    await jobResult(id, type === 'prediction' ? 'task.predict' : 'task.fragments');
    return r.body.result as Record<string, unknown>;
  }

  it('the validator refuses what the contract does not say (a missing field, an extra one, a wrong type, a wrong variant)', () => {
    const body = {
      id: '00000000-0000-4000-8000-000000000000',
      status: 'completed',
      type: 'qr.batch',
      result: { batch_id: '00000000-0000-4000-8000-000000000001', codes: 3, pages: 1, pdf_artifact_id: 'x', pdf_bytes: 10, render_ms: 1.5 },
    };
    expect(validate('JobResultDto', body)).toEqual([]);
    const { pages: _pages, ...missing } = body.result;
    expect(validate('JobResultDto', { ...body, result: missing })).not.toEqual([]);
    expect(validate('JobResultDto', { ...body, result: { ...body.result, extra: 1 } })).not.toEqual([]);
    expect(validate('JobResultDto', { ...body, result: { ...body.result, codes: 'three' } })).not.toEqual([]);
    expect(validate('JobResultDto', { ...body, type: 'task.predict' })).not.toEqual([]);
    expect(validate('JobResultDto', { ...body, status: 'queued', result: null })).toEqual([]);
  });

  it('prediction task: scene, class probabilities, primitives with their oriented box', async () => {
    const r = await task('prediction', 'primitives/greenhouse-09-800x600.jpg', { detection_model: 'primitives-obb' });
    expect((r['primitives'] as unknown[]).length).toBeGreaterThan(0);
  });

  it('fragment task: sizes, percentiles, calibration, per-fragment rows', async () => {
    const r = await task('fragments', 'fragments/fragments-00-640x480.png', { real_radius: '20', unit: 'mm' });
    expect(r['calibrated']).toBe(true);
    expect((r['fragments'] as unknown[]).length).toBeGreaterThan(0);
  });

  it('model inference of every kind: detector, segmenter, sam, image-to-image', async () => {
    expect((await infer('primitives-obb', 'primitives/greenhouse-09-800x600.jpg'))['kind']).toBe('detector');
    expect((await infer('fragments-seg', 'fragments/fragments-00-640x480.png'))['kind']).toBe('segmenter');
    expect((await infer('sam-tiny', 'sam/shapes-00-640x480.png', { points: JSON.stringify([{ x: 100, y: 100, label: 1 }]) }))['kind']).toBe(
      'sam',
    );
    expect((await infer('xray', 'xray/input-00-640x480.jpg'))['kind']).toBe('image-to-image');
  });

  it('segmentation: points (RLE and PNG), box, auto, objects', async () => {
    const post = (path: string, fields: Record<string, string>) => {
      let req = request(t.server)
        .post(`/api/v1/segment/${path}`)
        .set(alice.auth)
        .attach('image', resolve(fixtures, 'sam/shapes-03-500x500.png'));
      for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
      return req;
    };
    const fast = { points_per_side: '4', pred_iou_thresh: '0.5', stability_score_thresh: '0.8' };
    for (const [path, fields, type] of [
      ['points/async', { points: JSON.stringify([{ x: 250, y: 250 }]) }, 'segment.prompt'],
      ['points/async', { points: JSON.stringify([{ x: 250, y: 250 }]), output: 'png', multimask_output: 'false' }, 'segment.prompt'],
      ['box/async', { box: JSON.stringify({ x1: 100, y1: 100, x2: 400, y2: 400 }), output: 'coco_rle' }, 'segment.prompt'],
      ['auto/async', fast, 'segment.auto'],
      ['auto/async', { ...fast, output_mode: 'coco_rle' }, 'segment.auto'],
      ['objects/async', fast, 'segment.objects'],
    ] as const) {
      const res = await post(path, fields);
      expect(res.status, `${path} ${JSON.stringify(res.body)}`).toBe(202);
      await jobResult(res.body.job_id as string, type);
    }
  });

  it('project detection', async () => {
    const p = await request(t.server).post('/api/v1/projects').set(alice.auth).send({ name: 'contract', model: 'primitives-obb' });
    expect(p.status, JSON.stringify(p.body)).toBe(201);
    const up = await request(t.server)
      .post(`/api/v1/projects/${p.body.id as string}/images`)
      .set(alice.auth)
      .attach('images', resolve(fixtures, 'primitives/greenhouse-09-800x600.jpg'));
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    const start = await request(t.server)
      .post(`/api/v1/projects/${p.body.id as string}/start`)
      .set(alice.auth);
    expect(start.status, JSON.stringify(start.body)).toBe(202);
    const jobs = (await get('/api/v1/jobs?type=project.detect')).body as { items: { id: string }[] };
    expect(jobs.items).toHaveLength(1);
    const r = await jobResult(jobs.items[0]!.id, 'project.detect');
    expect(r['count']).toBeGreaterThan(0);
  });

  it('image embedding and QR batch', async () => {
    const up = await request(t.server)
      .post('/api/v1/images')
      .set(alice.auth)
      .attach('images', resolve(fixtures, 'sam/shapes-00-640x480.png'));
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    const emb = await get(`/api/v1/images/${up.body.data[0].id as string}/embedding?wait_ms=0`);
    expect(emb.status, JSON.stringify(emb.body)).toBe(202);
    await jobResult(emb.body.job_id as string, 'image.embedding');
    const qr = await request(t.server).post('/api/v1/qr/batches').set(alice.auth).send({ n: 3 });
    expect(qr.status, JSON.stringify(qr.body)).toBe(202);
    const jobs = await waitFor(async () => {
      const b = (await get('/api/v1/jobs?type=qr.batch')).body as { items: { id: string }[] };
      return b.items.length ? b.items : null;
    });
    await jobResult(jobs[0]!.id, 'qr.batch');
  });
});

describe('the booth result schema matches what the worker returns', () => {
  let t: TestApp | undefined;
  let db: Awaited<ReturnType<typeof boothDatabase>> | undefined;
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('booth X-ray options, made by the internal xray model', async () => {
    db = await boothDatabase('contract_booth');
    const admin = { name: uniqueName('admin'), password: 'admin-password-1' };
    const env = testEnv('contract-booth', {
      DATABASE_URL: db.url,
      STATION_PASSWORD,
      ADMIN_USERNAME: admin.name,
      ADMIN_PASSWORD: admin.password,
    });
    t = await createTestApp(env, { worker: true });
    const server = t.server;
    const station = await stationAuth(server);
    // The station may only use the booth routes: an admin reads the job.
    const { auth } = await login(server, admin.name, admin.password);
    const [code] = await qrCodes(server, station, 1, db.url);
    const res = await submit(server, station, { qr_content: code });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const jobId = res.body.job_id as string;
    const validate = openApiValidator();
    const r = await waitFor(async () => {
      const x = await request(server).get(`/api/v1/jobs/${jobId}/result?wait_ms=20000`).set(auth);
      expect(x.status, JSON.stringify(x.body)).toBe(200);
      return ['completed', 'failed', 'cancelled'].includes(x.body.status as string) ? x : null;
    }, 120_000);
    const status = await request(server).get(`/api/v1/jobs/${jobId}/status`).set(auth);
    expect(r.body, JSON.stringify(status.body)).toMatchObject({ status: 'completed', type: 'booth.xray', result: { source: 'internal' } });
    expect(r.body.result.options.length).toBeGreaterThan(0);
    expect(validate('JobResultDto', r.body)).toEqual([]);
    const job = await request(server).get(`/api/v1/jobs/${jobId}`).set(auth);
    expect(validate('JobDto', job.body)).toEqual([]);
  });
});
