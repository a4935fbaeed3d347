import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { unzipSync } from 'fflate';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { fixtures, gt } from './support/fixtures.js';
import { polygonIoU, type Pt } from './support/geometry.js';
import { expectProblem, type LoggedIn, waitFor } from './support/http.js';
import { hugePngHeader } from './support/images.js';

/**
 * Prediction tasks and fragment analyses through HTTP, the queue and the worker (one process), with the shipped models on the
 * committed fixtures.
 */

interface PrimitiveTruth {
  file: string;
  width: number;
  height: number;
  scene: string;
  primitives: { class: string; corners: Pt[] }[];
}
interface FragmentTruth {
  file: string;
  real_radius: number;
  unit: string;
  true_D50: number;
  true_D10: number;
  true_D90: number;
  true_diameters_real: number[];
}
/** The shipped segmenter's known D50 misses and their bound (see libs/analysis/src/fragments.fixtures.int-spec.ts). */
const KNOWN_D50_MISSES: Record<string, number> = { 'fragments/fragments-05-600x800.png': 0.09 };

type Task = {
  id: string;
  status: string;
  type: string;
  image_id: string;
  result: Record<string, unknown> | null;
  artifacts: { name: string; size_bytes: number }[];
  error: string | null;
};

describe('tasks: prediction and fragment analysis', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('tasks'));
  });
  afterAll(() => t?.close());

  async function create(
    fields: Record<string, string>,
    file?: string | { buffer: Buffer; name: string },
    user = alice,
  ): Promise<request.Response> {
    if (!file) return request(t.server).post('/api/v1/tasks').set(user.auth).send(fields);
    let req = request(t.server).post('/api/v1/tasks').set(user.auth);
    req = typeof file === 'string' ? req.attach('image', resolve(fixtures, file)) : req.attach('image', file.buffer, file.name);
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req;
  }

  async function finished(id: string, user = alice): Promise<Task> {
    return waitFor(async () => {
      const r = await request(t.server).get(`/api/v1/tasks/${id}`).set(user.auth);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return ['completed', 'failed', 'cancelled'].includes(r.body.status) ? (r.body as Task) : null;
    }, 120000);
  }

  async function imageCount(user = alice): Promise<number> {
    return (await request(t.server).get('/api/v1/images').set(user.auth)).body.total as number;
  }

  it('prediction: primitives of every fixture scene (recall ≥ 0.9 at IoU 0.5, class right) and the scene from them (≥ 90%)', async () => {
    const truth = gt<{ images: PrimitiveTruth[] }>('primitives/ground-truth.json').images;
    const ids: string[] = [];
    for (const img of truth) {
      const res = await create({ type: 'prediction', detection_model: 'primitives-obb', classification_model: '2' }, img.file);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(res.body).toMatchObject({ type: 'prediction', status: 'queued', id: expect.any(String), image_id: expect.any(String) });
      ids.push(res.body.id);
    }
    let found = 0;
    let total = 0;
    let scenes = 0;
    for (const [i, img] of truth.entries()) {
      const task = await finished(ids[i]!);
      expect(task.status, task.error ?? '').toBe('completed');
      const r = task.result as {
        image_class: string;
        class_probs: Record<string, number>;
        primitives: {
          primitive_class: string;
          probability: number;
          x: number;
          y: number;
          width: number;
          height: number;
          rotation: number;
          corners: number[][];
          corners_px: Pt[];
        }[];
      };
      expect(Object.keys(r.class_probs).sort()).toEqual(['greenhouse', 'livingroom', 'office', 'warehouse']);
      expect(Object.values(r.class_probs).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 2);
      for (const p of r.primitives) {
        for (const v of [p.x, p.y, p.width, p.height, p.probability]) expect(v).toBeGreaterThanOrEqual(0);
        for (const v of [p.x, p.y, p.probability]) expect(v).toBeLessThanOrEqual(1);
        expect(p.rotation).toBeGreaterThanOrEqual(0);
        expect(p.rotation).toBeLessThan(1);
        expect(p.corners).toHaveLength(4);
        // the normalized corners are the pixel corners over the image size
        expect(p.corners[0]![0]).toBeCloseTo(p.corners_px[0]![0] / img.width, 3);
      }
      for (const g of img.primitives) {
        total++;
        if (r.primitives.some((p) => p.primitive_class === g.class && polygonIoU(p.corners_px, g.corners) >= 0.5)) found++;
      }
      if (r.image_class === img.scene) scenes++;
      expect(task.artifacts.map((a) => a.name).sort()).toEqual(['annotated.jpg', 'result.json']);
    }
    console.log(
      `[metrics] prediction through the API: primitive recall@IoU0.5 ${found}/${total} = ${(found / total).toFixed(3)}; scene accuracy ` +
        `${scenes}/${truth.length}`,
    );
    expect(found / total).toBeGreaterThanOrEqual(0.9);
    expect(scenes / truth.length).toBeGreaterThanOrEqual(0.9);
  });

  it('fragments: calibrated D50 within 5% of truth (bar one known miss); the ZIP holds exactly the files the task lists', async () => {
    const truth = gt<{ images: FragmentTruth[] }>('fragments/ground-truth.json').images;
    const ids: string[] = [];
    for (const img of truth) {
      const res = await create(
        { type: 'fragments', real_radius: String(img.real_radius), unit: img.unit, conf: '0.25', iou: '0.7' },
        img.file,
      );
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      ids.push(res.body.id);
    }
    const lines: string[] = [];
    for (const [i, img] of truth.entries()) {
      const task = await finished(ids[i]!);
      expect(task.status, task.error ?? '').toBe('completed');
      const r = task.result as {
        calibrated: boolean;
        unit: string;
        count: number;
        diameters: number[];
        d10: number;
        d50: number;
        d90: number;
        min: number;
        max: number;
        mean: number;
        ball: { radius_px: number } | null;
      };
      expect(r.calibrated).toBe(true);
      expect(r.unit).toBe('mm');
      expect(r.count).toBe(r.diameters.length);
      expect([...r.diameters].sort((a, b) => a - b)).toEqual(r.diameters);
      expect(r.min).toBe(r.diameters[0]);
      expect(r.max).toBe(r.diameters.at(-1));
      expect(r.d10).toBeLessThanOrEqual(r.d50);
      expect(r.d50).toBeLessThanOrEqual(r.d90);
      const err = Math.abs(r.d50 - img.true_D50) / img.true_D50;
      lines.push(
        `${img.file}: D50 ${r.d50} vs ${img.true_D50} (${(100 * err).toFixed(1)}%), count ${r.count} vs ${img.true_diameters_real.length}`,
      );
      const missBound = KNOWN_D50_MISSES[img.file];
      if (missBound !== undefined) {
        // The shipped segmenter's misses (see libs/analysis/src/fragments.fixtures.int-spec.ts: with the true masks the same
        // calibration is within 0.11 %). Still bounded; when the model improves this fails and the entry must go.
        expect(err, lines.at(-1)).toBeGreaterThan(0.05);
        expect(err, lines.at(-1)).toBeLessThanOrEqual(missBound);
      } else {
        expect(err, lines.at(-1)).toBeLessThanOrEqual(0.05);
      }

      const names = task.artifacts.map((a) => a.name).sort();
      expect(names).toEqual(['chart.png', 'fragments.csv', 'masks.png', 'overlay.png', 'result.json']);
      const zipRes = await request(t.server)
        .get(`/api/v1/tasks/${task.id}/artifacts.zip`)
        .set(alice.auth)
        .buffer(true)
        .parse((res, cb) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => cb(null, Buffer.concat(chunks)));
        });
      expect(zipRes.status).toBe(200);
      expect(zipRes.headers['content-type']).toMatch(/application\/zip/);
      const files = unzipSync(new Uint8Array(zipRes.body as Buffer));
      expect(Object.keys(files).sort()).toEqual(names);
      for (const a of task.artifacts) expect(files[a.name]!.length, a.name).toBe(a.size_bytes);
      const csv = Buffer.from(files['fragments.csv']!).toString('utf8').trim().split(/\r?\n/);
      expect(csv).toHaveLength(r.count + 1);
      expect(JSON.parse(Buffer.from(files['result.json']!).toString('utf8'))).toMatchObject({ d50: r.d50, count: r.count });
      const overlay = await sharp(Buffer.from(files['overlay.png']!)).metadata();
      const input = await sharp(resolve(fixtures, img.file)).metadata();
      expect([overlay.width, overlay.height]).toEqual([input.width, input.height]);
      expect((await sharp(Buffer.from(files['chart.png']!)).metadata()).format).toBe('png');
    }
    console.log(`[metrics] fragments through the API:\n  ${lines.join('\n  ')}`);
  });

  it('re-runs a task with new parameters as a new task on the same image; without a radius sizes stay in px', async () => {
    const img = gt<{ images: FragmentTruth[] }>('fragments/ground-truth.json').images[0]!;
    const first = await create({ type: 'fragments', real_radius: '20', unit: 'mm' }, img.file);
    const a = await finished(first.body.id);
    const rerun = await request(t.server)
      .post(`/api/v1/tasks/${a.id}/rerun`)
      .set(alice.auth)
      .send({ real_radius: 2, unit: 'cm', conf: 0.3 });
    expect(rerun.status, JSON.stringify(rerun.body)).toBe(202);
    expect(rerun.body.id).not.toBe(a.id);
    expect(rerun.body.image_id).toBe(a.image_id);
    const b = await finished(rerun.body.id);
    expect(b.status).toBe('completed');
    expect((b as unknown as { params: Record<string, unknown> }).params).toMatchObject({
      model: 'fragments-seg',
      real_radius: 2,
      unit: 'cm',
      conf: 0.3,
      iou: 0.7,
    });
    expect(b.result!['unit']).toBe('cm');
    // 20 mm = 2 cm: the same sizes in another unit (conf 0.3 may drop a weak fragment, so compare D50 loosely)
    expect(Math.abs((b.result!['d50'] as number) * 10 - (a.result!['d50'] as number)) / (a.result!['d50'] as number)).toBeLessThan(0.05);
    const px = await request(t.server).post(`/api/v1/tasks/${a.id}/rerun`).set(alice.auth).send({ unit: 'px' });
    const c = await finished(px.body.id);
    expect(c.result).toMatchObject({ calibrated: false, unit: 'px' });
    expect(c.result!['d50'] as number).toBeGreaterThan(a.result!['d50'] as number); // pixels are smaller than millimetres here
  });

  it('creates a task from an uploaded image id; list, status, input, result and delete', async () => {
    const up = await request(t.server)
      .post('/api/v1/images')
      .set(alice.auth)
      .attach('images', resolve(fixtures, 'primitives/office-00-800x600.jpg'));
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    const imageId = up.body.data[0].id as string;
    const res = await create({ image_id: imageId });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.id as string;
    const early = await request(t.server).get(`/api/v1/tasks/${id}/result`).set(alice.auth);
    expect(early.status).toBe(200);
    if (early.body.status !== 'completed') expect(early.body.result).toBeNull();
    // One request that answers when the task has finished (wait_ms), no polling.
    const status = await request(t.server).get(`/api/v1/tasks/${id}/status?wait_ms=30000`).set(alice.auth);
    expect(status.body).toMatchObject({ id, status: 'completed', progress: 1 });
    const result = await request(t.server).get(`/api/v1/tasks/${id}/result?wait_ms=30000`).set(alice.auth);
    expect(result.body.result).toMatchObject({
      image_class: expect.any(String),
      detection_model: 'primitives-obb',
      classification_model: 'scene-gru',
    });
    const input = await request(t.server).get(`/api/v1/tasks/${id}/input`).set(alice.auth);
    expect(input.status).toBe(200);
    expect(input.headers['content-type']).toBe('image/jpeg');
    expect(Buffer.compare(input.body as Buffer, readFileSync(resolve(fixtures, 'primitives/office-00-800x600.jpg')))).toBe(0);
    const list = await request(t.server).get('/api/v1/tasks?status=completed&type=prediction&page_size=100').set(alice.auth);
    expect(list.body.items.some((x: Task) => x.id === id)).toBe(true);
    expect(list.body.items.every((x: Task) => x.status === 'completed' && x.type === 'prediction')).toBe(true);
    const del = await request(t.server).delete(`/api/v1/tasks/${id}`).set(alice.auth);
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ id });
    expectProblem(
      await request(t.server).get(`/api/v1/tasks/${id}`).set(alice.auth),
      404,
      'NOT_FOUND',
      `Task with id ${id} does not exist.`,
    );
    expect((await request(t.server).get(`/api/v1/images/${imageId}`).set(alice.auth)).status).toBe(200); // the image stays
  });

  it('an unknown model id is a 400 listing the valid (id, name, kind) triples; nothing is stored', async () => {
    const before = await imageCount();
    const res = await create({ detection_model: '99' }, 'primitives/office-00-800x600.jpg');
    expectProblem(
      res,
      400,
      'VALIDATION_ERROR',
      "Model id was not correct. Choose from (id, name, kind) [(1, 'primitives-obb', 'detector')].",
    );
    expect(res.body.valid_models).toEqual([{ id: 1, name: 'primitives-obb', kind: 'detector' }]);
    const cls = await create({ classification_model: 'fragments-seg' }, 'primitives/office-00-800x600.jpg');
    expectProblem(cls, 400, 'VALIDATION_ERROR', /Choose from \(id, name, kind\) \[\(2, 'scene-gru', 'classifier'\)\]/);
    expect(await imageCount()).toBe(before);
  });

  it('another user gets 404 "Task with id {id} does not exist." on every task route', async () => {
    const res = await create({}, 'primitives/office-00-800x600.jpg');
    const id = res.body.id as string;
    await finished(id);
    const routes: [string, string][] = [
      ['get', `/api/v1/tasks/${id}`],
      ['get', `/api/v1/tasks/${id}/status`],
      ['get', `/api/v1/tasks/${id}/input`],
      ['get', `/api/v1/tasks/${id}/result`],
      ['get', `/api/v1/tasks/${id}/artifacts.zip`],
      ['post', `/api/v1/tasks/${id}/rerun`],
      ['delete', `/api/v1/tasks/${id}`],
    ];
    for (const [method, url] of routes) {
      const r = await (request(t.server) as unknown as Record<string, (u: string) => request.Test>)[method]!(url).set(bob.auth);
      expectProblem(r, 404, 'NOT_FOUND', `Task with id ${id} does not exist.`);
    }
    expect((await request(t.server).get('/api/v1/tasks').set(bob.auth)).body.items.map((x: Task) => x.id)).not.toContain(id);
    expect((await request(t.server).get(`/api/v1/tasks/${id}`).set(alice.auth)).status).toBe(200);
  });

  it('refuses bad input with a 4xx problem and stores nothing', async () => {
    const jpeg = readFileSync(resolve(fixtures, 'primitives/office-00-800x600.jpg'));
    const before = await imageCount();
    const tasksBefore = (await request(t.server).get('/api/v1/tasks').set(alice.auth)).body.total as number;
    const cases: [Record<string, string>, string | { buffer: Buffer; name: string }, number, string, RegExp][] = [
      [
        {},
        { buffer: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), name: 'cut.jpg' },
        400,
        'IMAGE_VALIDATION_ERROR',
        /damaged or truncated/,
      ],
      [
        {},
        {
          buffer: Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from('not really a png at all, just text')]),
          name: 'forged.png',
        },
        400,
        'IMAGE_VALIDATION_ERROR',
        /not an image|damaged/,
      ],
      [{}, { buffer: hugePngHeader(20000, 20000), name: 'huge.png' }, 400, 'IMAGE_VALIDATION_ERROR', /20000×20000 px; at most 4096/],
      [{}, { buffer: Buffer.from('hello, I am a text file\n'), name: 'photo.jpg' }, 400, 'IMAGE_VALIDATION_ERROR', /not an image/],
      [
        { type: 'fragments', real_radius: '-1' },
        'fragments/fragments-00-640x480.png',
        400,
        'VALIDATION_ERROR',
        /real_radius must be a positive number/,
      ],
      [
        { type: 'fragments', real_radius: '0' },
        'fragments/fragments-00-640x480.png',
        400,
        'VALIDATION_ERROR',
        /real_radius must be a positive number/,
      ],
      [
        { type: 'fragments', conf: '1.5' },
        'fragments/fragments-00-640x480.png',
        400,
        'VALIDATION_ERROR',
        /conf must be a number strictly between 0 and 1/,
      ],
      [
        { type: 'fragments', conf: '0' },
        'fragments/fragments-00-640x480.png',
        400,
        'VALIDATION_ERROR',
        /conf must be a number strictly between 0 and 1/,
      ],
      [
        { type: 'fragments', unit: 'furlong' },
        'fragments/fragments-00-640x480.png',
        400,
        'VALIDATION_ERROR',
        /unit must be one of the following values: px, mm, cm, m, in/,
      ],
      [
        { type: 'fragments', detection_model: 'primitives-obb' },
        'fragments/fragments-00-640x480.png',
        400,
        'VALIDATION_ERROR',
        /applies to prediction tasks/,
      ],
      [{ type: 'sizing' }, 'fragments/fragments-00-640x480.png', 400, 'VALIDATION_ERROR', /type must be one of/],
    ];
    for (const [fields, file, status, code, detail] of cases) expectProblem(await create(fields, file), status, code, detail);
    expectProblem(await request(t.server).post('/api/v1/tasks').set(alice.auth).send({}), 400, 'VALIDATION_ERROR', /Send the image/);
    const big = await request(t.server)
      .post('/api/v1/tasks')
      .set(alice.auth)
      .attach('image', Buffer.alloc(60 * 1024 * 1024, 0xff), 'big.jpg');
    expectProblem(big, 413, 'PAYLOAD_TOO_LARGE');
    expect(await imageCount()).toBe(before);
    expect((await request(t.server).get('/api/v1/tasks').set(alice.auth)).body.total).toBe(tasksBefore);
  });
});
