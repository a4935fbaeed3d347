import { createHash, randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifest } from '@aperture/models/manifest.js';
import { maskIoU, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { createTestApp, type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { testEnv } from './support/env.js';
import { fixtures, gt } from './support/fixtures.js';
import { binary, expectProblem, type LoggedIn, registerAndLogin, waitFor } from './support/http.js';

/**
 * Client-side decoding: GET /images/{id}/embedding and GET /models/{name}/files/decoder give a client everything it
 * needs to run SAM's decoder itself (as the Segment Anything browser demo does). The test is that client: it runs the
 * downloaded decoder with onnxruntime-node on the downloaded embedding and gets the masks POST /segment/points returns.
 */

interface Shape {
  mask: Rle;
  point: [number, number];
}
const truth = gt<{ images: { file: string; width: number; height: number; shapes: Shape[] }[] }>('sam/ground-truth.json');
const img = truth.images[1]!; // portrait 480×640
const shape = img.shapes[0]!;
const sam = loadManifest().models.find((m) => m.name === 'sam-tiny')!;
const decoderFile = sam.files.find((f) => f.role === 'decoder')!;

interface CacheStats {
  hits: number;
  misses: number;
}
type Stats = CacheStats & { inferences: number };

describe('client-side decoding: GET /images/{id}/embedding and /models/{name}/files/decoder', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  let imageId: string;
  let embedding: request.Response;
  /**
   * The fixture with one channel of one random pixel moved by one level: bytes no other test file uploads. The test
   * database is shared by every file, and a deleted image's embeddings stay while any image has the same bytes.
   */
  let photo: Buffer;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('embed'));
    const { data, info } = await sharp(resolve(fixtures, img.file)).raw().toBuffer({ resolveWithObject: true });
    const i = randomInt(data.length);
    data[i] = data[i]! < 255 ? data[i]! + 1 : 254;
    photo = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
      .png()
      .toBuffer();
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', photo, 'photo.png');
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    imageId = up.body.data[0].id as string;
  });
  afterAll(() => t?.close());

  const getEmbedding = (id: string, user = alice, query = '') =>
    request(t.server).get(`/api/v1/images/${id}/embedding${query}`).set(user.auth).buffer(true).parse(binary);
  /** The same request, its answer parsed as JSON (the problems). */
  const getEmbeddingJson = (id: string, user = alice, query = '') =>
    request(t.server).get(`/api/v1/images/${id}/embedding${query}`).set(user.auth);
  const embeddingJobs = async (): Promise<number> =>
    (await request(t.server).get('/api/v1/jobs?type=image.embedding').set(alice.auth)).body.total as number;
  /** sam-tiny's embedding cache counters and inference count, once the worker has published what `least` asks. */
  const cacheStats = (least: (s: Stats) => boolean): Promise<Stats> =>
    waitFor(async () => {
      const body = (await request(t.server).get('/api/v1/models/sam-tiny/stats').set(alice.auth)).body;
      const c = body.total?.embedding_cache as CacheStats | null | undefined;
      const s = c && { hits: c.hits, misses: c.misses, inferences: body.total.inference_count as number };
      return s && least(s) ? s : null;
    }, 30_000);

  it('the embedding: raw float32 with the headers a decoder needs; computed once, then read from storage', async () => {
    embedding = await getEmbedding(imageId);
    expect(embedding.status, embedding.body.toString().slice(0, 300)).toBe(200);
    expect(embedding.headers['content-type']).toBe('application/octet-stream');
    const scale = 1024 / Math.max(img.width, img.height);
    expect(embedding.headers).toMatchObject({
      'x-embedding-shape': '1,256,64,64',
      'x-embedding-dtype': 'float32',
      'x-embedding-byte-order': 'little-endian',
      'x-model-name': 'sam-tiny',
      'x-model-version': sam.version,
      'x-image-width': String(img.width),
      'x-image-height': String(img.height),
      'x-input-size': '1024',
      'x-input-scale': String(scale),
      'x-resized-width': String(Math.floor(img.width * scale + 0.5)),
      'x-resized-height': String(Math.floor(img.height * scale + 0.5)),
    });
    expect(embedding.headers['content-length']).toBe(String(4 * 256 * 64 * 64));
    expect((embedding.body as Buffer).length).toBe(4 * 256 * 64 * 64);
    expect(embedding.headers['content-disposition']).toMatch(/^attachment; filename=".*\.f32"$/);
    const values = new Float32Array(new Uint8Array(embedding.body as Buffer).buffer);
    expect(values.some((v) => v !== 0)).toBe(true);
    expect(values.every(Number.isFinite)).toBe(true);
    expect(await embeddingJobs()).toBe(1);
    // The first embedding of the image was an encoder run: one cache miss, no hit, one inference of the model.
    expect(await cacheStats((s) => s.inferences >= 1)).toEqual({ hits: 0, misses: 1, inferences: 1 });

    const again = await getEmbedding(imageId);
    expect(again.status).toBe(200);
    expect(Buffer.compare(again.body as Buffer, embedding.body as Buffer)).toBe(0);
    expect(await embeddingJobs()).toBe(1); // served from storage: no second job
    const etag = again.headers['etag'] as string;
    expect(etag).toMatch(/^".+"$/);
    const cached = await request(t.server).get(`/api/v1/images/${imageId}/embedding`).set(alice.auth).set('If-None-Match', etag);
    expect(cached.status).toBe(304);
  });

  it('the decoder file: octet-stream, its name, ETag = its sha256, Content-Length; 304 on If-None-Match', async () => {
    const res = await request(t.server).get('/api/v1/models/sam-tiny/files/decoder').set(bob.auth).buffer(true).parse(binary);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="${decoderFile.path}"`);
    const body = res.body as Buffer;
    expect(res.headers['content-length']).toBe(String(body.length));
    expect(body.length).toBe(decoderFile.size_bytes);
    const sha = createHash('sha256').update(body).digest('hex');
    expect(sha).toBe(decoderFile.sha256);
    expect(res.headers['etag']).toBe(`"${sha}"`);
    const again = await request(t.server).get('/api/v1/models/sam-tiny/files/decoder').set(bob.auth).set('If-None-Match', `"${sha}"`);
    expect(again.status).toBe(304);
  });

  it("the client's own decoder run on the downloaded pair gives the masks of POST /segment/points (IoU ≈ 1); a cache hit", async () => {
    const decoder = await request(t.server).get('/api/v1/models/sam-tiny/files/decoder').set(alice.auth).buffer(true).parse(binary);
    const session = await ort.InferenceSession.create(decoder.body as Buffer);
    // What the Segment Anything demo feeds: the click scaled by samScale, a padding point labelled −1, no mask input.
    const h = embedding.headers;
    const scale = Number(h['x-input-scale']);
    const [W, H] = [Number(h['x-image-width']), Number(h['x-image-height'])];
    const dims = String(h['x-embedding-shape']).split(',').map(Number);
    const data = new Float32Array(new Uint8Array(embedding.body as Buffer).buffer);
    const [x, y] = shape.point;
    const out = await session.run({
      image_embeddings: new ort.Tensor('float32', data, dims),
      point_coords: new ort.Tensor('float32', Float32Array.of(x * scale, y * scale, 0, 0), [1, 2, 2]),
      point_labels: new ort.Tensor('float32', Float32Array.of(1, -1), [1, 2]),
      mask_input: new ort.Tensor('float32', new Float32Array(256 * 256), [1, 1, 256, 256]),
      has_mask_input: new ort.Tensor('float32', Float32Array.of(0), [1]),
      orig_im_size: new ort.Tensor('float32', Float32Array.of(H, W), [2]),
    });
    await session.release();
    const masks = out['masks']!;
    expect(masks.dims).toEqual([1, 4, H, W]);
    const logits = masks.data as Float32Array;
    const plane = (k: number): Uint8Array => Uint8Array.from(logits.subarray(k * W * H, (k + 1) * W * H), (v) => (v > 0 ? 1 : 0));

    const res = await request(t.server)
      .post('/api/v1/segment/points')
      .set(alice.auth)
      .field('image_id', imageId)
      .field('coords', 'pixels')
      .field('points', JSON.stringify([{ x, y }]));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const served = res.body.results[0].masks as { mask_index: number; score: number; mask: Rle }[];
    expect(served.map((m) => m.mask_index)).toEqual([1, 2, 3]);
    const scores = out['iou_predictions']!.data as Float32Array;
    for (const m of served) {
      const mine = plane(m.mask_index);
      expect(maskIoU(mine, rleDecode(m.mask))).toBeGreaterThanOrEqual(0.999);
      expect(m.score).toBeCloseTo(scores[m.mask_index]!, 3);
    }
    // Not a trivial agreement: the best mask is the clicked shape.
    const best = served.reduce((a, b) => (b.score > a.score ? b : a));
    expect(maskIoU(plane(best.mask_index), rleDecode(shape.mask))).toBeGreaterThanOrEqual(0.8);
    // The prompt found the embedding job's embedding in the worker's cache: one more hit, no more misses.
    expect(await cacheStats((s) => s.inferences >= 2)).toEqual({ hits: 1, misses: 1, inferences: 2 });
    // And so does a second prompt on the same image.
    const [bx1, by1] = [Math.max(0, x - 40), Math.max(0, y - 40)];
    const boxed = await request(t.server)
      .post('/api/v1/segment/box')
      .set(alice.auth)
      .field('image_id', imageId)
      .field('box', JSON.stringify({ x1: bx1, y1: by1, x2: Math.min(W, x + 40), y2: Math.min(H, y + 40) }));
    expect(boxed.status, JSON.stringify(boxed.body)).toBe(200);
    expect(await cacheStats((s) => s.inferences >= 3)).toEqual({ hits: 2, misses: 1, inferences: 3 });
  });

  it('a model that is not SAM is a 400 listing the SAM models; another user’s image is a 404; nothing is queued', async () => {
    const jobs = await embeddingJobs();
    expectProblem(await getEmbeddingJson(imageId, alice, '?model=primitives-obb'), 400, 'VALIDATION_ERROR', /\(\d+, 'sam-tiny', 'sam'\)/);
    expectProblem(await getEmbeddingJson(imageId, alice, '?model=nope'), 400, 'VALIDATION_ERROR', /sam-tiny/);
    expectProblem(await getEmbeddingJson(imageId, bob), 404, 'NOT_FOUND', `Image with id ${imageId} does not exist.`);
    expectProblem(await getEmbeddingJson('not-a-uuid'), 404, 'NOT_FOUND');
    expect(await embeddingJobs()).toBe(jobs);
    const bobJobs = (await request(t.server).get('/api/v1/jobs').set(bob.auth)).body.total as number;
    expect(bobJobs).toBe(0);
  });

  it('a model without a decoder, or no such model, is a 404 saying so', async () => {
    expectProblem(
      await request(t.server).get('/api/v1/models/primitives-obb/files/decoder').set(alice.auth),
      404,
      'NOT_FOUND',
      /primitives-obb \(detector\) has no decoder file \(only SAM models have a decoder\); its files: model/,
    );
    expectProblem(
      await request(t.server).get('/api/v1/models/nope/files/decoder').set(alice.auth),
      404,
      'NOT_FOUND',
      'Model nope does not exist.',
    );
    expectProblem(
      await request(t.server).get('/api/v1/models/sam-tiny/files/weights').set(alice.auth),
      404,
      'NOT_FOUND',
      /no weights file/,
    );
    expect((await request(t.server).get('/api/v1/models/sam-tiny/files/decoder')).status).toBe(401);
  });

  it('deleting the image removes its stored embedding; a new upload of the same file computes it again', async () => {
    expect((await request(t.server).delete(`/api/v1/images/${imageId}`).set(alice.auth)).status).toBe(204);
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', photo, 'photo.png');
    const again = await getEmbedding(up.body.data[0].id as string);
    expect(again.status).toBe(200);
    expect(Buffer.compare(again.body as Buffer, embedding.body as Buffer)).toBe(0);
    expect(await embeddingJobs()).toBe(2);
  });
});

describe('GET /images/{id}/embedding while no worker has computed it (API only)', () => {
  let t: TestApp;
  let alice: LoggedIn;
  beforeAll(async () => {
    t = await createTestApp(testEnv('embed-api'));
    alice = await registerAndLogin(t.server, 'embed_api');
  });
  afterAll(() => t?.close());

  it('202 with the job (wait_ms=0); a second request joins that job; the image is needed by it (409)', async () => {
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', resolve(fixtures, img.file));
    const id = up.body.data[0].id as string;
    const first = await request(t.server).get(`/api/v1/images/${id}/embedding?wait_ms=0`).set(alice.auth);
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const jobId = first.body.job_id as string;
    expect(first.body).toEqual({
      job_id: jobId,
      status: 'queued',
      status_url: `/api/v1/jobs/${jobId}/status`,
      result_url: `/api/v1/jobs/${jobId}/result`,
    });
    expect(first.headers['retry-after']).toBe('5');
    const second = await request(t.server).get(`/api/v1/images/${id}/embedding?wait_ms=200`).set(alice.auth);
    expect(second.status).toBe(202);
    expect(second.body.job_id).toBe(jobId);
    const jobs = (await request(t.server).get('/api/v1/jobs?type=image.embedding').set(alice.auth)).body;
    expect(jobs.total).toBe(1);
    expect(jobs.items[0]).toMatchObject({ id: jobId, type: 'image.embedding', status: 'queued' });
    expectProblem(await request(t.server).delete(`/api/v1/images/${id}`).set(alice.auth), 409, 'CONFLICT');
    const bad = await request(t.server).get(`/api/v1/images/${id}/embedding?wait_ms=60001`).set(alice.auth);
    expectProblem(bad, 400, 'VALIDATION_ERROR', /wait_ms/);
  });
});
