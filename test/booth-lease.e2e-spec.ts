import { MikroORM } from '@mikro-orm/core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job, JobArtifact } from '@aperture/database/entities/job.entity.js';
import { JobLifecycle } from '@aperture/queue/job-lifecycle.js';
import { createTestApp, type TestApp } from './support/app.js';
import { asBuffer, type Auth, boothDatabase, photo, qrCodes, reviewable, STATION_PASSWORD, stationAuth, submit } from './support/booth.js';
import { testEnv } from './support/env.js';
import { expectProblem, login, type LoggedIn, registerAndLogin } from './support/http.js';

const LEASE_SECONDS = 2;

describe('booth with external workers (BOOTH_PROCESSING=external, API only)', () => {
  let t: TestApp;
  let station: Auth;
  let codes: string[];
  let worker: LoggedIn;
  let worker2: LoggedIn;
  let admin: LoggedIn;
  let next = 0;
  const orm = () => t.app.get(MikroORM).em.fork();
  const code = () => codes[next++]!;
  const lease = (auth: Auth) => asBuffer(request(t.server).post('/api/v1/jobs/lease').set(auth));
  const options = (auth: Auth, jobId: string, leaseId: string | null, files: Buffer[]) => {
    let r = request(t.server).post(`/api/v1/jobs/${jobId}/options`).set(auth);
    if (leaseId) r = r.field('lease_id', leaseId);
    for (const [i, f] of files.entries()) r = r.attach('files', f, `option-${i}.png`);
    return r;
  };
  const newJob = async (fields = {}) => {
    const res = await submit(t.server, station, { qr_content: code(), ...fields });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { job_id: string; current_jobs: number };
  };
  const boothWorker = async (admin: LoggedIn, prefix: string) => {
    const u = await registerAndLogin(t.server, prefix);
    const r = await request(t.server).patch(`/api/v1/users/${u.userId}`).set(admin.auth).send({ role: 'booth-worker' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return u;
  };
  /** Every job leased so far is finished, so each test starts from an empty queue. */
  const drain = async () => {
    for (;;) {
      const l = await lease(worker.auth);
      if (l.status === 204) return;
      await options(worker.auth, l.headers['img_id']!, l.headers['lease-id']!, [photo('shapes-01-480x640.png')]).expect(200);
    }
  };

  let db: Awaited<ReturnType<typeof boothDatabase>>;

  beforeAll(async () => {
    db = await boothDatabase('booth_lease');
    const env = testEnv('booth-lease', {
      DATABASE_URL: db.url,
      STATION_PASSWORD,
      BOOTH_PROCESSING: 'external',
      BOOTH_LEASE_SECONDS: String(LEASE_SECONDS),
      BOOTH_RESULTS_PER_IMAGE: '3',
      ADMIN_USERNAME: 'lease_admin',
      ADMIN_PASSWORD: 'lease-admin-password',
    });
    t = await createTestApp(env);
    station = await stationAuth(t.server);
    codes = await qrCodes(t.server, station, 40, env.DATABASE_URL!);
    admin = await login(t.server, 'lease_admin', 'lease-admin-password');
    worker = await boothWorker(admin, 'bw1');
    worker2 = await boothWorker(admin, 'bw2');
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('answers 204 when nothing waits, and counts the submissions ahead of a new one', async () => {
    expect((await lease(worker.auth)).status).toBe(204);
    const a = await newJob();
    const b = await newJob();
    const c = await newJob();
    expect([a.current_jobs, b.current_jobs, c.current_jobs]).toEqual([0, 1, 2]);
    await drain();
  });

  it('leases the photo with its metadata in headers; heartbeat extends; the options complete the job for review', async () => {
    const file = photo('shapes-02-800x450.png');
    const res = await submit(t.server, station, { qr_content: code(), first_name: 'Zoë', animal_name: 'Rex', animal_type: 'cat' }, file);
    const jobId: string = res.body.job_id;
    const l = await lease(worker.auth);
    expect(l.status).toBe(200);
    expect((l.body as Buffer).equals(file)).toBe(true);
    expect(l.headers).toMatchObject({
      'content-type': 'image/png',
      img_id: jobId,
      first_name: encodeURIComponent('Zoë'),
      last_name: 'Smith',
      animal_name: 'Rex',
      animal_type: 'cat',
      'lease-id': expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    const leaseId = l.headers['lease-id']!;
    const expires = Date.parse(l.headers['lease-expires']!);
    expect(expires).toBeGreaterThan(Date.now());
    expect((await lease(worker2.auth)).status).toBe(204); // the only job is leased

    await new Promise((r) => setTimeout(r, 300));
    const hb = await request(t.server).post(`/api/v1/jobs/${jobId}/heartbeat`).set(worker.auth).send({ lease_id: leaseId });
    expect(hb.status, JSON.stringify(hb.body)).toBe(200);
    expect(Date.parse(hb.body.lease_expires)).toBeGreaterThan(expires);
    // Another worker cannot use this lease; a wrong lease id is a 409; a missing one a 400.
    expectProblem(
      await request(t.server).post(`/api/v1/jobs/${jobId}/heartbeat`).set(worker2.auth).send({ lease_id: leaseId }),
      409,
      'CONFLICT',
    );
    expectProblem(await request(t.server).post(`/api/v1/jobs/${jobId}/heartbeat`).set(worker.auth).send({}), 400, 'VALIDATION_ERROR');
    expectProblem(
      await request(t.server).post(`/api/v1/jobs/${crypto.randomUUID()}/heartbeat`).set(worker.auth).send({ lease_id: leaseId }),
      404,
      'JOB_NOT_FOUND',
    );

    // Bad options store nothing: none, too many, not an image.
    expectProblem(await options(worker.auth, jobId, leaseId, []), 400, 'VALIDATION_ERROR', /1 to 3 result images/);
    expectProblem(await options(worker.auth, jobId, leaseId, Array(4).fill(photo())), 400, 'VALIDATION_ERROR');
    expectProblem(await options(worker.auth, jobId, leaseId, [photo(), Buffer.from('nope')]), 400, 'IMAGE_VALIDATION_ERROR');
    expect(await orm().count(JobArtifact, { job: jobId })).toBe(0);

    const sent = [photo('shapes-03-500x500.png'), photo('shapes-04-1024x600.png')];
    const ok = await options(worker.auth, jobId, null, sent).set('lease-id', leaseId);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toEqual({ status: 'success', job_id: jobId, options: 2 });
    expectProblem(await options(worker.auth, jobId, leaseId, sent), 409, 'CONFLICT', /expired or was taken over/);

    const urls = await reviewable(t.server, station, jobId, 5000);
    expect(urls).toHaveLength(2);
    for (const [n, url] of urls.entries()) {
      const o = await asBuffer(request(t.server).get(url).set(station));
      expect((o.body as Buffer).equals(sent[n]!)).toBe(true);
    }
    const job = await orm().findOneOrFail(Job, { id: jobId });
    expect(job).toMatchObject({ status: 'completed', attempts: 1, result: { source: 'external' } });
    // A booth job belongs to its submission: deleting it through /jobs is refused.
    expectProblem(await request(t.server).delete(`/api/v1/jobs/${jobId}`).set(admin.auth), 409, 'CONFLICT', /booth job/);
    // A retry puts the job back for the workers.
    await request(t.server).post(`/api/v1/jobs/${jobId}/review`).set(station).send({ decision: 'retry' }).expect(200);
    const again = await lease(worker2.auth);
    expect(again.headers['img_id']).toBe(jobId);
    await options(worker2.auth, jobId, again.headers['lease-id']!, [photo()]).expect(200);
    expect(await orm().count(JobArtifact, { job: jobId })).toBe(1);
  });

  it('an expired lease returns the job to the queue: its holder gets 409 and stores nothing', async () => {
    const { job_id: jobId } = await newJob();
    const first = await lease(worker.auth);
    expect(first.headers['img_id']).toBe(jobId);
    await new Promise((r) => setTimeout(r, LEASE_SECONDS * 1000 + 300));
    const leaseId = first.headers['lease-id']!;
    expectProblem(
      await request(t.server).post(`/api/v1/jobs/${jobId}/heartbeat`).set(worker.auth).send({ lease_id: leaseId }),
      409,
      'CONFLICT',
    );
    expectProblem(await options(worker.auth, jobId, leaseId, [photo()]), 409, 'CONFLICT');
    expect(await orm().count(JobArtifact, { job: jobId })).toBe(0);
    // Taken over by another worker; the first one's lease stays lost.
    const second = await lease(worker2.auth);
    expect(second.headers['img_id']).toBe(jobId);
    expectProblem(await options(worker.auth, jobId, leaseId, [photo()]), 409, 'CONFLICT');
    await options(worker2.auth, jobId, second.headers['lease-id']!, [photo(), photo('shapes-05-600x900.png')]).expect(200);
    const job = await orm().findOneOrFail(Job, { id: jobId });
    expect(job).toMatchObject({ status: 'completed', attempts: 2 });
    expect((await orm().find(JobArtifact, { job: jobId })).map((a) => a.attempt)).toEqual([2, 2]);
  });

  it('ten workers leasing at once never get the same job', async () => {
    const jobs = new Set<string>();
    for (let i = 0; i < 10; i++) jobs.add((await newJob()).job_id);
    const leased = await Promise.all(Array.from({ length: 10 }, (_x, i) => lease(i % 2 ? worker.auth : worker2.auth)));
    expect(leased.map((l) => l.status)).toEqual(Array(10).fill(200));
    const ids = leased.map((l) => l.headers['img_id']!);
    expect(new Set(ids).size).toBe(10);
    expect(new Set(ids)).toEqual(jobs);
    expect((await lease(worker.auth)).status).toBe(204);
    const owners = await orm().find(Job, { id: { $in: [...jobs] } });
    expect(new Set(owners.map((j) => j.leaseOwner)).size).toBe(10);
    await Promise.all(
      leased.map((l, i) =>
        options(i % 2 ? worker.auth : worker2.auth, l.headers['img_id']!, l.headers['lease-id']!, [photo()]).expect(200),
      ),
    );
  });

  it('an internal worker and an external one never both complete a job: same guarded claim and complete', async () => {
    const lifecycle = t.app.get(JobLifecycle);
    const { job_id: jobId } = await newJob();
    const l = await lease(worker.auth);
    expect(l.headers['img_id']).toBe(jobId);
    const internal = { owner: 'worker:test-internal', leaseMs: 30000 };
    expect((await lifecycle.claim(orm(), jobId, internal)).kind).toBe('busy'); // the external lease holds it
    await new Promise((r) => setTimeout(r, LEASE_SECONDS * 1000 + 300));
    const claimed = await lifecycle.claim(orm(), jobId, internal); // the lease expired: the internal worker takes over
    if (claimed.kind !== 'claimed') throw new Error(`expected a takeover, got ${claimed.kind}`);
    expect(await lifecycle.complete(claimed.attempt, { source: 'internal', model: 'xray', options: [] })).toBe(true);
    expectProblem(await options(worker.auth, jobId, l.headers['lease-id']!, [photo()]), 409, 'CONFLICT');
    const job = await orm().findOneOrFail(Job, { id: jobId });
    expect(job).toMatchObject({ status: 'completed', attempts: 2, result: { source: 'internal' } });
    expect(await orm().count(JobArtifact, { job: jobId })).toBe(0);
    expect((await lease(worker2.auth)).status).toBe(204);
  });

  it('an API key with the booth-worker scope may lease; the station and plain users may not', async () => {
    const plainKey = await request(t.server).post('/api/v1/auth/api-keys').set(worker.auth).send({ name: 'no scope' });
    expectProblem(
      await request(t.server).post('/api/v1/jobs/lease').set({ 'X-API-Key': plainKey.body.key }),
      403,
      'FORBIDDEN',
      /booth-worker/,
    );
    const key = await request(t.server)
      .post('/api/v1/auth/api-keys')
      .set(worker.auth)
      .send({ name: 'xray rig', scopes: ['booth-worker'] });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    const { job_id: jobId } = await newJob();
    const l = await lease({ 'X-API-Key': key.body.key });
    expect(l.status).toBe(200);
    expect(l.headers['img_id']).toBe(jobId);
    const user = await registerAndLogin(t.server, 'plain');
    expectProblem(await request(t.server).post('/api/v1/jobs/lease').set(user.auth), 403, 'FORBIDDEN', /booth-worker/);
    expectProblem(await request(t.server).post('/api/v1/jobs/lease').set(station), 403, 'FORBIDDEN');
    expectProblem(await request(t.server).post(`/api/v1/jobs/${jobId}/heartbeat`).set(station).send({}), 403, 'FORBIDDEN');
    await drain();
  });
});
