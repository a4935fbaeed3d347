import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, registerAndLogin, waitFor } from './support/http.js';

const MB = 1024 * 1024;
const BOUNDARY = 'aperture-upload-test-boundary';

interface Part {
  field: string;
  name: string;
  size: number;
}

/** One random megabyte, repeated as every file's content: not an image (it starts with zeros), never the boundary. */
const noise = randomBytes(MB);
noise.fill(0, 0, 16);

/** A multipart body of `parts` files made of `noise`, produced as it is sent (the test process never holds a file). */
function multipart(parts: Part[]): { length: number; body: () => Readable } {
  const head = (p: Part): Buffer =>
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.field}"; filename="${p.name}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    );
  const tail = Buffer.from(`--${BOUNDARY}--\r\n`);
  const length = parts.reduce((n, p) => n + head(p).length + p.size + 2, 0) + tail.length;
  function* chunks(): Generator<Buffer> {
    for (const p of parts) {
      yield head(p);
      for (let left = p.size; left > 0; left -= MB) yield noise.subarray(0, Math.min(MB, left));
      yield Buffer.from('\r\n');
    }
    yield tail;
  }
  return { length, body: () => Readable.from(chunks(), { objectMode: false }) };
}

interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/**
 * A POST over a plain socket: the body (if any) streamed from `body`; `length` sent as Content-Length unless null
 * (then chunked). Resolves with the answer as soon as it is complete, even if the server closed the connection
 * before taking the whole body.
 */
