import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MikroORM } from '@mikro-orm/core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { StorageSweeper } from '@aperture/queue/storage-sweeper.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { expectProblem, type LoggedIn, login, registerAndLogin, uniqueName } from './support/http.js';

/** Deleting an account takes every row and stored file with it; the storage sweep removes what no row references. */
describe('account deletion and the storage sweep (PostgreSQL, local storage)', () => {
  let t: TestApp;
  let storageDir: string;
  const admin = { name: uniqueName('admin'), password: 'admin-password-1' };
  const png = resolve(fixtures, 'sam/shapes-01-480x640.png');
  beforeAll(async () => {
    t = await createTestApp(testEnv('deletion', { ADMIN_USERNAME: admin.name, ADMIN_PASSWORD: admin.password }), { worker: true });
    storageDir = t.app.get<AppConfig>(APP_CONFIG).storage.dir;
  });
  afterAll(() => t?.close());

  /** A user with an image, a finished segmentation job (artifacts, an uploaded input, a stored embedding), a key. */
  async function populated(prefix: string): Promise<{ u: LoggedIn; imageId: string; jobId: string; uploadJobId: string; key: string }> {
    const u = await registerAndLogin(t.server, prefix);
    const img = await request(t.server).post('/api/v1/images').set(u.auth).attach('images', png);
    const imageId = img.body.data[0].id as string;
    const seg = await request(t.server)
      .post('/api/v1/segment/points')
      .set(u.auth)
      .field('image_id', imageId)
      .field('points', JSON.stringify([{ x: 240, y: 197 }]))
      .field('coords', 'pixels');
    expect(seg.status, JSON.stringify(seg.body)).toBe(200);
    const upload = await request(t.server)
      .post('/api/v1/segment/points')
      .set(u.auth)
      .attach('image', png)
      .field('points', '[{"x":0.5,"y":0.5}]');
    expect(upload.status).toBe(200);
    const emb = await request(t.server).get(`/api/v1/images/${imageId}/embedding`).set(u.auth);
    expect(emb.status).toBe(200);
    const key = (await request(t.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'k' })).body.key as string;
    return { u, imageId, jobId: seg.body.job_id as string, uploadJobId: upload.body.job_id as string, key };
  }
  const stored = (...parts: string[]): boolean => existsSync(join(storageDir, ...parts));

  it('DELETE /users/me (confirmed with the username) removes the account, its rows and its files; others keep theirs', async () => {
    const a = await populated('leaving');
    const b = await populated('staying');
    expect([stored('images', a.imageId), stored('jobs', a.jobId), stored('inputs', a.uploadJobId)]).toEqual([true, true, true]);
    expectProblem(
      await request(t.server).delete('/api/v1/users/me').set(a.u.auth).send({ confirm: 'someone-else' }),
      400,
      'VALIDATION_ERROR',
    );
    expect(stored('images', a.imageId)).toBe(true);
    expect((await request(t.server).delete('/api/v1/users/me').set(a.u.auth).send({ confirm: a.u.username.toUpperCase() })).status).toBe(
      204,
    );
    expectProblem(await request(t.server).get('/api/v1/auth/me').set(a.u.auth), 401, 'UNAUTHORIZED');
    expectProblem(await request(t.server).get('/api/v1/auth/me').set('X-API-Key', a.key), 401, 'UNAUTHORIZED');
    expect([stored('images', a.imageId), stored('jobs', a.jobId), stored('inputs', a.uploadJobId)]).toEqual([false, false, false]);
    const em = t.app.get(MikroORM).em.fork();
    expect(await em.count(Job, { id: { $in: [a.jobId, a.uploadJobId] } })).toBe(0);
    // The same bytes are still one of B's images: the shared embedding stays; B's files and jobs are untouched.
    expect((await request(t.server).get(`/api/v1/images/${b.imageId}/content`).set(b.u.auth)).status).toBe(200);
    expect((await request(t.server).get(`/api/v1/jobs/${b.jobId}/result`).set(b.u.auth)).status).toBe(200);
    expect([stored('images', b.imageId), stored('jobs', b.jobId)]).toEqual([true, true]);
  });

  it('an admin deletes a user (DELETE /users/{id}); a non-admin gets 403; an unknown id 404', async () => {
    const victim = await populated('removed');
    const other = await registerAndLogin(t.server, 'nosy');
    expectProblem(await request(t.server).delete(`/api/v1/users/${victim.u.userId}`).set(other.auth), 403, 'FORBIDDEN');
    const root = await login(t.server, admin.name, admin.password);
    expect((await request(t.server).delete(`/api/v1/users/${victim.u.userId}`).set(root.auth)).status).toBe(204);
    expect([stored('images', victim.imageId), stored('jobs', victim.jobId)]).toEqual([false, false]);
    expectProblem(await request(t.server).delete(`/api/v1/users/${victim.u.userId}`).set(root.auth), 404, 'NOT_FOUND');
  });

  it('the storage sweep removes groups no row references once past the grace period, and expired failed jobs', async () => {
    const owner = await populated('sweep');
    const old = new Date(Date.now() - 3 * 3_600_000);
    const orphan = (area: string, name: string, when: Date | null): void => {
      mkdirSync(join(storageDir, area, name), { recursive: true });
      writeFileSync(join(storageDir, area, name, 'file'), 'x');
      if (when) utimesSync(join(storageDir, area, name), when, when);
    };
    const ghost = '0b9a6c2e-5d1f-4b7a-8e3c-2f1d0a9b8c7d';
    orphan('jobs', ghost, old); // a deleted job's late writes
    orphan('inputs', ghost, old); // an upload whose job was never saved
    orphan('images', '1c8b7d3f-6e2a-4c8b-9f4d-3a2e1b0c9d8e', old);
    orphan('embeddings', 'f'.repeat(64), old);
    orphan('carousel', '2d7c8e4a-7f3b-4d9c-8a5e-4b3f2c1d0e9f', old);
    orphan('jobs', '3e6d9f5b-8a4c-4e0d-9b6f-5c4a3d2e1f0a', null); // young: its row may be on its way
    orphan('jobs', 'not-a-job-id', old); // not what the area holds: left alone
    utimesSync(join(storageDir, 'jobs', owner.jobId), old, old); // old, but its row is alive
    const em = t.app.get(MikroORM).em.fork();
    await em.nativeUpdate(Job, { id: owner.uploadJobId }, { status: 'failed', finishedAt: new Date(Date.now() - 40 * 86_400_000) });

    const report = await t.app.get(StorageSweeper).sweep();
    expect(report).toEqual({ removed: { jobs: 1, inputs: 1, images: 1, embeddings: 1, carousel: 1 }, expiredJobs: 1 });
    expect(stored('jobs', ghost)).toBe(false);
    expect(stored('inputs', ghost)).toBe(false);
    expect(stored('jobs', '3e6d9f5b-8a4c-4e0d-9b6f-5c4a3d2e1f0a')).toBe(true);
    expect(stored('jobs', 'not-a-job-id')).toBe(true);
    expect(stored('jobs', owner.jobId)).toBe(true);
    expect(stored('images', owner.imageId)).toBe(true);
    expect(stored('inputs', owner.uploadJobId)).toBe(false); // the expired failed job went with its files
    expect(await em.count(Job, { id: owner.uploadJobId })).toBe(0);
  });
});
