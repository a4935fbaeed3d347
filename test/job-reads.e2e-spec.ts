import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { type ForkOptions, MikroORM } from '@mikro-orm/core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, login, registerAndLogin, uniqueName, waitFor } from './support/http.js';

/**
 * The status and result reads of a job (the most polled routes, read as plain rows by primary key): what they answer
 * and to whom, on both databases (the JSON result arrives as text on SQLite).
 */
for (const dialect of ['postgresql', 'sqlite'] as const) {
  describe(`job status and result reads on ${dialect}`, () => {
    let t: TestApp;
    let alice: LoggedIn;
    let bob: LoggedIn;
    let admin: LoggedIn;
    let jobId: string;
    beforeAll(async () => {
      const adminName = uniqueName('admin');
      const env = testEnv(`job-reads-${dialect}`, { ADMIN_USERNAME: adminName, ADMIN_PASSWORD: 'admin-password-1' });
      if (dialect === 'sqlite') env.DATABASE_URL = `sqlite:${join(env.DATA_DIR!, 'reads.sqlite')}`;
      t = await createTestApp(env, { worker: true });
      alice = await registerAndLogin(t.server, 'reader');
      bob = await registerAndLogin(t.server, 'other');
      admin = await login(t.server, adminName, 'admin-password-1');
      const batch = await request(t.server).post('/api/v1/qr/batches').set(alice.auth).send({ n: 2 });
      expect(batch.status, JSON.stringify(batch.body)).toBe(202);
      jobId = String(batch.body.job_id);
    });
    afterAll(() => t?.close());

    const get = (path: string, who: LoggedIn) => request(t.server).get(path).set(who.auth);

    it("answers the owner's job, waiting with wait_ms until it is final", async () => {
      const waited = await get(`/api/v1/jobs/${jobId}/status?wait_ms=20000`, alice);
      expect(waited.status).toBe(200);
      expect(waited.body).toEqual({ id: jobId, status: 'completed', progress: 1, total_images: 0, processed_images: 0, error: null });
      const result = await get(`/api/v1/jobs/${jobId}/result`, alice);
      expect(result.status).toBe(200);
      expect(Object.keys(result.body)).toEqual(['id', 'status', 'type', 'result']);
      expect(result.body).toMatchObject({ id: jobId, status: 'completed', type: 'qr.batch', result: { codes: 2, pages: 1 } });
      // The same as the job's detail, which reads the entity
      const detail = await get(`/api/v1/jobs/${jobId}`, alice);
      expect(result.body.result).toEqual(detail.body.result);
      expect(detail.body).toMatchObject((await get(`/api/v1/jobs/${jobId}/status`, alice)).body);
    });

    it("hides another user's job, an unknown and a malformed id behind the same 404; an admin reads any", async () => {
      for (const view of ['status', 'result']) {
        expectProblem(await get(`/api/v1/jobs/${jobId}/${view}`, bob), 404, 'JOB_NOT_FOUND', `Job with id ${jobId} does not exist.`);
        const unknown = randomUUID();
        expectProblem(await get(`/api/v1/jobs/${unknown}/${view}`, alice), 404, 'JOB_NOT_FOUND', `Job with id ${unknown} does not exist.`);
        expectProblem(await get(`/api/v1/jobs/not-a-uuid/${view}`, alice), 404, 'JOB_NOT_FOUND', 'Job with id not-a-uuid does not exist.');
        expectProblem(await get(`/api/v1/jobs/${jobId}'%20or%20'1'='1/${view}`, alice), 404, 'JOB_NOT_FOUND');
        const asAdmin = await get(`/api/v1/jobs/${jobId}/${view}`, admin);
        expect(asAdmin.status).toBe(200);
        expect(asAdmin.body).toEqual((await get(`/api/v1/jobs/${jobId}/${view}`, alice)).body);
      }
    });

    it('refuses a bad wait_ms or an unknown query field (400), and credentials that are missing or ended (401)', async () => {
      for (const q of ['wait_ms=30001', 'wait_ms=-1', 'wait_ms=soon', 'wait_ms=1&x=1']) {
        expectProblem(await get(`/api/v1/jobs/${jobId}/status?${q}`, alice), 400, 'VALIDATION_ERROR');
      }
      expect((await get(`/api/v1/jobs/${jobId}/status?wait_ms=0`, alice)).status).toBe(200);
      expectProblem(await request(t.server).get(`/api/v1/jobs/${jobId}/status`), 401, 'UNAUTHORIZED');
      const u = await registerAndLogin(t.server, 'leaver');
      const own = await request(t.server).post('/api/v1/qr/batches').set(u.auth).send({ n: 1 });
      await waitFor(async () => (await get(`/api/v1/jobs/${own.body.job_id}/status`, u)).body.status === 'completed');
      expect((await request(t.server).post('/api/v1/auth/logout-all').set(u.auth)).status).toBe(204);
      expectProblem(await get(`/api/v1/jobs/${own.body.job_id}/status`, u), 401, 'UNAUTHORIZED');
    });

    it('carries the rate-limit headers and the request id', async () => {
      const res = await get(`/api/v1/jobs/${jobId}/status`, alice).set('X-Request-Id', 'poll-42');
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toBe('poll-42');
      expect(res.headers['x-ratelimit-limit-minute']).toBeDefined();
      expect(res.headers['x-ratelimit-remaining-hour']).toBeDefined();
    });

    it("forks the request's entity manager only when the request uses it", async () => {
      const em = t.app.get(MikroORM).em;
      const fork = em.fork.bind(em);
      let forks = 0; // request-context forks only (the worker's own forks do not use the context)
      em.fork = ((options?: ForkOptions) => {
        if (options?.useContext) forks++;
        return fork(options);
      }) as typeof em.fork;
      try {
        expect((await get(`/api/v1/jobs/${jobId}/status`, alice)).status).toBe(200);
        expect((await request(t.server).get('/health/live')).status).toBe(200);
        expect(forks).toBe(0);
        // The job's detail reads entities: one fork, shared by everything the request reads
        expect((await get(`/api/v1/jobs/${jobId}`, alice)).status).toBe(200);
        expect(forks).toBe(1);
      } finally {
        em.fork = fork;
      }
    });
  });
}