function rawPost(
  port: number,
  path: string,
  auth: Record<string, string>,
  opts: { length: number | null; body?: Readable },
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...auth, 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` };
    if (opts.length !== null) headers['Content-Length'] = String(opts.length);
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
      });
      res.on('error', reject);
    });
    // Once the server answered and closed, the rest of the body cannot be written: that is the point, not a failure.
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    if (opts.body) {
      opts.body.on('error', () => undefined);
      opts.body.pipe(req);
    } else {
      req.flushHeaders();
    }
  });
}

const expectRawProblem = (a: RawAnswer, status: number, code: string, detail: RegExp): void => {
  expect(a.status, JSON.stringify(a.body)).toBe(status);
  expect(a.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(a.body).toMatchObject({ status, code });
  expect(a.body['detail']).toMatch(detail);
};

const tempFiles = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

/** Waits until the request's temporary files are gone (they go when the response closes, a moment after the client has it). */
const noTempFilesLeft = (dir: string): Promise<boolean> => waitFor(async () => tempFiles(dir).length === 0, 5000, 20);

const listen = (t: TestApp): Promise<number> =>
  new Promise((resolve) => t.server.listen(0, '127.0.0.1', () => resolve((t.server.address() as AddressInfo).port)));

describe('uploads: streamed to temporary files, request cap, no leftovers', () => {
  let t: TestApp;
  let port: number;
  let tmpDir: string;
  let alice: LoggedIn;
  beforeAll(async () => {
    // Limits that let 20 files of 49 MB through: the per-file limit stays at its 50 MB default.
    t = await createTestApp(testEnv('uploads', { UPLOAD_MAX_REQUEST_MB: '1000' }));
    port = await listen(t);
    tmpDir = t.app.get<AppConfig>(APP_CONFIG).uploads.tmpDir;
    alice = await registerAndLogin(t.server, 'upl_a');
  });
  afterAll(() => t?.close());

  it('takes 20 files of 49 MB in one request within +150 MB of RSS, and leaves no temporary file', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const start = process.memoryUsage().rss;
    let peak = start;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
    let seenOnDisk = 0;
    const watcher = setInterval(() => (seenOnDisk = Math.max(seenOnDisk, tempFiles(tmpDir).length)), 50);
    const parts = Array.from({ length: 20 }, (_, i) => ({ field: 'images', name: `noise-${i}.jpg`, size: 49 * MB }));
    const { length, body } = multipart(parts);
    expect(length).toBeGreaterThan(980 * MB);
    let answer: RawAnswer;
    try {
      answer = await rawPost(port, '/api/v1/images', alice.auth, { length, body: body() });
    } finally {
      clearInterval(sampler);
      clearInterval(watcher);
    }
    gc?.();
    peak = Math.max(peak, process.memoryUsage().rss);
    expect((peak - start) / MB, `RSS grew from ${(start / MB).toFixed(0)} MB to ${(peak / MB).toFixed(0)} MB`).toBeLessThan(150);
    expect(seenOnDisk, 'the files were on disk while the request ran').toBeGreaterThan(0);
    // Accepted by every limit, then each file refused by its content: none is an image.
    expectRawProblem(answer, 400, 'IMAGE_VALIDATION_ERROR', /None of the 20 files is an acceptable image/);
    expect(answer.body['bad_images']).toHaveLength(20);
    expect(await noTempFilesLeft(tmpDir)).toBe(true);
    const list = await request(t.server).get('/api/v1/images').set(alice.auth);
    expect(list.body.total).toBe(0);
  }, 180_000);

  it('keeps no removed temporary file open once an upload is inspected and stored', async () => {
    const webp = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#345' } })
      .webp()
      .toBuffer();
    const res = await request(t.server)
      .post('/api/v1/images')
      .set(alice.auth)
      .attach('images', webp, 'a.webp')
      .attach('images', webp, 'b.webp');
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(await noTempFilesLeft(tmpDir)).toBe(true);
    const open = readdirSync('/proc/self/fd')
      .map((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          return '';
        }
      })
      .filter((target) => target.startsWith(tmpDir));
    expect(open).toEqual([]);
    for (const image of res.body.data as { id: string }[]) {
      expect((await request(t.server).delete(`/api/v1/images/${image.id}`).set(alice.auth)).status).toBe(204);
    }
  });

  it('refuses a body over UPLOAD_MAX_REQUEST_MB from its Content-Length with 413, before reading any of it', async () => {
    // Headers only: had the server waited for the body, no answer would come.
    const answer = await rawPost(port, '/api/v1/images', alice.auth, { length: 1001 * MB });
    expectRawProblem(answer, 413, 'PAYLOAD_TOO_LARGE', /request body is 1001 MB; one upload request may carry at most 1000 MB/);
    expect(answer.headers['connection']).toBe('close');
    expect(tempFiles(tmpDir)).toEqual([]);
  });

  it('removes the temporary file of an upload whose client disconnects midway', async () => {
    const { length } = multipart([{ field: 'images', name: 'half.jpg', size: 40 * MB }]);
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/api/v1/images',
      headers: { ...alice.auth, 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`, 'Content-Length': String(length) },
    });
    req.on('error', () => undefined);
    req.write(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="half.jpg"\r\n\r\n`);
    for (let i = 0; i < 8; i++) req.write(noise);
    // The file is being written...
    await waitFor(async () => tempFiles(tmpDir).length > 0, 10_000, 20);
    req.destroy();
    // ...and gone once the connection dropped, with nothing stored.
    expect(await noTempFilesLeft(tmpDir)).toBe(true);
    const list = await request(t.server).get('/api/v1/images').set(alice.auth);
    expect(list.body.total).toBe(0);
  });
});

describe('uploads: a body sent without Content-Length, and the per-user quota', () => {
  let t: TestApp;
  let port: number;
  let tmpDir: string;
  let alice: LoggedIn;
  let bob: LoggedIn;
  /** A valid PNG of noise, about 1.2 MB (noise does not compress). */
  let png: Buffer;
  beforeAll(async () => {
    t = await createTestApp(testEnv('uploads_quota', { UPLOAD_MAX_REQUEST_MB: '8', USER_QUOTA_MB: '2' }));
    port = await listen(t);
    tmpDir = t.app.get<AppConfig>(APP_CONFIG).uploads.tmpDir;
    alice = await registerAndLogin(t.server, 'upq_a');
    bob = await registerAndLogin(t.server, 'upq_b');
    png = await sharp(randomBytes(640 * 640 * 3), { raw: { width: 640, height: 640, channels: 3 } })
      .png({ compressionLevel: 0 })
      .toBuffer();
  });
  afterAll(() => t?.close());

  it('refuses a chunked body past UPLOAD_MAX_REQUEST_MB with 413 while streaming, keeping nothing', async () => {
    const { body } = multipart([{ field: 'images', name: 'endless.jpg', size: 64 * MB }]);
    const answer = await rawPost(port, '/api/v1/images', alice.auth, { length: null, body: body() });
    expectRawProblem(answer, 413, 'PAYLOAD_TOO_LARGE', /request body is more than that; one upload request may carry at most 8\.0 MB/);
    expect(await noTempFilesLeft(tmpDir)).toBe(true);
    expect((await request(t.server).get('/api/v1/images').set(alice.auth)).body.total).toBe(0);
  });

  it('counts images and job inputs (multipart or base64) against USER_QUOTA_MB: past it 413 with the usage, nothing stored', async () => {
    expect(png.length).toBeGreaterThan(1.1 * MB);
    expect(png.length).toBeLessThan(1.5 * MB);
    const first = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', png, 'a.png');
    expect(first.status, JSON.stringify(first.body)).toBe(201);

    const used = (png.length / MB).toFixed(1);
    const again = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', png, 'b.png');
    expectProblem(again, 413, 'PAYLOAD_TOO_LARGE', new RegExp(`uses ${used.replace('.', '\\.')} MB of its 2\\.0 MB quota`));
    expect((await request(t.server).get('/api/v1/images').set(alice.auth)).body.total).toBe(1);
    // A job route's upload counts too, and is refused the same way: no job.
    const task = await request(t.server)
      .post('/api/v1/tasks')
      .set(alice.auth)
      .attach('image', png, 'c.png')
      .field('detection_model', '1')
      .field('classification_model', 'scene-gru');
    expectProblem(task, 413, 'PAYLOAD_TOO_LARGE', /quota/);
    expect((await request(t.server).get('/api/v1/tasks').set(alice.auth)).body.total).toBe(0);
    expect(await noTempFilesLeft(tmpDir)).toBe(true);
    // Base64 images of a JSON batch count the same way.
    const batch = await request(t.server)
      .post('/api/v1/segment/batches')
      .set(alice.auth)
      .send({ images: [png.toString('base64')] });
    expectProblem(batch, 413, 'PAYLOAD_TOO_LARGE', /quota/);
    expect((await request(t.server).get('/api/v1/segment/batches').set(alice.auth)).body.total).toBe(0);

    // Another user has their own quota; a job's input counts against it.
    const bobTask = await request(t.server)
      .post('/api/v1/tasks')
      .set(bob.auth)
      .attach('image', png, 'c.png')
      .field('detection_model', '1')
      .field('classification_model', 'scene-gru');
    expect(bobTask.status, JSON.stringify(bobTask.body)).toBe(202);
    const bobImage = await request(t.server).post('/api/v1/images').set(bob.auth).attach('images', png, 'd.png');
    expectProblem(bobImage, 413, 'PAYLOAD_TOO_LARGE', /quota/);

    // Deleting the image makes room again.
    const del = await request(t.server).delete(`/api/v1/images/${first.body.data[0].id}`).set(alice.auth);
    expect(del.status).toBe(204);
    const after = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', png, 'b.png');
    expect(after.status, JSON.stringify(after.body)).toBe(201);
  });
});
