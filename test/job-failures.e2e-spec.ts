import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MikroORM } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import { QrCode } from '@aperture/database/entities/qr.entity.js';
import { REDIS } from '@aperture/redis/redis.module.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { type LoggedIn, registerAndLogin, waitFor } from './support/http.js';

describe('job failures and dependency outages', () => {
  let t: TestApp;
  let u: LoggedIn;
  let env: ReturnType<typeof testEnv>;
  beforeAll(async () => {
    env = testEnv('failures', { JOB_ATTEMPTS: '2', JOB_BACKOFF_MS: '100' });
    t = await createTestApp(env, { worker: true });
    u = await registerAndLogin(t.server);
  });
  afterAll(() => t?.close());

  const jobOf = async (id: string) => (await request(t.server).get(`/api/v1/jobs/${id}`).set(u.auth)).body;

  it('fails at once, with the reason, when retrying cannot help', async () => {
    // Stop the worker from seeing the batch's codes: the handler reports a permanent error.
    const orm = t.app.get(MikroORM);
    const queue = (await import('@aperture/queue/jobs.service.js')).JobsService;
    await t.app.get(queue).queue('default').pause(true);
    try {
      const res = await request(t.server).post('/api/v1/qr/batches').set(u.auth).send({ n: 2 });
      await orm.em.fork().nativeDelete(QrCode, { batch: res.body.id, position: 1 });
      await t.app.get(queue).queue('default').resume(true);
      const job = await waitFor(async () => {
        const j = await jobOf(res.body.job_id);
        return j.status === 'failed' ? j : null;
      });
      expect(job.attempts).toBe(1);
      expect(job.error).toMatch(/has 1 codes, expected 2/);
      expect(job.artifacts).toEqual([]);
    } finally {
      await t.app.get(queue).queue('default').resume(true);
    }
  });

  it('retries a transient failure a bounded number of times, then fails with the reason', async () => {
    const storageDir = join(env.DATA_DIR!, 'storage');
    rmSync(storageDir, { recursive: true, force: true });
    writeFileSync(storageDir, 'not a directory'); // every write to storage now fails
    try {
      const res = await request(t.server).post('/api/v1/qr/batches').set(u.auth).send({ n: 1 });
      const job = await waitFor(async () => {
        const j = await jobOf(res.body.job_id);
        return j.status === 'failed' ? j : null;
      });
      expect(job.attempts).toBe(2);
      expect(job.max_attempts).toBe(2);
      // The job shows an error id, never the raw exception (file paths, system error codes).
      expect(job.error).toMatch(/^The job failed on an internal error\. Quote error id [0-9a-f-]{36} when reporting it\.$/);
      expect(job.error).not.toMatch(/ENOTDIR|EEXIST|not a directory|\//i);
    } finally {
      rmSync(storageDir, { force: true });
    }
  });

  it('fails a model run at once, saying why, when its image passes the upload check but does not decode', async () => {
    // A PNG whose chunks are whole and whose CRCs match (the API's check reads no pixels), but whose IDAT is not zlib data.
    const png = Buffer.from(
      await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 9, g: 99, b: 199 } } })
        .png()
        .toBuffer(),
    );
    const at = png.indexOf('IDAT') - 4;
    const n = png.readUInt32BE(at);
    for (let i = 0; i < n; i++) png[at + 8 + i] = (i * 37 + 11) & 0xff;
    png.writeUInt32BE(crc32(png.subarray(at + 4, at + 8 + n)), at + 8 + n);
    const res = await request(t.server)
      .post('/api/v1/models/primitives-obb/infer')
      .set(u.auth)
      .attach('image', png, { filename: 'undecodable.png', contentType: 'image/png' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await waitFor(async () => {
      const j = await jobOf(res.body.job_id);
      return j.status === 'failed' ? j : null;
    });
    expect(job.attempts).toBe(1); // of 2: retrying cannot help
    expect(job.error).toMatch(/^The image could not be decoded \(.+\): the file is damaged or not an image Aperture can read\.$/);
  });

  it('reports not ready (503) within about a second when Redis is unreachable, while live stays 200', async () => {
    const redis = t.app.get<Redis>(REDIS);
    redis.disconnect();
    try {
      const started = Date.now();
      const ready = await request(t.server).get('/health/ready');
      expect(ready.status).toBe(503);
      expect(ready.body.error.redis.status).toBe('down');
      expect(Date.now() - started).toBeLessThan(3000);
      expect((await request(t.server).get('/health/live')).status).toBe(200);
    } finally {
      await redis.connect().catch(() => undefined);
    }
  });
});
