import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAperture, fileFrom, multipart, unwrap, type Aperture, type ResultOf } from '../packages/sdk/src/index.js';
import { createTestApp, type TestApp } from './support/app.js';
import { boothDatabase, STATION_PASSWORD } from './support/booth.js';
import { testEnv } from './support/env.js';
import { fixtures, gt } from './support/fixtures.js';
import { readQrPdf } from './support/pdf.js';

/**
 * Segmentation and the booth through the SDK only (no supertest, no casts), as sdk-flows does for the main flows: the
 * real server on a real port, the worker (sam-tiny, the xray model) in the same process. A flow that needs a cast means
 * the contract is wrong.
 */

/** A model.infer result narrows by the model's kind: `kind` must survive in the job result's type. */
type InferKind = ResultOf<'model.infer'>['kind'];
const INFER_KINDS: Record<InferKind, true> = { detector: true, segmenter: true, classifier: true, sam: true, 'image-to-image': true };

/** The generator settings that keep sam-tiny's automatic mask generator quick (a 4×4 grid). */
const FAST = { points_per_side: 4, pred_iou_thresh: 0.5, stability_score_thresh: 0.8 };

interface Rle {
  size: number[];
  counts: number[];
}
interface Shape {
  mask: Rle;
  point: number[];
  box: number[];
}
const shapes = gt<{ images: { file: string; width: number; height: number; shapes: Shape[] }[] }>('sam/ground-truth.json');
const sam = gt<{ images: { file: string; shape: number; box: { mask: Rle } }[] }>('golden/sam.json');

/** Decodes an uncompressed column-major RLE (background run first) into 0/1 bytes. */
function decode(rle: Rle): Uint8Array {
  const out = new Uint8Array(rle.size[0]! * rle.size[1]!);
  let at = 0;
  rle.counts.forEach((run, i) => {
    if (i % 2 === 1) out.fill(1, at, at + run);
    at += run;
  });
  expect(at).toBe(out.length);
  return out;
}
function iou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i]! & b[i]!;
    union += a[i]! | b[i]!;
  }
  return union === 0 ? 0 : inter / union;
}

