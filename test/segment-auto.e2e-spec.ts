import { resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskArea, maskToBbox, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { fixtures } from './support/fixtures.js';
import { expectProblem, type LoggedIn, waitFor } from './support/http.js';

/** POST /segment/auto and /segment/auto/async through HTTP, the queue and the worker running sam-tiny. */

const FILE = 'sam/shapes-03-500x500.png';
/** Small grid: sam-tiny's decoder runs once per point (~0.2 s each on 2 cores). */
const FAST = { points_per_side: '4', pred_iou_thresh: '0.5', stability_score_thresh: '0.8' };

interface Mask {
  segmentation: Rle;
  area: number;
  bbox: number[];
  predicted_iou: number;
  point_coords: number[][];
  stability_score: number;
  crop_box: number[];
}

describe('POST /segment/auto (automatic segmentation)', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('segauto'));
  });
  afterAll(() => t?.close());

  const post = (path: string, fields: Record<string, string>, user = alice): request.Test => {
    let req = request(t.server).post(`/api/v1/segment/auto${path}`).set(user.auth);
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req;
  };

  function checkMasks(body: { width: number; height: number; masks: Mask[] }): void {
    expect(body.masks.length).toBeGreaterThan(0);
    for (const m of body.masks) {
      expect(m.segmentation.size).toEqual([body.height, body.width]);
      const bitmap = rleDecode(m.segmentation);
      expect(m.area).toBe(maskArea(bitmap));
      expect(m.bbox).toEqual(maskToBbox(bitmap, body.width, body.height));
      expect(m.crop_box).toEqual([0, 0, body.width, body.height]);
      expect(m.predicted_iou).toBeGreaterThan(0.5);
      expect(m.stability_score).toBeGreaterThanOrEqual(0.8);
    }
  }

  it('sync: 200 with the masks (binary_mask as uncompressed RLE); the same result at /jobs/{id}/result; progress 1', async () => {
    const res = await post('', FAST).attach('image', resolve(fixtures, FILE));
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
    expect(res.body).toMatchObject({ model: 'sam-tiny', width: 500, height: 500, output_mode: 'binary_mask' });
    expect(res.body.segmentation_format).toBe('uncompressed_rle');
    expect(res.body.count).toBe(res.body.masks.length);
    checkMasks(res.body);
    const jobId = res.body.job_id as string;
    const status = await request(t.server).get(`/api/v1/jobs/${jobId}/status`).set(alice.auth);
    expect(status.body).toMatchObject({ status: 'completed', progress: 1 });
    const result = await request(t.server).get(`/api/v1/jobs/${jobId}/result`).set(alice.auth);
    expect(result.body.result.masks).toEqual(res.body.masks);
    expectProblem(await request(t.server).get(`/api/v1/jobs/${jobId}/result`).set(bob.auth), 404, 'JOB_NOT_FOUND');
  }, 120_000);

  it('async: 202 with the job URLs; the result arrives with COCO RLE strings, model_type as the alias of model', async () => {
    const res = await post('/async', { ...FAST, output_mode: 'coco_rle', model_type: 'sam-tiny' }).attach('image', resolve(fixtures, FILE));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const jobId = res.body.job_id as string;
    expect(res.body).toEqual({
      job_id: jobId,
      status: 'queued',
      status_url: `/api/v1/jobs/${jobId}/status`,
      result_url: `/api/v1/jobs/${jobId}/result`,
    });
    const done = await waitFor(async () => {
      const r = await request(t.server).get(`${res.body.result_url}?wait_ms=30000`).set(alice.auth);
      return r.body.status === 'completed' || r.body.status === 'failed' ? r : null;
    }, 90_000);
    expect(done.body.status, JSON.stringify(done.body)).toBe('completed');
    const masks = done.body.result.masks as { segmentation: { counts: unknown } }[];
    expect(masks.length).toBeGreaterThan(0);
    for (const m of masks) expect(typeof m.segmentation.counts).toBe('string');
    expect((await request(t.server).get(`/api/v1/jobs/${jobId}/status`).set(alice.auth)).body.progress).toBe(1);
    expectProblem(await request(t.server).get(`/api/v1/jobs/${jobId}`).set(bob.auth), 404, 'JOB_NOT_FOUND');
  }, 120_000);
  // Bad input and ownership: test/segment-bad-input.e2e-spec.ts (one table for every segment route).
});
