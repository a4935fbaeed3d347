import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelsDir } from '@aperture/models/manifest.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, registerAndLogin } from './support/http.js';
import { bmp24, hugePngHeader } from './support/images.js';

const fixtures = resolve(defaultModelsDir(), 'fixtures');
const jpegPath = resolve(fixtures, 'primitives/office-00-800x600.jpg');
const pngPath = resolve(fixtures, 'fragments/fragments-00-640x480.png');

/** Images through the API only (no worker: queued jobs stay queued, which the delete rule needs). */
describe('images: upload by content, list, metadata, content, exists, delete', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    t = await createTestApp(testEnv('images'));
    alice = await registerAndLogin(t.server, 'img_a');
    bob = await registerAndLogin(t.server, 'img_b');
  });
  afterAll(() => t?.close());

  it('stores JPEG, PNG, WebP, TIFF and BMP by what the bytes are, with size, dimensions and sha256', async () => {
    const rgb = await sharp(jpegPath).resize(64, 48).removeAlpha().raw().toBuffer();
    const webp = await sharp(rgb, { raw: { width: 64, height: 48, channels: 3 } })
      .webp()
      .toBuffer();
    const tiff = await sharp(rgb, { raw: { width: 64, height: 48, channels: 3 } })
      .tiff()
      .toBuffer();
    const bmp = bmp24(rgb, 64, 48);
    const res = await request(t.server)
      .post('/api/v1/images')
      .set(alice.auth)
      .attach('images', jpegPath)
      .attach('images', pngPath)
      .attach('images', webp, 'a.webp')
      .attach('images', tiff, 'b.tiff')
      .attach('images', bmp, 'c.png'); // a BMP named .png: the content decides
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ error: false, error_msg: '', bad_images: [] });
    const byName = Object.fromEntries(res.body.data.map((d: { name: string }) => [d.name, d]));
    expect(byName['office-00-800x600.jpg']).toMatchObject({
      format: 'jpeg',
      content_type: 'image/jpeg',
      width: 800,
      height: 600,
      size_bytes: readFileSync(jpegPath).length,
      project_id: null,
    });
    expect(byName['fragments-00-640x480.png']).toMatchObject({ format: 'png', width: 640, height: 480 });
    expect(byName['a.webp']).toMatchObject({ format: 'webp', width: 64, height: 48 });
    expect(byName['b.tiff']).toMatchObject({ format: 'tiff', width: 64, height: 48 });
    expect(byName['c.png']).toMatchObject({ format: 'bmp', content_type: 'image/bmp', width: 64, height: 48 });
    expect(byName['office-00-800x600.jpg'].sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('stores EXIF-rotated images with their displayed size', async () => {
    const rotated = await sharp({ create: { width: 40, height: 20, channels: 3, background: '#808080' } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const res = await request(t.server).post('/api/v1/images').set(alice.auth).attach('image', rotated, 'rot.jpg');
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.data[0]).toMatchObject({ width: 20, height: 40 });
  });

  it('reports each bad file and stores the good ones: 207 partial, 400 none (problem+json with bad_images)', async () => {
    const before = (await request(t.server).get('/api/v1/images').set(alice.auth)).body.total;
    const partial = await request(t.server)
      .post('/api/v1/images')
      .set(alice.auth)
      .attach('images', jpegPath)
      .attach('images', Buffer.from('just text'), 'notes.jpg');
    expect(partial.status, JSON.stringify(partial.body)).toBe(207);
    expect(partial.body.error).toBe(true);
    expect(partial.body.error_msg).toBe('1 of 2 files were not stored');
    expect(partial.body.data).toHaveLength(1);
    expect(partial.body.bad_images).toEqual([{ name: 'notes.jpg', reason: expect.stringMatching(/not an image/) }]);
    const none = await request(t.server)
      .post('/api/v1/images')
      .set(alice.auth)
      .attach('images', Buffer.from('x'), 'a.jpg')
      .attach('images', hugePngHeader(20000, 20000), 'b.png');
    expectProblem(none, 400, 'IMAGE_VALIDATION_ERROR', /None of the 2 files/);
    expect(none.body.bad_images.map((b: { name: string }) => b.name)).toEqual(['a.jpg', 'b.png']);
    expect(none.body.bad_images[1].reason).toMatch(/20000×20000 px/);
    expect((await request(t.server).get('/api/v1/images').set(alice.auth)).body.total).toBe(before + 1);
    expectProblem(
      await request(t.server).post('/api/v1/images').set(alice.auth).field('x', '1'),
      400,
      'VALIDATION_ERROR',
      /multipart field "images"/,
    );
    const big = await request(t.server)
      .post('/api/v1/images')
      .set(alice.auth)
      .attach('images', Buffer.alloc(60 * 1024 * 1024, 1), 'big.png');
    expectProblem(big, 413, 'PAYLOAD_TOO_LARGE');
    expect((await request(t.server).get('/api/v1/images').set(alice.auth)).body.total).toBe(before + 1);
  });

  it("lists newest first with pagination; exists-by-name answers with the newest image's metadata", async () => {
    const page1 = await request(t.server).get('/api/v1/images?page=1&page_size=2').set(alice.auth);
    expect(page1.body).toMatchObject({ page: 1, page_size: 2, total: expect.any(Number) });
    expect(page1.body.items).toHaveLength(2);
    const all = await request(t.server).get('/api/v1/images?page_size=100').set(alice.auth);
    const times = all.body.items.map((i: { created_at: string }) => i.created_at);
    expect([...times].sort().reverse()).toEqual(times);
    const yes = await request(t.server).get('/api/v1/images/exists?name=fragments-00-640x480.png').set(alice.auth);
    expect(yes.body).toMatchObject({
      exists: true,
      message: 'Image already exists on the server.',
      metadata: { name: 'fragments-00-640x480.png', format: 'png' },
    });
    const no = await request(t.server).get('/api/v1/images/exists?name=nope.png').set(alice.auth);
    expect(no.body).toEqual({ exists: false, message: 'Image does not exist on the server.', metadata: null });
    expect((await request(t.server).get('/api/v1/images/exists?name=fragments-00-640x480.png').set(bob.auth)).body.exists).toBe(false);
  });

  it('serves the content with its MIME type and an ETag; If-None-Match answers 304', async () => {
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', pngPath);
    const img = up.body.data[0];
    const res = await request(t.server).get(`/api/v1/images/${img.id}/content`).set(alice.auth);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['etag']).toBe(`"${img.sha256}"`);
    expect(Buffer.compare(res.body as Buffer, readFileSync(pngPath))).toBe(0);
    const again = await request(t.server)
      .get(`/api/v1/images/${img.id}/content`)
      .set(alice.auth)
      .set('If-None-Match', res.headers['etag'] as string);
    expect(again.status).toBe(304);
    expect((await request(t.server).get(`/api/v1/images/${img.id}`).set(alice.auth)).body).toMatchObject({
      id: img.id,
      content_url: `/api/v1/images/${img.id}/content`,
    });
  });

  it('refuses to delete an image a queued job needs (409), deletes it once the job is gone', async () => {
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', jpegPath);
    const id = up.body.data[0].id as string;
    const task = await request(t.server).post('/api/v1/tasks').set(alice.auth).send({ image_id: id });
    expect(task.status, JSON.stringify(task.body)).toBe(202); // no worker here: it stays queued
    const refused = await request(t.server).delete(`/api/v1/images/${id}`).set(alice.auth);
    expectProblem(refused, 409, 'CONFLICT', /still needed by 1 queued or running job/);
    expect(refused.body.jobs).toEqual([{ id: task.body.id, type: 'task.predict', status: 'queued' }]);
    expect((await request(t.server).delete(`/api/v1/tasks/${task.body.id}`).set(alice.auth)).status).toBe(200);
    expect((await request(t.server).delete(`/api/v1/images/${id}`).set(alice.auth)).status).toBe(204);
    expectProblem(
      await request(t.server).get(`/api/v1/images/${id}`).set(alice.auth),
      404,
      'NOT_FOUND',
      `Image with id ${id} does not exist.`,
    );
    expectProblem(await request(t.server).get(`/api/v1/images/${id}/content`).set(alice.auth), 404, 'NOT_FOUND');
  });

  it('another user gets 404 on every image route', async () => {
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', jpegPath);
    const id = up.body.data[0].id as string;
    for (const [method, url] of [
      ['get', `/api/v1/images/${id}`],
      ['get', `/api/v1/images/${id}/content`],
      ['delete', `/api/v1/images/${id}`],
    ] as const) {
      expectProblem(await request(t.server)[method](url).set(bob.auth), 404, 'NOT_FOUND', `Image with id ${id} does not exist.`);
    }
    expect(
      (await request(t.server).get('/api/v1/images?page_size=100').set(bob.auth)).body.items.map((i: { id: string }) => i.id),
    ).not.toContain(id);
    expectProblem(
      await request(t.server).post('/api/v1/tasks').set(bob.auth).send({ image_id: id }),
      404,
      'NOT_FOUND',
      `Image with id ${id} does not exist.`,
    );
  });
});