describe('segmentation and the booth through the SDK', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof boothDatabase>>;
  let baseUrl: string;
  let ap: Aperture;
  const image0 = shapes.images[0]!; // shapes-00-640x480.png
  const shape0 = image0.shapes[0]!;
  const imagePath = resolve(fixtures, image0.file);
  const smallPath = resolve(fixtures, 'sam/shapes-03-500x500.png');

  beforeAll(async () => {
    // The booth's station principal, review queue and carousel belong to a whole deployment: a database of its own.
    db = await boothDatabase('sdk_booth');
    t = await createTestApp(testEnv('sdk-segbooth', { DATABASE_URL: db.url, STATION_PASSWORD }), { worker: true });
    await t.app.listen(0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    const username = `sdkseg_${randomBytes(4).toString('hex')}`;
    const password = `pw-${randomBytes(6).toString('hex')}`;
    unwrap(
      await createAperture({ baseUrl }).api.POST('/api/v1/auth/register', {
        body: { username, email: `${username}@example.com`, password },
      }),
    );
    ap = createAperture({ baseUrl, credentials: { username, password } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('POST /segment/points and /segment/box: typed RLE masks that cover the prompted shape', async () => {
    const points = await ap.api.POST('/api/v1/segment/points', {
      body: {
        image: await fileFrom(imagePath),
        points: JSON.stringify([{ x: shape0.point[0], y: shape0.point[1] }]),
        coords: 'pixels',
      },
      bodySerializer: multipart,
    });
    expect(points.response.status).toBe(200);
    const byPoint = unwrap(points);
    // The sync routes answer 200 with the masks, or 202 with the job after 60 s: the 200 body is the one with results.
    if (!('results' in byPoint)) throw new Error('expected the 200 answer with the masks');
    expect([byPoint.width, byPoint.height]).toEqual([image0.width, image0.height]);
    expect(byPoint.results).toHaveLength(1);
    const masks = byPoint.results[0]!.masks;
    expect(masks.length).toBe(3); // multimask_output by default
    const clicked: number[] = [];
    for (const m of masks) {
      if (typeof m.mask === 'string' || typeof m.mask.counts === 'string') throw new Error('expected uncompressed RLE masks');
      expect(m.mask.size).toEqual([image0.height, image0.width]);
      const bits = decode({ size: m.mask.size, counts: m.mask.counts });
      expect(bits.reduce((s, v) => s + v, 0)).toBe(m.area);
      clicked.push(bits[Math.floor(shape0.point[0]!) * image0.height + Math.floor(shape0.point[1]!)]!);
    }
    // The clicked pixel (column-major) is inside a mask.
    expect(clicked).toContain(1);

    const [x1, y1, x2, y2] = shape0.box;
    const box = unwrap(
      await ap.api.POST('/api/v1/segment/box', {
        body: { image: await fileFrom(imagePath), box: JSON.stringify({ x1, y1, x2, y2 }), multimask_output: false },
        bodySerializer: multipart,
      }),
    );
    if (!('results' in box)) throw new Error('expected the 200 answer with the masks');
    expect(box.results).toHaveLength(1);
    const [only] = box.results[0]!.masks;
    if (!only || typeof only.mask === 'string' || typeof only.mask.counts === 'string') throw new Error('expected one RLE mask');
    const golden = sam.images.find((g) => g.file === image0.file && g.shape === 0);
    if (!golden) throw new Error('golden box mask of the first shape');
    expect(iou(decode({ size: only.mask.size, counts: only.mask.counts }), decode(golden.box.mask))).toBeGreaterThan(0.9);
    expect(iou(decode({ size: only.mask.size, counts: only.mask.counts }), decode(shape0.mask))).toBeGreaterThan(0.5);
  });

  it('POST /segment/points/async with Prefer: wait, settled by settleJob into a typed segment.prompt result', async () => {
    const tokens = ap.tokens();
    if (!tokens) throw new Error('signed in with a password above');
    const waiting = createAperture({ baseUrl, credentials: { accessToken: tokens.accessToken }, preferWait: 60 });
    const created = await waiting.api.POST('/api/v1/segment/points/async', {
      body: { image: await fileFrom(imagePath), points: JSON.stringify([{ x: shape0.point[0], y: shape0.point[1] }]), output: 'coco_rle' },
      bodySerializer: multipart,
    });
    expect(created.response.status).toBe(200);
    expect(created.response.headers.get('Preference-Applied')).toBe('wait=60');
    const done = await waiting.settleJob(created);
    if (done.type !== 'segment.prompt' || !done.result) throw new Error(`expected a segment.prompt result, got ${done.type}`);
    expect(done.status).toBe('completed');
    expect(done.result.width).toBe(image0.width);
    const mask = done.result.results[0]!.masks[0]!.mask;
    if (typeof mask === 'string' || typeof mask.counts !== 'string') throw new Error('expected a COCO RLE mask');
    expect(mask.size).toEqual([image0.height, image0.width]);
    expect(mask.counts.length).toBeGreaterThan(0);
  });

  it('POST /segment/auto on a small image: the generator masks, each with its RLE, area and crop box', async () => {
    const res = await ap.api.POST('/api/v1/segment/auto', {
      body: { image: await fileFrom(smallPath), ...FAST },
      bodySerializer: multipart,
    });
    expect(res.response.status).toBe(200);
    const auto = unwrap(res);
    if (!('masks' in auto)) throw new Error('expected the 200 answer with the masks');
    expect(auto).toMatchObject({ model: 'sam-tiny', width: 500, height: 500, segmentation_format: 'uncompressed_rle' });
    expect(auto.count).toBe(auto.masks.length);
    expect(auto.masks.length).toBeGreaterThan(0);
    for (const m of auto.masks) {
      const { counts, size } = m.segmentation;
      if (typeof counts === 'string') throw new Error('expected uncompressed RLE');
      expect(decode({ size, counts }).reduce((s, v) => s + v, 0)).toBe(m.area);
      expect(m.crop_box).toEqual([0, 0, 500, 500]);
      expect(m.predicted_iou).toBeGreaterThan(0.5);
    }
    const job = unwrap(await ap.api.GET('/api/v1/jobs/{id}/result', { params: { path: { id: auto.job_id } } }));
    if (job.type !== 'segment.auto' || !job.result) throw new Error(`expected a segment.auto result, got ${job.type}`);
    expect(job.result.count).toBe(auto.count);
  });

  it('POST /segment/objects: one cut-out per mask, with its files', async () => {
    const res = await ap.api.POST('/api/v1/segment/objects', {
      body: { image: await fileFrom(smallPath), ...FAST, min_pixels: 0 },
      bodySerializer: multipart,
    });
    expect(res.response.status).toBe(200);
    const objects = unwrap(res);
    if (!('objects' in objects)) throw new Error('expected the 200 answer with the objects');
    expect(objects.mode).toBe('auto');
    expect(objects.objects.length).toBeGreaterThan(0);
    expect(objects.saved).toEqual(objects.objects.map((o) => o.object_file));
    const job = unwrap(await ap.api.GET('/api/v1/jobs/{id}', { params: { path: { id: objects.job_id } } }));
    const names = job.artifacts.map((a) => a.name);
    for (const o of objects.objects) expect(names).toEqual(expect.arrayContaining([o.object_file, o.mask_file]));
  });

  it('a segmentation batch: one prompted and one automatic image, followed at GET /segment/batches/{id}', async () => {
    const created = await ap.api.POST('/api/v1/segment/batches', {
      body: {
        images: [await fileFrom(imagePath), await fileFrom(smallPath)],
        points: JSON.stringify([[{ x: shape0.point[0], y: shape0.point[1] }], null]),
        coords: 'pixels',
        ...FAST,
      },
      bodySerializer: multipart,
    });
    expect(created.response.status).toBe(202);
    const batch = unwrap(created);
    expect(batch.jobs.map((j) => [j.index, j.type])).toEqual([
      [0, 'segment.prompt'],
      [1, 'segment.auto'],
    ]);
    for (const j of batch.jobs) expect((await ap.waitForJob(j.job_id)).status).toBe('completed');
    const after = unwrap(await ap.api.GET('/api/v1/segment/batches/{id}', { params: { path: { id: batch.batch_id } } }));
    expect(after).toMatchObject({ status: 'completed', total_images: 2, completed_images: 2, failed_images: 0 });
    expect(after.jobs.every((j) => (j.total_masks ?? 0) > 0)).toBe(true);
  });

  it('GET /images/{id}/embedding: the raw float32 array, its shape in the headers, then a 304 by ETag', async () => {
    const up = unwrap(await ap.api.POST('/api/v1/images', { body: { images: [await fileFrom(imagePath)] }, bodySerializer: multipart }));
    const id = up.data[0]!.id;
    const res = await ap.api.GET('/api/v1/images/{id}/embedding', { params: { path: { id } }, parseAs: 'arrayBuffer' });
    expect(res.response.status).toBe(200);
    const h = res.response.headers;
    const shape = (h.get('X-Embedding-Shape') ?? '').split(',').map(Number);
    expect(shape).toHaveLength(4);
    expect(res.data?.byteLength).toBe(shape.reduce((a, b) => a * b, 1) * 4);
    expect(h.get('X-Embedding-Dtype')).toBe('float32');
    expect(h.get('X-Model-Name')).toBe('sam-tiny');
    expect([h.get('X-Image-Width'), h.get('X-Image-Height')]).toEqual([String(image0.width), String(image0.height)]);
    const floats = new Float32Array(res.data!);
    expect(floats.every(Number.isFinite)).toBe(true);
    const etag = h.get('ETag');
    if (!etag) throw new Error('expected an ETag');
    const again = await ap.api.GET('/api/v1/images/{id}/embedding', { params: { path: { id }, header: { 'If-None-Match': etag } } });
    expect(again.response.status).toBe(304);
  });

  it('model.infer on sam-tiny: the job result narrows by type, then by the model kind', async () => {
    const created = await ap.api.POST('/api/v1/models/{name}/infer', {
      params: { path: { name: 'sam-tiny' } },
      body: { image: await fileFrom(imagePath), points: JSON.stringify([{ x: shape0.point[0], y: shape0.point[1], label: 1 }]) },
      bodySerializer: multipart,
    });
    const done = await ap.settleJob(created);
    if (done.type !== 'model.infer' || !done.result) throw new Error(`expected a model.infer result, got ${done.type}`);
    expect(INFER_KINDS[done.result.kind]).toBe(true);
    if (done.result.kind !== 'sam') throw new Error(`expected a sam result, got ${done.result.kind}`);
    expect(done.result.mask.size).toEqual([image0.height, image0.width]);
    expect(decode(done.result.mask).reduce((s, v) => s + v, 0)).toBe(done.result.area);
  });

  it('the booth: station sign-in, a QR batch, a submission, its options, a review, the carousel and the owner page', async () => {
    // The station signs in at the form-encoded OAuth2 token endpoint with only the station password.
    const anon = createAperture({ baseUrl });
    const token = unwrap(
      await anon.api.POST('/api/v1/auth/token', {
        body: { password: STATION_PASSWORD },
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      }),
    );
    expect(token.token_type).toBe('bearer');
    const station = createAperture({ baseUrl, credentials: { accessToken: token.access_token, refreshToken: token.refresh_token } });
    const me = unwrap(await station.api.GET('/api/v1/auth/me'));
    expect(me).toMatchObject({ username: 'station', role: 'station' });

    // A QR batch rendered within Prefer: wait; the codes are read back from the printed PDF, as a booth does.
    const waiting = createAperture({ baseUrl, credentials: { accessToken: token.access_token }, preferWait: 60 });
    const batch = unwrap(await waiting.api.POST('/api/v1/qr/batches', { body: { n: 2 } }));
    expect(batch.status).toBe('completed');
    const pdf = await station.api.GET('/api/v1/qr/batches/{id}/pdf', { params: { path: { id: batch.id } }, parseAs: 'arrayBuffer' });
    expect(pdf.response.status).toBe(200);
    const symbol = readQrPdf(Buffer.from(pdf.data!)).decodeCell(0, 0);
    if (!symbol) throw new Error('the first QR symbol of the PDF did not decode');
    // The symbol holds the owner's URL (QR_URL_TEMPLATE, by default https://aperture.example/q/{code}): the code ends it.
    const qr = new URL(symbol).pathname.split('/').pop() ?? '';
    expect(qr).toMatch(/^[A-Za-z0-9_-]{8,}$/);

    // A submission with a real photo; the job makes the X-ray options. The station may use the booth routes only (not
    // GET /jobs/{id}/result), so it waits with Prefer: wait: the answer is the finished job's result.
    const photo = await fileFrom(resolve(fixtures, 'xray/input-00-640x480.jpg'));
    const submitted = await waiting.api.POST('/api/v1/booth/submissions', {
      body: {
        file: photo,
        first_name: 'Alice',
        last_name: 'Smith',
        animal_name: 'Buddy',
        qr_content: symbol,
        animal_type: 'dog',
        broken_bone: true,
      },
      bodySerializer: multipart,
    });
    expect(submitted.response.status).toBe(200);
    expect(submitted.response.headers.get('Preference-Applied')).toBe('wait=60');
    const done = await waiting.settleJob(submitted);
    expect(done.status).toBe('completed');
    if (done.type !== 'booth.xray' || !done.result) throw new Error(`expected a booth.xray result, got ${done.type}`);
    expect(done.result.source).toBe('internal');
    expect(done.result.options.length).toBeGreaterThan(1);

    // The review queue lists the job with its options and original.
    const jobId = done.id;
    const list = unwrap(await station.api.GET('/api/v1/reviews', { params: { query: { page_size: 100 } } }));
    expect(list.metadata[jobId]).toMatchObject({ first_name: 'Alice', animal_name: 'Buddy', animal_type: 'dog' });
    const options = list.results[jobId];
    expect(options).toEqual(done.result.options.map((o) => `/api/v1/jobs/${jobId}/options/${o.index}`));
    expect(options).toHaveLength(list.results_per_image);
    expect(list.originals[jobId]).toBe(`/api/v1/jobs/${jobId}/original`);
    const chosen = await station.api.GET('/api/v1/jobs/{id}/options/{n}', {
      params: { path: { id: jobId, n: '1' } },
      parseAs: 'arrayBuffer',
    });
    expect(chosen.response.status).toBe(200);
    expect(chosen.response.headers.get('content-type')).toBe('image/png');
    const chosenBytes = new Uint8Array(chosen.data!);

    // The owner's page is a 404 until a reviewer confirms.
    const early = await anon.api.GET('/api/v1/booth/results/{qr}', { params: { path: { qr } } });
    expect(early.response.status).toBe(404);

    const decision = unwrap(
      await station.api.POST('/api/v1/jobs/{id}/review', { params: { path: { id: jobId } }, body: { decision: 'confirm', choice: 1 } }),
    );
    expect(decision).toEqual({ status: 'success', state: 'confirmed', carousel_index: 0 });
    const again = await station.api.POST('/api/v1/jobs/{id}/review', { params: { path: { id: jobId } }, body: { decision: 'retry' } });
    expect(again.response.status).toBe(409);
    expect(again.error?.code).toBe('CONFLICT');

    // The carousel (public): the pair as a ZIP.
    expect(unwrap(await anon.api.GET('/api/v1/carousel'))).toEqual(['/api/v1/carousel/0']);
    const zip = await anon.api.GET('/api/v1/carousel/{index}', { params: { path: { index: '0' } }, parseAs: 'arrayBuffer' });
    expect(zip.response.status).toBe(200);
    const files = unzipSync(new Uint8Array(zip.data!));
    expect(Object.keys(files).sort()).toEqual(['original.png', 'xray.png']);
    expect(files['xray.png']).toEqual(chosenBytes);

    // The owner's page (public): the names and the confirmed X-ray.
    const page = unwrap(await anon.api.GET('/api/v1/booth/results/{qr}', { params: { path: { qr } } }));
    expect(page).toMatchObject({ animal_name: 'Buddy', animal_type: 'dog', first_name: 'Alice' });
    const xray = await anon.api.GET('/api/v1/booth/results/{qr}/{file}', {
      params: { path: { qr, file: 'xray.png' } },
      parseAs: 'arrayBuffer',
    });
    expect(xray.response.status).toBe(200);
    expect(new Uint8Array(xray.data!)).toEqual(chosenBytes);
  });
});
