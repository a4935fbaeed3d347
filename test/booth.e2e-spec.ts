import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MikroORM } from '@mikro-orm/core';
import { unzipSync } from 'fflate';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoothSubmission, CarouselEntry } from '@aperture/database/entities/booth.entity.js';
import { Job, JobArtifact } from '@aperture/database/entities/job.entity.js';
import { createTestApp, type TestApp } from './support/app.js';
import {
  asBuffer,
  type Auth,
  boothDatabase,
  photo,
  qrCodes,
  reviewable,
  reviews,
  STATION_PASSWORD,
  stationAuth,
  submit,
} from './support/booth.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, registerAndLogin } from './support/http.js';
import { hugePngHeader } from './support/images.js';

const NO_CACHE = { 'cache-control': 'no-cache, no-store, must-revalidate', pragma: 'no-cache', expires: '0' };

describe('booth with internal processing (the xray model in the worker)', () => {
  let t: TestApp;
  let station: Auth;
  let codes: string[];
  let bob: LoggedIn;
  let dataDir: string;
  const orm = () => t.app.get(MikroORM).em.fork();
  const counts = async () => ({
    submissions: await orm().count(BoothSubmission, {}),
    jobs: await orm().count(Job, { type: 'booth.xray' }),
  });

  let db: Awaited<ReturnType<typeof boothDatabase>>;

  beforeAll(async () => {
    db = await boothDatabase('booth');
    const env = testEnv('booth', {
      DATABASE_URL: db.url,
      IMAGE_MAX_BYTES: '1000000',
      STATION_PASSWORD,
      CAROUSEL_SIZE: '2',
      BOOTH_RESULTS_PER_IMAGE: '3',
      BOOTH_ANIMAL_TYPES: 'dog,cat,horse',
    });
    dataDir = env.DATA_DIR!;
    t = await createTestApp(env, { worker: true });
    station = await stationAuth(t.server);
    codes = await qrCodes(t.server, station, 12, env.DATABASE_URL!);
    bob = await registerAndLogin(t.server, 'booth_bob');
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('lists the animal types publicly, plus other', async () => {
    const res = await request(t.server).get('/api/v1/animal-types');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ types: ['dog', 'cat', 'horse', 'other'] });
  });

  it('refuses bad submissions with a 4xx problem and stores nothing', async () => {
    const before = await counts();
    expectProblem(await submit(t.server, station, { qr_content: codes[0] }, null), 400, 'VALIDATION_ERROR', /multipart field "file"/);
    expectProblem(
      await submit(t.server, station, { qr_content: codes[0] }, Buffer.from('not a picture at all'), 'pet.jpg'),
      400,
      'IMAGE_VALIDATION_ERROR',
    );
    expectProblem(
      await submit(t.server, station, { qr_content: codes[0] }, hugePngHeader(5000, 3000)),
      400,
      'IMAGE_VALIDATION_ERROR',
      /at most 4096 px/,
    );
    expectProblem(
      await submit(t.server, station, { qr_content: codes[0] }, Buffer.alloc(1_000_001, 1), 'big.png'),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expectProblem(
      await submit(t.server, station, { qr_content: codes[0], first_name: 'x'.repeat(101) }),
      400,
      'VALIDATION_ERROR',
      /at most 100/,
    );
    expectProblem(
      await submit(t.server, station, { qr_content: codes[0], last_name: '   ' }),
      400,
      'VALIDATION_ERROR',
      /must not be empty/,
    );
    expectProblem(
      await submit(t.server, station, { qr_content: codes[0], animal_name: 'Rex\r\nX-Evil: 1' }),
      400,
      'VALIDATION_ERROR',
      /control/,
    );
    expectProblem(
      await submit(t.server, station, { qr_content: codes[0], animal_type: 'dragon' }),
      400,
      'VALIDATION_ERROR',
      /animal_type must be one of dog, cat, horse, other/,
    );
    expectProblem(await submit(t.server, station, { qr_content: codes[0], broken_bone: 'maybe' }), 400, 'VALIDATION_ERROR', /broken_bone/);
    expectProblem(
      await submit(t.server, station, { qr_content: 'NOTACODE' }),
      400,
      'VALIDATION_ERROR',
      /code issued by one of your QR batches/,
    );
    // Another principal's code is not "yours".
    expectProblem(await submit(t.server, bob.auth, { qr_content: codes[0] }), 400, 'VALIDATION_ERROR', /one of your QR batches/);
    expect(await counts()).toEqual(before);
    expect(existsSync(join(dataDir, 'storage', 'booth'))).toBe(false);
  });

  let confirmedJob: string;

  it('makes 3 options of different styles; the reviewer sees them with the original, no-cache', async () => {
    const file = photo('shapes-00-640x480.png');
    const res = await submit(t.server, station, {
      qr_content: codes[0],
      animal_type: ' Dog ',
      broken_bone: 'true',
      first_name: '  Alice  ',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toEqual({ status: 'success', submission_id: expect.any(String), job_id: expect.any(String), current_jobs: 0 });
    const jobId: string = res.body.job_id;
    // The same code while that submission is open: 409, nothing stored.
    const before = await counts();
    expectProblem(await submit(t.server, station, { qr_content: codes[0] }), 409, 'CONFLICT', /already tied to an open submission/);
    expect(await counts()).toEqual(before);

    const urls = await reviewable(t.server, station, jobId);
    expect(urls).toEqual([0, 1, 2].map((n) => `/api/v1/jobs/${jobId}/options/${n}`));
    const list = await reviews(t.server, station);
    expect(list.results_per_image).toBe(3);
    expect(list.metadata[jobId]).toMatchObject({
      first_name: 'Alice',
      last_name: 'Smith',
      animal_name: 'Buddy',
      animal_type: 'dog',
      broken_bone: true,
    });
    expect(list.originals[jobId]).toBe(`/api/v1/jobs/${jobId}/original`);

    const pixels: Buffer[] = [];
    for (const url of urls) {
      const o = await asBuffer(request(t.server).get(url).set(station));
      expect(o.status).toBe(200);
      expect(o.headers).toMatchObject({ 'content-type': 'image/png', ...NO_CACHE });
      const { data, info } = await sharp(o.body as Buffer)
        .raw()
        .toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([640, 480]);
      pixels.push(data);
    }
    expect(pixels[0]!.equals(pixels[1]!)).toBe(false);
    expect(pixels[1]!.equals(pixels[2]!)).toBe(false);
    const original = await asBuffer(request(t.server).get(`/api/v1/jobs/${jobId}/original`).set(station));
    expect(original.status).toBe(200);
    expect(original.headers).toMatchObject(NO_CACHE);
    expect((original.body as Buffer).equals(file)).toBe(true);
    expectProblem(await request(t.server).get(`/api/v1/jobs/${jobId}/options/3`).set(station), 404, 'NOT_FOUND');
    // Another user's job is a 404.
    expectProblem(await request(t.server).get(`/api/v1/jobs/${jobId}/options/0`).set(bob.auth), 404, 'JOB_NOT_FOUND');
    expectProblem(
      await request(t.server).post(`/api/v1/jobs/${jobId}/review`).set(bob.auth).send({ decision: 'cancel' }),
      404,
      'JOB_NOT_FOUND',
    );
    confirmedJob = jobId;
  });

  it("confirms an option (400 out of range): the pair joins the carousel and the owner's page; a second decision is 409", async () => {
    const jobId = confirmedJob;
    const code = codes[0]!;
    expectProblem(await request(t.server).get(`/api/v1/booth/results/${code}`), 404, 'NOT_FOUND'); // not confirmed yet
    const review = (body: object) => request(t.server).post(`/api/v1/jobs/${jobId}/review`).set(station).send(body);
    expectProblem(await review({ decision: 'confirm', choice: 3 }), 400, 'VALIDATION_ERROR', /choice must be between 0 and 2/);
    expectProblem(await review({ decision: 'confirm' }), 400, 'VALIDATION_ERROR', /choice is required/);
    expectProblem(await review({ decision: 'keep', choice: 0 }), 400, 'VALIDATION_ERROR', /decision must be one of confirm, retry, cancel/);
    const chosen = await asBuffer(request(t.server).get(`/api/v1/jobs/${jobId}/options/1`).set(station));
    const ok = await review({ decision: 'confirm', choice: 1 });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toEqual({ status: 'success', state: 'confirmed', carousel_index: 0 });
    expectProblem(await review({ decision: 'retry' }), 409, 'CONFLICT', /not awaiting review: it is confirmed/);
    expect((await reviews(t.server, station)).results[jobId]).toBeUndefined();

    const carousel = await request(t.server).get('/api/v1/carousel');
    expect(carousel.body).toEqual(['/api/v1/carousel/0']);
    const zip = await asBuffer(request(t.server).get('/api/v1/carousel/0'));
    expect(zip.status).toBe(200);
    expect(zip.headers['content-type']).toMatch(/application\/zip/);
    expect(zip.headers['content-disposition']).toBe('attachment; filename="carousel_0.zip"');
    const files = unzipSync(new Uint8Array(zip.body as Buffer));
    expect(Object.keys(files).sort()).toEqual(['original.png', 'xray.png']);
    expect(Buffer.from(files['xray.png']!).equals(chosen.body as Buffer)).toBe(true);
    expect(await sharp(Buffer.from(files['original.png']!)).metadata()).toMatchObject({ format: 'png', width: 640, height: 480 });
    expectProblem(await request(t.server).get('/api/v1/carousel/1'), 404, 'NOT_FOUND');
    expectProblem(await request(t.server).get('/api/v1/carousel/abc'), 404, 'NOT_FOUND');

    // The owner's page (public): JSON with URLs, the files, and the ZIP.
    const page = await request(t.server).get(`/api/v1/booth/results/${code}`);
    expect(page.status).toBe(200);
    expect(page.body).toMatchObject({ animal_name: 'Buddy', first_name: 'Alice', xray_url: `/api/v1/booth/results/${code}/xray.png` });
    const xray = await asBuffer(request(t.server).get(page.body.xray_url));
    expect(xray.status).toBe(200);
    expect((xray.body as Buffer).equals(chosen.body as Buffer)).toBe(true);
    const both = await asBuffer(request(t.server).get(page.body.download_url));
    expect(both.headers['content-type']).toMatch(/application\/zip/);
    expect(Object.keys(unzipSync(new Uint8Array(both.body as Buffer))).sort()).toEqual(['original.png', 'xray.png']);
    expectProblem(await request(t.server).get(`/api/v1/booth/results/${'Z'.repeat(26)}`), 404, 'NOT_FOUND');
    expectProblem(await request(t.server).get(`/api/v1/booth/results/${codes[1]}`), 404, 'NOT_FOUND'); // issued, never used
    expectProblem(await request(t.server).get(`/api/v1/booth/results/${code}/secret.txt`), 404, 'NOT_FOUND');
  });

  it('retry drops the options and queues the job again; new options come back for review', async () => {
    const res = await submit(t.server, station, { qr_content: codes[2], animal_name: 'Milo' });
    const jobId: string = res.body.job_id;
    await reviewable(t.server, station, jobId);
    const first = await orm().find(JobArtifact, { job: jobId });
    expect(first.map((a) => a.attempt)).toEqual([1, 1, 1]);
    const r = await request(t.server).post(`/api/v1/jobs/${jobId}/review`).set(station).send({ decision: 'retry' });
    expect(r.body).toEqual({ status: 'success', state: 'queued', carousel_index: null });
    await reviewable(t.server, station, jobId);
    const again = await orm().find(JobArtifact, { job: jobId });
    expect(again.map((a) => a.attempt)).toEqual([2, 2, 2]);
    for (const a of first) expect(existsSync(join(dataDir, 'storage', a.storageKey))).toBe(false);
    const job = await orm().findOneOrFail(Job, { id: jobId });
    expect(job).toMatchObject({ status: 'completed', attempts: 2 });
  });

  it('cancel closes the submission and frees its QR code', async () => {
    const res = await submit(t.server, station, { qr_content: codes[3] });
    const jobId: string = res.body.job_id;
    await reviewable(t.server, station, jobId);
    const r = await request(t.server).post(`/api/v1/jobs/${jobId}/review`).set(station).send({ decision: 'cancel' });
    expect(r.body).toMatchObject({ state: 'cancelled' });
    expect((await reviews(t.server, station)).results[jobId]).toBeUndefined();
    expect(await orm().count(JobArtifact, { job: jobId })).toBe(0);
    expectProblem(
      await request(t.server).post(`/api/v1/jobs/${jobId}/review`).set(station).send({ decision: 'confirm', choice: 0 }),
      409,
      'CONFLICT',
    );
    expect((await submit(t.server, station, { qr_content: codes[3] })).status).toBe(201);
  });

  it('keeps CAROUSEL_SIZE pairs, newest first, and removes the files of the dropped ones', async () => {
    const [oldest] = await orm().find(CarouselEntry, {}, { orderBy: { createdAt: 'asc' }, limit: 1 });
    if (!oldest) throw new Error('no carousel entry yet');
    const jobIds: string[] = [];
    for (const code of [codes[4], codes[5]]) jobIds.push((await submit(t.server, station, { qr_content: code })).body.job_id);
    for (const id of jobIds) {
      await reviewable(t.server, station, id);
      const r = await request(t.server).post(`/api/v1/jobs/${id}/review`).set(station).send({ decision: 'confirm', choice: 0 });
      expect(r.body).toMatchObject({ state: 'confirmed', carousel_index: 0 });
    }
    expect((await request(t.server).get('/api/v1/carousel')).body).toEqual(['/api/v1/carousel/0', '/api/v1/carousel/1']);
    expect(await orm().count(CarouselEntry, {})).toBe(2);
    expect(await orm().count(CarouselEntry, { id: oldest.id })).toBe(0);
    expect(existsSync(join(dataDir, 'storage', oldest.xrayKey))).toBe(false);
    expect(existsSync(join(dataDir, 'storage', oldest.originalKey))).toBe(false);
    // The newest first: entry 0 is the last confirmed.
    const newest = await orm().findOneOrFail(BoothSubmission, { job: jobIds[1]! });
    const zip0 = unzipSync(new Uint8Array((await asBuffer(request(t.server).get('/api/v1/carousel/0'))).body as Buffer));
    const chosen = await asBuffer(request(t.server).get(`/api/v1/jobs/${newest.job.id}/options/0`).set(station));
    expect(Buffer.from(zip0['xray.png']!).equals(chosen.body as Buffer)).toBe(true);
    // The dropped pair's owner keeps their page.
    expect((await request(t.server).get(`/api/v1/booth/results/${codes[0]}`)).status).toBe(200);
  });

  it('gives the station the booth routes only; leases are for booth workers (204 here: internal processing)', async () => {
    expectProblem(
      await request(t.server).get('/api/v1/jobs').set(station),
      403,
      'FORBIDDEN',
      'The station account may only use the booth endpoints.',
    );
    expectProblem(await request(t.server).get('/api/v1/images').set(station), 403, 'FORBIDDEN');
    expectProblem(await request(t.server).post('/api/v1/jobs/lease').set(station), 403, 'FORBIDDEN');
    expectProblem(await request(t.server).post('/api/v1/jobs/lease').set(bob.auth), 403, 'FORBIDDEN', /booth-worker/);
    expect((await request(t.server).get('/api/v1/reviews').set(station)).status).toBe(200);
    // A user sees only their own review queue.
    expect((await reviews(t.server, bob.auth)).total).toBe(0);
  });
});

describe("the owner's page is rate-limited by client IP", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(testEnv('booth-rate', { RATE_LIMIT_PER_MINUTE: '3' }));
  });
  afterAll(() => t?.close());

  it('answers 429 with Retry-After past the limit, for guessed codes too', async () => {
    for (let i = 0; i < 3; i++) expectProblem(await request(t.server).get(`/api/v1/booth/results/${'A'.repeat(25)}${i}`), 404, 'NOT_FOUND');
    const limited = await request(t.server).get(`/api/v1/booth/results/${'B'.repeat(26)}`);
    expectProblem(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  });
});
