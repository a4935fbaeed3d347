import { readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { expectProblem, type LoggedIn, registerAndLogin } from './support/http.js';

/**
 * The bad-input and ownership matrix of the segmentation routes: every refusal is a 4xx problem+json with a clear
 * detail and a code, and stores nothing (the user's jobs and images and the files under the storage folder are the
 * same before and after). The limits are lowered so that real fixtures cross them: IMAGE_MAX_SIDE 800 (the
 * 1024×600 fixture is too wide) and IMAGE_MAX_BYTES 300 000 (the 429 kB fixture is too large).
 */

const GOOD = resolve(fixtures, 'sam/shapes-03-500x500.png'); // 500×500, 231 kB
const TOO_WIDE = resolve(fixtures, 'sam/shapes-04-1024x600.png'); // 21 kB
const TOO_LARGE = resolve(fixtures, 'sam/shapes-01-480x640.png'); // 429 kB
const NOT_AN_IMAGE = Buffer.from('%PDF-1.7 this is not an image at all');

type Attach = 'good' | 'wide' | 'large' | 'text' | 'two' | 'misnamed' | 'none' | 'bobs' | 'mine';
interface Case {
  name: string;
  routes: readonly string[];
  fields?: Record<string, string>;
  attach?: Attach;
  status: number;
  code: string;
  detail: RegExp;
  /** The field named in errors[], when the refusal is a field's. */
  field?: string;
}

const POINTS = ['points', 'points/async'] as const;
const BOX = ['box', 'box/async'] as const;
const AUTO = ['auto', 'auto/async'] as const;
const ALL = [...POINTS, ...BOX, ...AUTO] as const;
const pt = JSON.stringify([{ x: 100, y: 100 }]);
const box = JSON.stringify({ x1: 50, y1: 50, x2: 200, y2: 200 });
/** The prompt a route needs besides what a case tests. */
const prompt = (route: string): Record<string, string> =>
  route.startsWith('points') ? { points: pt } : route.startsWith('box') ? { box } : { points_per_side: '2' };

const CASES: Case[] = [
  // points
  {
    name: 'malformed points JSON',
    routes: POINTS,
    fields: { points: '[{"x":1,' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points must be valid JSON/,
    field: 'points',
  },
  {
    name: 'points not an array of points',
    routes: POINTS,
    fields: { points: '{"a":1}' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points/,
    field: 'points',
  },
  {
    name: 'a point coordinate that is not a number',
    routes: POINTS,
    fields: { points: '[{"x":"a","y":2}]' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points\[0\]\.x/,
  },
  {
    name: 'an infinite coordinate',
    routes: POINTS,
    fields: { points: '[{"x":1e999,"y":2}]' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points\[0\]\.x/,
  },
  {
    name: 'a label other than 0 or 1',
    routes: POINTS,
    fields: { points: '[{"x":10,"y":10,"label":2}]' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /label/,
  },
  { name: 'no point', routes: POINTS, fields: { points: '[]' }, status: 400, code: 'VALIDATION_ERROR', detail: /at least one point/ },
  {
    name: 'more than 64 points',
    routes: POINTS,
    fields: { points: JSON.stringify(Array.from({ length: 65 }, () => ({ x: 10, y: 10 }))) },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /at most 64/,
  },
  {
    name: 'a point outside the image (pixels)',
    routes: POINTS,
    fields: { points: '[{"x":501,"y":10}]' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points\[0\] \(501, 10\) is outside the image: the image is 500×500 pixels/,
  },
  {
    name: 'a point outside the image (negative)',
    routes: POINTS,
    fields: { points: '[{"x":-1,"y":10}]' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /outside the image/,
  },
  {
    name: 'a point outside the image (normalized)',
    routes: POINTS,
    fields: { points: '[{"x":0.5,"y":1.5}]', coords: 'normalized' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /normalized coordinates must lie in \[0, 1\]/,
  },
  {
    name: 'a point outside one of your images',
    routes: POINTS,
    fields: { points: '[{"x":10,"y":900}]' },
    attach: 'mine',
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /outside the image/,
  },
  {
    name: 'points added to a box that are outside',
    routes: BOX,
    fields: { points: '[{"x":10,"y":900}]' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points\[0\].*outside the image/,
  },
  // box
  {
    name: 'malformed box JSON',
    routes: BOX,
    fields: { box: '{"x1":1' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /box must be valid JSON/,
    field: 'box',
  },
  {
    name: 'a box with x2 < x1',
    routes: BOX,
    fields: { box: JSON.stringify({ x1: 100, y1: 10, x2: 50, y2: 60 }) },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /box\[0\] is empty: x2 must be greater than x1/,
  },
  {
    name: 'a box with a negative width',
    routes: BOX,
    fields: { box: JSON.stringify({ x: 100, y: 10, width: -5, height: 60 }) },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /box\[0\] is empty/,
  },
  {
    name: 'a box mixing both forms',
    routes: BOX,
    fields: { box: JSON.stringify({ x: 1, y: 1, x2: 50, y2: 60 }) },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /box\[0\] must be \{x, y, width, height\} or \{x1, y1, x2, y2\}/,
  },
  {
    name: 'a box outside the image',
    routes: BOX,
    fields: { box: JSON.stringify({ x1: 10, y1: 10, x2: 50, y2: 6000 }) },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /box\[0\] .* is outside the image/,
  },
  { name: 'no box', routes: BOX, fields: { box: '[]' }, status: 400, code: 'VALIDATION_ERROR', detail: /at least one box/ },
  {
    name: 'more than 16 boxes',
    routes: BOX,
    fields: { box: JSON.stringify(Array.from({ length: 17 }, () => ({ x1: 1, y1: 1, x2: 9, y2: 9 }))) },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /at most 16/,
  },
  // auto
  {
    name: 'points_per_side 0',
    routes: AUTO,
    fields: { points_per_side: '0' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points_per_side/,
    field: 'points_per_side',
  },
  {
    name: 'points_per_side 129',
    routes: AUTO,
    fields: { points_per_side: '129' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points_per_side/,
    field: 'points_per_side',
  },
  {
    name: 'points_per_side not a number',
    routes: AUTO,
    fields: { points_per_side: 'many' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /points_per_side/,
    field: 'points_per_side',
  },
  {
    name: 'crop_n_layers 4',
    routes: AUTO,
    fields: { crop_n_layers: '4' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /crop_n_layers/,
    field: 'crop_n_layers',
  },
  {
    name: 'pred_iou_thresh above 1',
    routes: AUTO,
    fields: { pred_iou_thresh: '1.5' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /pred_iou_thresh/,
    field: 'pred_iou_thresh',
  },
  {
    name: 'a crop layer with no points',
    routes: AUTO,
    fields: { points_per_side: '2', crop_n_layers: '2', crop_n_points_downscale_factor: '4' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /crop layer 2 would have no points/,
    field: 'crop_n_points_downscale_factor',
  },
  {
    name: 'an unknown output_mode',
    routes: AUTO,
    fields: { output_mode: 'png' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /output_mode/,
    field: 'output_mode',
  },
  // every route
  {
    name: 'a model that is not a SAM model',
    routes: ALL,
    fields: { model: 'primitives-obb' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /Model id was not correct\. Choose from \(id, name, kind\) \[\(\d+, 'sam-tiny', 'sam'\)\]/,
  },
  {
    name: 'an unknown model_type',
    routes: ALL,
    fields: { model_type: 'vit_h' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /sam-tiny/,
  },
  {
    name: 'model and model_type naming different models',
    routes: ALL,
    fields: { model: 'sam-tiny', model_type: 'other' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /model and model_type name different models/,
  },
  {
    name: 'an image wider than IMAGE_MAX_SIDE',
    routes: ALL,
    attach: 'wide',
    status: 400,
    code: 'IMAGE_VALIDATION_ERROR',
    detail: /The image is 1024×600 px; at most 800 px per side is accepted \(IMAGE_MAX_SIDE\)/,
  },
  {
    name: 'an image larger than IMAGE_MAX_BYTES',
    routes: ALL,
    attach: 'large',
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    detail: /^The file is larger than the upload size limit\.$/,
  },
  {
    name: 'two image files',
    routes: ALL,
    attach: 'two',
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /^The file field "image" is not expected here, or holds more files than this route takes\.$/,
  },
  {
    name: 'the file under another field name',
    routes: ALL,
    attach: 'misnamed',
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /^The file field "images" is not expected here/,
  },
  {
    name: 'a form field over the multipart field limit',
    routes: POINTS,
    fields: { points: JSON.stringify(Array.from({ length: 64 }, () => ({ x: 10, y: 10, note: 'x'.repeat(300) }))) },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /^The form field "points" is longer than a form field may be\.$/,
  },
  {
    name: 'a field the route does not take',
    routes: ALL,
    fields: { points_per_sides: '4' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /property points_per_sides should not exist/,
    field: 'points_per_sides',
  },
  {
    name: 'a file that is not an image',
    routes: ALL,
    attach: 'text',
    status: 400,
    code: 'IMAGE_VALIDATION_ERROR',
    detail: /not an image Aperture can read/,
  },
  {
    name: 'no image',
    routes: ALL,
    attach: 'none',
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /Send the image as the multipart field "image"/,
    field: 'image',
  },
  {
    name: 'both an image and image_id',
    routes: ALL,
    fields: { image_id: '00000000-0000-4000-8000-000000000000' },
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /either an image file or image_id, not both/,
  },
  {
    name: 'an image_id that is not a uuid',
    routes: ALL,
    fields: { image_id: 'abc' },
    attach: 'none',
    status: 400,
    code: 'VALIDATION_ERROR',
    detail: /image_id/,
    field: 'image_id',
  },
  {
    name: "another user's image",
    routes: ALL,
    attach: 'bobs',
    status: 404,
    code: 'NOT_FOUND',
    detail: /^Image with id .* does not exist\.$/,
  },
];

/** Every file under dir, relative to it. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
}

describe('segment routes: the bad-input and ownership matrix (4xx problem+json, nothing stored)', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  let dataDir: string;
  let aliceImage: string;
  let bobImage: string;
  beforeAll(async () => {
    const env = testEnv('segbad', { IMAGE_MAX_SIDE: '800', IMAGE_MAX_BYTES: '300000' });
    dataDir = env['DATA_DIR']!;
    t = await createTestApp(env, { worker: true });
    alice = await registerAndLogin(t.server, 'segbad_a');
    bob = await registerAndLogin(t.server, 'segbad_b');
    const upload = async (u: LoggedIn) => {
      const res = await request(t.server).post('/api/v1/images').set(u.auth).attach('images', GOOD);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.data[0].id as string;
    };
    aliceImage = await upload(alice);
    bobImage = await upload(bob);
    // The snapshot below sees the storage folder: both uploads are in it.
    expect(files(dataDir).filter((f) => f.endsWith('/original'))).toHaveLength(2);
  });
  afterAll(() => t?.close());

  const snapshot = async () => ({
    jobs: (await request(t.server).get('/api/v1/jobs').set(alice.auth)).body.total as number,
    images: (await request(t.server).get('/api/v1/images').set(alice.auth)).body.total as number,
    files: files(dataDir),
  });

  function send(route: string, c: Case): request.Test {
    let req = request(t.server).post(`/api/v1/segment/${route}`).set(alice.auth);
    const attach = c.attach ?? 'good';
    const fields: Record<string, string> = { ...prompt(route), ...c.fields };
    if (attach === 'good') req = req.attach('image', GOOD);
    else if (attach === 'wide') req = req.attach('image', TOO_WIDE);
    else if (attach === 'large') req = req.attach('image', TOO_LARGE);
    else if (attach === 'text') req = req.attach('image', NOT_AN_IMAGE, 'shapes.png');
    else if (attach === 'two') req = req.attach('image', GOOD).attach('image', GOOD);
    else if (attach === 'misnamed') req = req.attach('images', GOOD);
    else if (attach === 'bobs') fields['image_id'] = bobImage;
    else if (attach === 'mine') fields['image_id'] = aliceImage;
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req;
  }

  const rows = CASES.flatMap((c) => c.routes.map((route) => [`${route}: ${c.name}`, route, c] as const));

  it.each(rows)('%s', async (_name, route, c) => {
    const before = await snapshot();
    const res = await send(route, c);
    expectProblem(res, c.status, c.code, c.detail);
    if (c.field) expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(c.field);
    expect(await snapshot()).toEqual(before);
  });

  it('the good request of each route is accepted (so the matrix tests the bad part only)', async () => {
    for (const route of ['points/async', 'box/async', 'auto/async']) {
      const res = await send(route, { name: 'good', routes: [], status: 202, code: '', detail: /./ });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const done = await request(t.server).get(`/api/v1/jobs/${res.body.job_id}/result?wait_ms=30000`).set(alice.auth);
      expect(done.body.status, JSON.stringify(done.body).slice(0, 300)).toBe('completed');
    }
  }, 120_000);

  it("another user's segmentation job (detail, status, result, visualization, artifact, delete) and embedding are 404s", async () => {
    const res = await send('points/async', { name: 'mine', routes: [], attach: 'mine', status: 202, code: '', detail: /./ });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.job_id as string;
    const job = (await request(t.server).get(`/api/v1/jobs/${id}/result?wait_ms=30000`).set(alice.auth)).body;
    expect(job.status).toBe('completed');
    const artifact = (await request(t.server).get(`/api/v1/jobs/${id}`).set(alice.auth)).body.artifacts[0].id as string;
    expect((await request(t.server).get(`/api/v1/jobs/${id}/visualization.svg`).set(alice.auth)).status).toBe(200);
    const bobsBefore = (await request(t.server).get('/api/v1/jobs').set(bob.auth)).body.total as number;
    const notFound = `Job with id ${id} does not exist.`;
    for (const path of ['', '/status', '/result', '/result?wait_ms=100', '/visualization.svg', `/artifacts/${artifact}`]) {
      expectProblem(await request(t.server).get(`/api/v1/jobs/${id}${path}`).set(bob.auth), 404, 'JOB_NOT_FOUND', notFound);
    }
    expectProblem(await request(t.server).delete(`/api/v1/jobs/${id}`).set(bob.auth), 404, 'JOB_NOT_FOUND', notFound);
    expectProblem(
      await request(t.server).get(`/api/v1/images/${aliceImage}/embedding`).set(bob.auth),
      404,
      'NOT_FOUND',
      `Image with id ${aliceImage} does not exist.`,
    );
    expect((await request(t.server).get(`/api/v1/jobs/${id}/status`).set(alice.auth)).body.status).toBe('completed');
    expect((await request(t.server).get('/api/v1/jobs').set(bob.auth)).body.total).toBe(bobsBefore);
  }, 60_000);
});
