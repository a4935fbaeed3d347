import { resolve } from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskIoU, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { probIoU } from '@aperture/inference/postprocess/obb.js';
import { type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { fixtures, gt } from './support/fixtures.js';
import { expectProblem, type LoggedIn, waitFor } from './support/http.js';

/** Every image model through HTTP, the queue and the worker (one process), on the committed fixtures with ground truth. */

describe('POST /models/{name}/infer (queued model runs on real images)', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('infer'));
  });
  afterAll(() => t?.close());

  async function infer(
    model: string,
    file: string,
    fields: Record<string, string> = {},
    user = alice,
  ): Promise<{ job_id: string; result: Record<string, unknown> }> {
    let req = request(t.server).post(`/api/v1/models/${model}/infer`).set(user.auth).attach('image', resolve(fixtures, file));
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    const res = await req;
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const jobId = res.body.job_id as string;
    const job = await waitFor(async () => {
      const s = (await request(t.server).get(`/api/v1/jobs/${jobId}`).set(user.auth)).body;
      return s.status === 'completed' || s.status === 'failed' ? s : null;
    }, 60000);
    expect(job.status, JSON.stringify(job)).toBe('completed');
    const result = await request(t.server).get(`/api/v1/jobs/${jobId}/result`).set(user.auth);
    return { job_id: jobId, result: result.body.result ?? result.body };
  }

  it('primitives-obb finds the drawn primitives with their classes and orientation', async () => {
    const truth = gt<{
      classes: string[];
      images: { file: string; width: number; height: number; primitives: { class: string; box: number[] }[] }[];
    }>('primitives/ground-truth.json');
    const img = truth.images[0]!;
    const { result } = await infer('primitives-obb', img.file);
    expect(result).toMatchObject({ model: 'primitives-obb', kind: 'detector', width: img.width, height: img.height });
    const dets = result['detections'] as {
      class: string;
      score: number;
      cx: number;
      cy: number;
      w: number;
      h: number;
      angle: number;
      corners: number[][];
    }[];
    let found = 0;
    for (const p of img.primitives) {
      const [cx, cy, w, h, angle] = p.box as [number, number, number, number, number];
      if (dets.some((d) => d.class === p.class && probIoU(d, { cx, cy, w, h, angle }) > 0.5)) found++;
    }
    expect(found / img.primitives.length).toBeGreaterThanOrEqual(0.8);
    for (const d of dets) {
      expect(d.corners).toHaveLength(4);
      expect(d.angle).toBeGreaterThanOrEqual(0);
      expect(d.angle).toBeLessThan(Math.PI);
    }
  });

  it('fragments-seg finds the calibration ball and the fragments, masks as COCO RLE of the original size', async () => {
    const truth = gt<{
      images: { file: string; width: number; height: number; ball: { cx: number; cy: number; radius_px: number }; fragments: unknown[] }[];
    }>('fragments/ground-truth.json');
    const img = truth.images[0]!;
    const { result } = await infer('fragments-seg', img.file);
    const dets = result['detections'] as { class: string; box_xyxy: number[]; area: number; mask: Rle }[];
    const balls = dets.filter((d) => d.class === 'calibration_ball');
    expect(balls.length).toBeGreaterThanOrEqual(1);
    const [x1, y1, x2, y2] = balls[0]!.box_xyxy as [number, number, number, number];
    expect(Math.hypot((x1 + x2) / 2 - img.ball.cx, (y1 + y2) / 2 - img.ball.cy)).toBeLessThan(5);
    const fragments = dets.filter((d) => d.class === 'fragment');
    expect(fragments.length).toBeGreaterThanOrEqual(0.8 * img.fragments.length);
    expect(fragments.length).toBeLessThanOrEqual(1.2 * img.fragments.length);
    expect(fragments[0]!.mask.size).toEqual([img.height, img.width]);
    expect(rleDecode(fragments[0]!.mask).reduce((a, b) => a + b, 0)).toBe(fragments[0]!.area);
  });

  it('sam-tiny returns the clicked shape, and the boxed one', async () => {
    const truth = gt<{
      images: { file: string; shapes: { mask: Rle; point: [number, number]; box: [number, number, number, number] }[] }[];
    }>('sam/ground-truth.json');
    const img = truth.images[1]!; // portrait
    const shape = img.shapes[0]!;
    const click = await infer('sam-tiny', img.file, { points: JSON.stringify([{ x: shape.point[0], y: shape.point[1], label: 1 }]) });
    expect(click.result['mask_index']).toBeGreaterThanOrEqual(1);
    expect(maskIoU(rleDecode(click.result['mask'] as Rle), rleDecode(shape.mask))).toBeGreaterThan(0.75);
    const [x1, y1, x2, y2] = shape.box;
    const boxed = await infer('sam-tiny', img.file, { box: JSON.stringify({ x1, y1, x2, y2 }) });
    expect(boxed.result['mask_index']).toBe(0);
    expect(maskIoU(rleDecode(boxed.result['mask'] as Rle), rleDecode(shape.mask))).toBeGreaterThan(0.8);
  });

  it('sam-tiny: a second prompt on the same image is an embedding cache hit, shown in the model statistics', async () => {
    const truth = gt<{ images: { file: string; shapes: { point: [number, number] }[] }[] }>('sam/ground-truth.json');
    const img = truth.images[2]!;
    const [a, b] = img.shapes as [{ point: [number, number] }, { point: [number, number] }];
    const click = (p: [number, number]) => ({ points: JSON.stringify([{ x: p[0], y: p[1], label: 1 }]) });
    const first = await infer('sam-tiny', img.file, click(a.point));
    const second = await infer('sam-tiny', img.file, click(b.point));
    const again = await infer('sam-tiny', img.file, click(a.point));
    expect(again.result['mask']).toEqual(first.result['mask']);
    expect(second.result['mask']).not.toEqual(first.result['mask']);
    // Workers publish their statistics with their heartbeat: wait for the report of these runs.
    const stats = await waitFor(async () => {
      const body = (await request(t.server).get('/api/v1/models/sam-tiny/stats').set(alice.auth)).body;
      const cache = body.total?.embedding_cache as { hits: number; misses: number } | null | undefined;
      return cache && cache.hits >= 2 && cache.misses >= 1 ? body : null;
    }, 30000);
    expect(stats.total.embedding_cache).toMatchObject({ entries: expect.any(Number), bytes: expect.any(Number), evictions: 0 });
    expect(stats.total.embedding_cache.entries).toBeGreaterThanOrEqual(1);
    expect(stats.workers[0].stats.embedding_cache.hits).toBeGreaterThanOrEqual(2);
    const xray = (await request(t.server).get('/api/v1/models/xray/stats').set(alice.auth)).body;
    expect(xray.total.embedding_cache).toBeNull();
  });

  it('xray makes one PNG result option per style, each the size of the input', async () => {
    const file = 'xray/input-00-640x480.jpg';
    const { job_id, result } = await infer('xray', file);
    const options = result['options'] as { style: string; artifact_id: string }[];
    expect(options.map((o) => o.style)).toEqual(['classic', 'negative', 'cyan-glow']);
    for (const o of options) {
      const png = await request(t.server)
        .get(`/api/v1/jobs/${job_id}/artifacts/${o.artifact_id}`)
        .set(alice.auth)
        .buffer(true)
        .parse((res, cb) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => cb(null, Buffer.concat(chunks)));
        });
      expect(png.status).toBe(200);
      expect(await sharp(png.body as Buffer).metadata()).toMatchObject({ format: 'png', width: 640, height: 480 });
    }
    expectProblem(await request(t.server).get(`/api/v1/jobs/${job_id}`).set(bob.auth), 404, 'JOB_NOT_FOUND');
  });

  it('GET /jobs/{id}/status and /result with wait_ms answer once the job is final: one request, no polling', async () => {
    const res = await request(t.server)
      .post('/api/v1/models/xray/infer')
      .set(alice.auth)
      .attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg'));
    expect(res.status).toBe(202);
    const id = res.body.job_id as string;
    const now = await request(t.server).get(`/api/v1/jobs/${id}/status`).set(alice.auth);
    expect(['queued', 'running']).toContain(now.body.status); // three PNG encodes: not done a moment after the 202
    const waited = await request(t.server).get(`/api/v1/jobs/${id}/status?wait_ms=20000`).set(alice.auth);
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ id, status: 'completed', progress: 1, error: null });
    const result = await request(t.server).get(`/api/v1/jobs/${id}/result?wait_ms=20000`).set(alice.auth);
    expect(result.body.result.options).toHaveLength(3);
    // Another user still gets the 404, without waiting.
    expectProblem(await request(t.server).get(`/api/v1/jobs/${id}/status?wait_ms=20000`).set(bob.auth), 404, 'JOB_NOT_FOUND');
    for (const bad of ['-1', '30001', 'soon']) {
      expectProblem(
        await request(t.server).get(`/api/v1/jobs/${id}/status?wait_ms=${bad}`).set(alice.auth),
        400,
        'VALIDATION_ERROR',
        /wait_ms/,
      );
    }
  });

  it('counts the runs in the model statistics', async () => {
    const stats = (await request(t.server).get('/api/v1/models/primitives-obb/stats').set(alice.auth)).body;
    expect(stats.total.inference_count).toBeGreaterThanOrEqual(1);
    for (const phase of ['success', 'queue', 'preprocess', 'compute', 'postprocess'])
      expect(stats.total[phase].count, phase).toBeGreaterThanOrEqual(1);
    expect(stats.total.compute.mean_ms).toBeGreaterThan(0);
    expect(stats.total.last_inference_at).toEqual(expect.any(String));
  });

  it('refuses bad input with 4xx problems, never a 5xx', async () => {
    const post = (model: string) => request(t.server).post(`/api/v1/models/${model}/infer`).set(alice.auth);
    expectProblem(await post('primitives-obb').attach('image', Buffer.from('not an image at all'), 'x.jpg'), 400, 'IMAGE_VALIDATION_ERROR');
    expectProblem(await post('primitives-obb').field('conf', '0.5'), 400, 'VALIDATION_ERROR', /multipart field "image"/);
    expectProblem(
      await post('primitives-obb').attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg')).field('conf', '7'),
      400,
      'VALIDATION_ERROR',
    );
    // The same threshold rule as task creation: strictly between 0 and 1.
    for (const field of ['conf', 'iou']) {
      for (const value of ['0', '1']) {
        expectProblem(
          await post('primitives-obb').attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg')).field(field, value),
          400,
          'VALIDATION_ERROR',
          new RegExp(`^${field} must be a number strictly between 0 and 1$`),
        );
      }
    }
    expectProblem(
      await post('scene-gru').attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg')),
      400,
      'VALIDATION_ERROR',
      /classifies detected primitives/,
    );
    expectProblem(
      await post('sam-tiny').attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg')),
      400,
      'VALIDATION_ERROR',
      /needs a prompt/,
    );
    expectProblem(
      await post('sam-tiny').attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg')).field('points', '[{"x":1}]'),
      400,
      'VALIDATION_ERROR',
      /points/,
    );
    expectProblem(
      await post('sam-tiny').attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg')).field('box', '{"x1":9,"y1":0,"x2":4,"y2":3}'),
      400,
      'VALIDATION_ERROR',
      /box\.x2 must be greater than x1/,
    );
    expectProblem(await post('nope').attach('image', resolve(fixtures, 'xray/input-00-640x480.jpg')), 404, 'NOT_FOUND');
    const big = await sharp({ create: { width: 5000, height: 20, channels: 3, background: '#888' } })
      .png()
      .toBuffer();
    expectProblem(await post('xray').attach('image', big, 'wide.png'), 400, 'IMAGE_VALIDATION_ERROR', /at most 4096 px/);
  });
});
