import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { maskIoU, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { fixtures, gt } from './support/fixtures.js';
import { expectProblem, type LoggedIn, waitFor } from './support/http.js';

/** POST /segment/batches (multipart and JSON), GET /segment/batches[/{id}], and the job filters, through the worker (sam-tiny). */

interface Shape {
  mask: Rle;
  point: [number, number];
  box: [number, number, number, number];
}
interface Fixture {
  file: string;
  width: number;
  height: number;
  shapes: Shape[];
}
interface BatchJob {
  index: number;
  file_name: string;
  job_id: string;
  type: string;
  status: string;
  progress: number;
  error: string | null;
  total_masks: number | null;
  status_url: string;
  result_url: string;
}
interface Batch {
  batch_id: string;
  batch_job_id: string;
  url: string;
  model: string;
  status: string;
  progress: number;
  total_images: number;
  completed_images: number;
  failed_images: number;
  jobs: BatchJob[];
}

const truth = gt<{ images: Fixture[] }>('sam/ground-truth.json');
const pathOf = (f: Fixture): string => resolve(fixtures, f.file);
const nameOf = (f: Fixture): string => f.file.split('/').pop()!;
/** A small automatic grid: sam-tiny's decoder runs once per point (~0.2 s each on 2 cores). */
const FAST = { points_per_side: 4, pred_iou_thresh: 0.5, stability_score_thresh: 0.8 };

describe('segmentation batches', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  let inputsDir: string;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('segbatch'));
    inputsDir = join(t.app.get<AppConfig>(APP_CONFIG).storage.dir, 'inputs');
  });
  afterAll(() => t?.close());

  const api = (user = alice) => ({
    get: (path: string) => request(t.server).get(path).set(user.auth),
    post: (path: string) => request(t.server).post(path).set(user.auth),
  });

  /** The batch once every job is final (completed, failed or cancelled). */
  async function finished(id: string, user = alice): Promise<Batch> {
    return waitFor(
      async () => {
        const r = await api(user).get(`/api/v1/segment/batches/${id}`);
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        const b = r.body as Batch;
        return b.status === 'queued' || b.status === 'running' ? null : b;
      },
      240_000,
      500,
    );
  }

  const resultOf = async (jobId: string): Promise<Record<string, unknown>> => {
    const r = await api().get(`/api/v1/jobs/${jobId}/result`);
    expect(r.body.status, JSON.stringify(r.body).slice(0, 400)).toBe('completed');
    return r.body.result as Record<string, unknown>;
  };

  const countInputs = (): number => (existsSync(inputsDir) ? readdirSync(inputsDir).length : 0);

  it('multipart: 5 images, one job each (points, box, none → auto); counts and results match the single-image routes', async () => {
    const imgs = truth.images.slice(0, 5);
    const [a, b, c, d] = imgs.map((f) => f.shapes[0]!);
    const points = [[{ x: a!.point[0], y: a!.point[1] }], [{ x: b!.point[0], y: b!.point[1] }], [{ x: c!.point[0], y: c!.point[1] }]];
    const [x1, y1, x2, y2] = d!.box;
    const boxes = [null, null, null, [{ x1, y1, x2, y2 }]];
    let req = api()
      .post('/api/v1/segment/batches')
      .field('points', JSON.stringify(points))
      .field('boxes', JSON.stringify(boxes))
      .field('coords', 'pixels');
    for (const [k, v] of Object.entries(FAST)) req = req.field(k, String(v));
    for (const f of imgs) req = req.attach('images', pathOf(f));
    const res = await req;
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const queued = res.body as Batch;
    expect(queued.url).toBe(`/api/v1/segment/batches/${queued.batch_id}`);
    expect(queued.batch_job_id).toBe(queued.batch_id);
    expect(queued.total_images).toBe(5);
    expect(queued.model).toBe('sam-tiny');
    expect(queued.jobs.map((j) => [j.index, j.file_name, j.type])).toEqual([
      [0, nameOf(imgs[0]!), 'segment.prompt'],
      [1, nameOf(imgs[1]!), 'segment.prompt'],
      [2, nameOf(imgs[2]!), 'segment.prompt'],
      [3, nameOf(imgs[3]!), 'segment.prompt'],
      [4, nameOf(imgs[4]!), 'segment.auto'],
    ]);
    for (const j of queued.jobs) {
      expect(j.status_url).toBe(`/api/v1/jobs/${j.job_id}/status`);
      expect(j.result_url).toBe(`/api/v1/jobs/${j.job_id}/result`);
    }

    const done = await finished(queued.batch_id);
    expect(done).toMatchObject({ status: 'completed', total_images: 5, completed_images: 5, failed_images: 0, progress: 1 });
    expect(done.jobs.every((j) => j.status === 'completed' && (j.total_masks ?? 0) > 0)).toBe(true);

    // Each prompt job found its shape, and equals what the single-image route answers for the same image and prompt.
    for (const i of [1, 3]) {
      const r = await resultOf(done.jobs[i]!.job_id);
      const results = r['results'] as { masks: { score: number; mask: Rle }[] }[];
      const best = results[0]!.masks.reduce((p, q) => (q.score > p.score ? q : p));
      expect(maskIoU(rleDecode(best.mask), rleDecode(imgs[i]!.shapes[0]!.mask))).toBeGreaterThanOrEqual(0.8);
      const single =
        i === 1
          ? await api().post('/api/v1/segment/points').attach('image', pathOf(imgs[1]!)).field('points', JSON.stringify(points[1]))
          : await api().post('/api/v1/segment/box').attach('image', pathOf(imgs[3]!)).field('box', JSON.stringify({ x1, y1, x2, y2 }));
      expect(single.status, JSON.stringify(single.body).slice(0, 300)).toBe(200);
      expect(results).toEqual(single.body.results);
    }
    const auto = await resultOf(done.jobs[4]!.job_id);
    let one = api().post('/api/v1/segment/auto').attach('image', pathOf(imgs[4]!));
    for (const [k, v] of Object.entries(FAST)) one = one.field(k, String(v));
    const single = await one;
    expect(single.status, JSON.stringify(single.body).slice(0, 300)).toBe(200);
    expect(auto['count']).toBeGreaterThan(0);
    expect(auto['masks']).toEqual(single.body.masks);

    // Every job's status carries its image counts.
    const s = await api().get(`/api/v1/jobs/${done.jobs[4]!.job_id}/status`);
    expect(s.body).toMatchObject({ status: 'completed', progress: 1, total_images: 1, processed_images: 1 });
  }, 300_000);

  it('JSON: 5 base64 images with per-image normalized points and shared parameters; the same masks as a single request', async () => {
    const imgs = truth.images.slice(1, 6);
    const points = imgs.map((f, i) =>
      i === 4 ? null : [{ x: f.shapes[0]!.point[0] / f.width, y: f.shapes[0]!.point[1] / f.height, label: 1 }],
    );
    const res = await api()
      .post('/api/v1/segment/batches')
      .send({
        model_type: 'sam-tiny',
        images: imgs.map((f, i) => (i === 1 ? 'data:image/png;base64,' : '') + readFileSync(pathOf(f)).toString('base64')),
        names: imgs.map(nameOf),
        points,
        parameters: { multimask_output: false, output: 'rle', ...FAST },
      });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const queued = res.body as Batch;
    expect(queued.jobs.map((j) => j.type)).toEqual([
      'segment.prompt',
      'segment.prompt',
      'segment.prompt',
      'segment.prompt',
      'segment.auto',
    ]);
    expect(queued.jobs.map((j) => j.file_name)).toEqual(imgs.map(nameOf));

    const done = await finished(queued.batch_id);
    expect(done).toMatchObject({ status: 'completed', total_images: 5, completed_images: 5, failed_images: 0 });
    for (const [i, f] of imgs.slice(0, 4).entries()) {
      const results = (await resultOf(done.jobs[i]!.job_id))['results'] as { masks: { mask: Rle }[] }[];
      expect(results[0]!.masks).toHaveLength(1); // multimask_output false, from the shared parameters
      expect(maskIoU(rleDecode(results[0]!.masks[0]!.mask), rleDecode(f.shapes[0]!.mask))).toBeGreaterThanOrEqual(0.8);
    }
    const single = await api()
      .post('/api/v1/segment/points')
      .attach('image', pathOf(imgs[2]!))
      .field('points', JSON.stringify(points[2]))
      .field('multimask_output', 'false');
    expect(single.status).toBe(200);
    expect((await resultOf(done.jobs[2]!.job_id))['results']).toEqual(single.body.results);
  }, 300_000);

  it('one job fails: failed_images 1, completed_images 1, status partial; the job filters find it', async () => {
    const jobs = t.app.get(JobsService);
    const storage = t.app.get<StoragePort>(STORAGE);
    const f = truth.images[3]!;
    await jobs.queue('inference').pause(true);
    let batch: Batch;
    try {
      const res = await api()
        .post('/api/v1/segment/batches')
        .send({ images: [0, 1].map(() => readFileSync(pathOf(f)).toString('base64')), points: [[{ x: 0.4, y: 0.1 }]] });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      batch = res.body as Batch;
      expect(batch.status).toBe('queued');
      // The second image's stored input is damaged before any worker reads it: its job can only fail.
      await storage.put(`inputs/${batch.jobs[1]!.job_id}/image`, Buffer.from('this is not an image any more'));
    } finally {
      await jobs.queue('inference').resume(true);
    }
    const done = await finished(batch.batch_id);
    expect(done).toMatchObject({ status: 'partial', total_images: 2, completed_images: 1, failed_images: 1 });
    expect(done.jobs[0]).toMatchObject({ status: 'completed', type: 'segment.prompt' });
    expect(done.jobs[1]).toMatchObject({ status: 'failed', type: 'segment.auto' });
    expect(done.jobs[1]!.error).toBeTruthy();

    const failed = await api().get(`/api/v1/jobs?status=failed&batch_id=${batch.batch_id}`);
    expect(failed.body.items.map((j: { id: string }) => j.id)).toEqual([done.jobs[1]!.job_id]);
    const status = await api().get(`/api/v1/jobs/${done.jobs[1]!.job_id}/status`);
    expect(status.body).toMatchObject({ status: 'failed', total_images: 1, processed_images: 0 });

    const list = await api().get('/api/v1/segment/batches?page_size=2');
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(3);
    expect(list.body.total_pages).toBe(2);
    expect(list.body.items[0]).toMatchObject({ batch_id: batch.batch_id, status: 'partial', failed_images: 1, completed_images: 1 });
    expect(list.body.items[0].jobs).toBeUndefined();
  }, 300_000);

  it('job filters: model, type, status and batch; unknown values are 400s listing the allowed ones', async () => {
    const all = (await api().get('/api/v1/jobs?page_size=100')).body as { total: number; items: { type: string; model: string }[] };
    expect(all.total).toBe(16); // 5 + 5 batch jobs, 4 single-image checks, 2 of the failing batch
    const sam = await api().get('/api/v1/jobs?model=sam-tiny&page_size=100');
    expect(sam.body.total).toBe(16);
    expect(sam.body.items.every((j: { model: string }) => j.model === 'sam-tiny')).toBe(true);
    expect((await api().get('/api/v1/jobs?model_type=sam-tiny')).body.total).toBe(16);
    expect((await api().get('/api/v1/jobs?model=primitives-obb')).body.total).toBe(0);
    const auto = await api().get('/api/v1/jobs?type=segment.auto&page_size=100');
    expect(auto.body.total).toBe(all.items.filter((j) => j.type === 'segment.auto').length);
    expect(auto.body.total).toBe(4);
    expect(auto.body.items.every((j: { type: string; batch_id: string | null }) => j.type === 'segment.auto')).toBe(true);
    expect((await api().get('/api/v1/jobs?status=completed')).body.total).toBe(15);
    expect((await api().get('/api/v1/jobs?status=completed&type=segment.auto&model=sam-tiny')).body.total).toBe(3);
    expect((await api().get('/api/v1/jobs?status=queued')).body.total).toBe(0);
    expectProblem(await api().get('/api/v1/jobs?status=bogus'), 400, 'VALIDATION_ERROR', /queued, running, completed, failed, cancelled/);
    expectProblem(await api().get('/api/v1/jobs?type=segment.nope'), 400, 'VALIDATION_ERROR', /segment\.prompt, segment\.auto/);
    expectProblem(await api().get('/api/v1/jobs?model=nope'), 400, 'VALIDATION_ERROR', /sam-tiny/);
    // Bob sees none of alice's jobs through any filter.
    expect((await api(bob).get('/api/v1/jobs?model=sam-tiny')).body.total).toBe(0);
  });

  it("another user's batch is a 404, as is a missing one; their list is empty", async () => {
    const mine = (await api().get('/api/v1/segment/batches')).body.items[0] as Batch;
    expectProblem(
      await api(bob).get(`/api/v1/segment/batches/${mine.batch_id}`),
      404,
      'NOT_FOUND',
      `Batch with id ${mine.batch_id} does not exist.`,
    );
    expectProblem(await api().get('/api/v1/segment/batches/3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c'), 404, 'NOT_FOUND');
    expectProblem(await api().get('/api/v1/segment/batches/not-a-uuid'), 404, 'NOT_FOUND');
    expect((await api(bob).get('/api/v1/segment/batches')).body).toMatchObject({ total: 0, items: [] });
  });

  it('bad input is a 400 naming the image or field, and stores nothing', async () => {
    const before = {
      jobs: (await api().get('/api/v1/jobs')).body.total as number,
      batches: (await api().get('/api/v1/segment/batches')).body.total as number,
      inputs: countInputs(),
    };
    const small = readFileSync(pathOf(truth.images[4]!));
    const b64 = small.toString('base64');
    const post = () => api().post('/api/v1/segment/batches');
    const multipart = (fields: Record<string, string>, files: (string | Buffer)[]) => {
      let r = post();
      for (const [k, v] of Object.entries(fields)) r = r.field(k, v);
      for (const [i, f] of files.entries()) r = typeof f === 'string' ? r.attach('images', f) : r.attach('images', f, `f${i}.png`);
      return r;
    };

    // Too many images, in both forms.
    expectProblem(
      await multipart(
        {},
        Array.from({ length: 51 }, () => small),
      ),
      400,
      'VALIDATION_ERROR',
      /at most 50 images/,
    );
    expectProblem(await post().send({ images: Array.from({ length: 51 }, () => 'AAAA') }), 400, 'VALIDATION_ERROR', /no more than 50/);
    // Malformed base64, and a well-formed one that is not an image: the detail names the index.
    expectProblem(await post().send({ images: [b64, 'not*base64!'] }), 400, 'VALIDATION_ERROR', /images\[1\] is not valid base64/);
    const notImage = Buffer.from('just some text, not an image').toString('base64');
    const res = await post().send({ images: [b64, b64, notImage] });
    expectProblem(res, 400, 'IMAGE_VALIDATION_ERROR', /^Image 2 \(image-2\): /);
    expect(res.body.image_index).toBe(2);
    expectProblem(await multipart({}, [small, Buffer.from('not an image')]), 400, 'IMAGE_VALIDATION_ERROR', /^Image 1 \(f1\.png\): /);
    // Bad points JSON, a point outside its image, prompts that do not fit the batch or the mode.
    expectProblem(await multipart({ points: '[[{"x":1,' }, [small]), 400, 'VALIDATION_ERROR', /points must be valid JSON/);
    expectProblem(await multipart({ points: '[[{"x":"a","y":1}]]' }, [small]), 400, 'VALIDATION_ERROR', /points\[0\]\[0\]\.x/);
    expectProblem(await multipart({ points: '[{"x":1,"y":1}]' }, [small]), 400, 'VALIDATION_ERROR', /points\[0\] must be a JSON array/);
    expectProblem(
      await post().send({ images: [b64, b64], points: [null, [{ x: 5000, y: 10 }]] }),
      400,
      'VALIDATION_ERROR',
      /^Image 1 \(image-1\): points\[0\] \(5000, 10\) is outside the image/,
    );
    expectProblem(
      await post().send({ images: [b64], points: [[], [{ x: 1, y: 1 }]] }),
      400,
      'VALIDATION_ERROR',
      /2 lists but the batch has 1/,
    );
    expectProblem(await post().send({ images: [b64], points: [[{ x: 0.5, y: 0.5 }]], mode: 'auto' }), 400, 'VALIDATION_ERROR', /mode auto/);
    expectProblem(await post().send({ images: [b64], mode: 'prompt' }), 400, 'VALIDATION_ERROR', /mode prompt/);
    expectProblem(
      await post().send({ images: [b64], boxes: [[{ x1: 50, y1: 10, x2: 20, y2: 30 }]] }),
      400,
      'VALIDATION_ERROR',
      /box\[0\] is empty/,
    );
    // Shared parameters are checked as on the single-image routes; the model must be a SAM model.
    expectProblem(await post().send({ images: [b64], parameters: { points_per_side: 0 } }), 400, 'VALIDATION_ERROR', /points_per_side/);
    expectProblem(await multipart({ output: 'jpeg' }, [small]), 400, 'VALIDATION_ERROR', /output/);
    expectProblem(await post().send({ images: [b64], model: 'primitives-obb' }), 400, 'VALIDATION_ERROR', /sam-tiny/);
    expectProblem(await post().send({ images: [] }), 400, 'VALIDATION_ERROR', /at least one image/);
    expectProblem(await multipart({ coords: 'pixels' }, []), 400, 'VALIDATION_ERROR', /at least one image/);
    expectProblem(await post().send({ images: [b64], extra: 1 }), 400, 'VALIDATION_ERROR', /extra should not exist/);

    expect((await api().get('/api/v1/jobs')).body.total).toBe(before.jobs);
    expect((await api().get('/api/v1/segment/batches')).body.total).toBe(before.batches);
    expect(countInputs()).toBe(before.inputs);
  });
});
