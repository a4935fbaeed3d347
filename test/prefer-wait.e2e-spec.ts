import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { RequestMethod } from '@nestjs/common';
import { INTERCEPTORS_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer } from '@nestjs/core';
import { MikroORM } from '@mikro-orm/core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PreferWaitInterceptor } from '@apps/api/jobs/prefer-wait.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { QrCode } from '@aperture/database/entities/qr.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { createTestApp, type TestApp } from './support/app.js';
import { type Auth, boothDatabase, photo, qrCodes, STATION_PASSWORD, stationAuth, submit } from './support/booth.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { type LoggedIn, registerAndLogin, waitFor } from './support/http.js';

/**
 * Prefer: wait=N (RFC 7240) on the routes that create jobs, through real HTTP, the queue and the worker (one process)
 * with the shipped models: 200 with the result within the wait, else the usual answer.
 */

const DETECTOR_IMAGE = 'primitives/office-00-800x600.jpg';
const SAM_IMAGE = 'sam/shapes-03-500x500.png';
/** Small grid: sam-tiny's decoder runs once per point. */
const FAST = { points_per_side: '4', pred_iou_thresh: '0.5', stability_score_thresh: '0.8' };

describe('Prefer: wait on the routes that create jobs', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let station: Auth;
  let codes: string[];
  let db: Awaited<ReturnType<typeof boothDatabase>>;
  const jobs = (): JobsService => t.app.get(JobsService);
  const orm = () => t.app.get(MikroORM).em.fork();

  beforeAll(async () => {
    // Its own database: the booth's station principal and review queue belong to a whole deployment.
    db = await boothDatabase('prefer');
    const env = testEnv('prefer', { DATABASE_URL: db.url, STATION_PASSWORD, BOOTH_RESULTS_PER_IMAGE: '1' });
    t = await createTestApp(env, { worker: true });
    alice = await registerAndLogin(t.server, 'prefer_a');
    station = await stationAuth(t.server);
    codes = await qrCodes(t.server, station, 4, db.url);
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const infer = (prefer?: string) => {
    const req = request(t.server).post('/api/v1/models/primitives-obb/infer').set(alice.auth);
    return (prefer === undefined ? req : req.set('Prefer', prefer)).attach('image', resolve(fixtures, DETECTOR_IMAGE));
  };

  it('answers 200 with the job result within the wait: the body GET /jobs/{id}/result gives', async () => {
    const res = await infer('respond-async, wait=30');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers['preference-applied']).toBe('wait=30');
    expect(res.headers['vary']).toMatch(/\bPrefer\b/);
    expect(res.body).toMatchObject({ type: 'model.infer', status: 'completed', result: { model: 'primitives-obb', kind: 'detector' } });
    expect((res.body.result.detections as unknown[]).length).toBeGreaterThan(0);
    const again = await request(t.server).get(`/api/v1/jobs/${res.body.id}/result`).set(alice.auth);
    expect(res.body).toEqual(again.body);
  });

  it('without the header: 202 as before, no Preference-Applied, Vary: Prefer', async () => {
    for (const header of [undefined, 'respond-async', 'wait=soon', 'wait']) {
      const res = await infer(header);
      expect(res.status, `${header}: ${JSON.stringify(res.body)}`).toBe(202);
      expect(res.body).toMatchObject({
        job_id: expect.any(String),
        status: 'queued',
        result_url: `/api/v1/jobs/${res.body.job_id}/result`,
      });
      expect(res.headers['preference-applied']).toBeUndefined();
      expect(res.headers['vary']).toMatch(/\bPrefer\b/);
    }
  });

  it('202 with Preference-Applied when the job is not final within the wait (the worker paused)', async () => {
    await jobs().queue('inference').pause(true);
    let jobId: string;
    try {
      const res = await infer('wait=1');
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(res.headers['preference-applied']).toBe('wait=1');
      expect(res.body).toMatchObject({ status: 'queued', job_url: `/api/v1/jobs/${res.body.job_id}` });
      jobId = res.body.job_id;
      expect((await orm().findOneOrFail(Job, { id: jobId })).status).toBe('queued');
    } finally {
      await jobs().queue('inference').resume(true);
    }
    const done = await request(t.server).get(`/api/v1/jobs/${jobId}/result?wait_ms=30000`).set(alice.auth);
    expect(done.body.status).toBe('completed');
  });

  it('clamps a wait over 60 s to 60 and says so', async () => {
    const res = await infer('wait=3600');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers['preference-applied']).toBe('wait=60');
    expect(res.body.status).toBe('completed');
  });

  it('a client that goes away ends the wait: no waiter is left behind', async () => {
    const waiter = t.app.get(JobWaiter);
    await jobs().queue('default').pause(true);
    try {
      const before = waiter.watchedJobs();
      const server = t.server.listening ? t.server : t.server.listen(0);
      const { port } = server.address() as AddressInfo;
      const body = JSON.stringify({ n: 1 });
      const req = httpRequest({
        port,
        method: 'POST',
        path: '/api/v1/qr/batches',
        headers: { ...alice.auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), prefer: 'wait=60' },
      });
      req.on('error', () => undefined);
      req.end(body);
      await waitFor(async () => waiter.watchedJobs() > before, 10000, 20);
      req.destroy();
      // Well before the 60 s the request asked for.
      await waitFor(async () => waiter.watchedJobs() === before, 10000, 20);
    } finally {
      await jobs().queue('default').resume(true);
    }
  });

  it('a job that fails within the wait: 200 with the result endpoint’s answer for it (status failed, the reason)', async () => {
    // The worker must not see the batch before one of its codes is gone: the handler then fails it for good.
    await jobs().queue('default').pause(true);
    const earlier = (await orm().find(Job, { type: 'qr.batch' }, { fields: ['id'] })).map((j) => j.id);
    let res: request.Response;
    try {
      const pending = request(t.server)
        .post('/api/v1/qr/batches')
        .set(alice.auth)
        .set('Prefer', 'wait=30')
        .send({ n: 2 })
        .then((r) => r);
      const job = await waitFor(async () => orm().findOne(Job, { type: 'qr.batch', id: { $nin: earlier } }), 10000, 20);
      const batch = await waitFor(async () => (await orm().find(QrCode, { batch: { job: job.id } }, { populate: ['batch'] }))[1]?.batch);
      await orm().nativeDelete(QrCode, { batch: batch.id, position: 1 });
      await jobs().queue('default').resume(true);
      res = await pending;
    } finally {
      await jobs().queue('default').resume(true);
    }
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers['preference-applied']).toBe('wait=30');
    expect(res.body).toMatchObject({ status: 'failed', pdf_url: null, error: expect.stringMatching(/codes/) });
    const again = await request(t.server).get(`/api/v1/qr/batches/${res.body.id}`).set(alice.auth);
    expect(res.body).toEqual(again.body);
  });

  describe('every route that creates a job', () => {
    type Case = { send: () => request.Test; check: (body: Record<string, unknown>) => void };
    const jobResult = (body: Record<string, unknown>): void =>
      expect(body).toMatchObject({ id: expect.any(String), status: 'completed', result: expect.any(Object) });
    const sam = (path: string, fields: Record<string, string>): request.Test => {
      let req = request(t.server).post(`/api/v1/${path}`).set(alice.auth).attach('image', resolve(fixtures, SAM_IMAGE));
      for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
      return req;
    };
    let taskId: string;
    let projectId: string;

    const cases: Record<string, Case> = {
      'post /api/v1/tasks': {
        send: () =>
          request(t.server)
            .post('/api/v1/tasks')
            .set(alice.auth)
            .field('type', 'prediction')
            .field('detection_model', 'primitives-obb')
            .attach('image', resolve(fixtures, DETECTOR_IMAGE)),
        check: (b) => {
          jobResult(b);
          expect(b['result']).toHaveProperty('image_class');
          taskId = b['id'] as string;
        },
      },
      'post /api/v1/tasks/:id/rerun': {
        send: () => request(t.server).post(`/api/v1/tasks/${taskId}/rerun`).set(alice.auth).send({}),
        check: (b) => {
          jobResult(b);
          expect(b['id']).not.toBe(taskId);
        },
      },
      'post /api/v1/models/:name/infer': {
        send: () => infer(),
        check: (b) => expect(b).toMatchObject({ status: 'completed', result: { model: 'primitives-obb' } }),
      },
      'post /api/v1/segment/points/async': {
        send: () => sam('segment/points/async', { points: JSON.stringify([{ x: 0.5, y: 0.5 }]) }),
        check: (b) => expect(b).toMatchObject({ status: 'completed', result: { model: 'sam-tiny', results: expect.any(Array) } }),
      },
      'post /api/v1/segment/box/async': {
        send: () => sam('segment/box/async', { box: JSON.stringify({ x1: 0.1, y1: 0.1, x2: 0.9, y2: 0.9 }) }),
        check: (b) => expect(b).toMatchObject({ status: 'completed', result: { model: 'sam-tiny', results: expect.any(Array) } }),
      },
      'post /api/v1/segment/auto/async': {
        send: () => sam('segment/auto/async', FAST),
        check: (b) => expect(b).toMatchObject({ status: 'completed', result: { model: 'sam-tiny', width: 500, height: 500 } }),
      },
      'post /api/v1/segment/objects/async': {
        send: () => sam('segment/objects/async', FAST),
        check: (b) => expect(b).toMatchObject({ status: 'completed', result: { model: 'sam-tiny', width: 500, height: 500 } }),
      },
      'post /api/v1/segment/batches': {
        send: () =>
          request(t.server)
            .post('/api/v1/segment/batches')
            .set(alice.auth)
            .field('points', JSON.stringify([[{ x: 0.5, y: 0.5 }], []]))
            .field('points_per_side', '4')
            .attach('images', resolve(fixtures, SAM_IMAGE))
            .attach('images', resolve(fixtures, SAM_IMAGE)),
        check: (b) => {
          expect(b).toMatchObject({ status: 'completed', total_images: 2, completed_images: 2 });
          expect((b['jobs'] as { status: string }[]).map((j) => j.status)).toEqual(['completed', 'completed']);
        },
      },
      'post /api/v1/projects/:id/start': {
        send: () => request(t.server).post(`/api/v1/projects/${projectId}/start`).set(alice.auth),
        check: (b) => {
          expect(b).toMatchObject({ message: 'GOT IT, START PROCESSING', queued: 1, batch_id: expect.any(String) });
          expect(b['results']).toHaveLength(1);
          expect(b['results']).toMatchObject([{ model: 'primitives-obb', detections: expect.any(Array), batch_id: b['batch_id'] }]);
        },
      },
      'post /api/v1/projects/:id/start-rest': {
        send: () => request(t.server).post(`/api/v1/projects/${projectId}/start-rest`).set(alice.auth),
        check: (b) => {
          // Set up below with a second image without a result: only it is queued; the project now has two result sets.
          expect(b).toMatchObject({ queued: 1, skipped_in_flight: 0 });
          expect(b['results']).toHaveLength(2);
        },
      },
      'post /api/v1/qr/batches': {
        send: () => request(t.server).post('/api/v1/qr/batches').set(alice.auth).send({ n: 3 }),
        check: (b) => expect(b).toMatchObject({ status: 'completed', n: 3, pdf_url: `/api/v1/qr/batches/${String(b['id'])}/pdf` }),
      },
      'post /api/v1/booth/submissions': {
        send: () => submit(t.server, station, { qr_content: codes[0]!, animal_type: 'dog' }, photo()).set('Prefer', 'wait=30'),
        check: (b) => expect(b).toMatchObject({ id: expect.any(String), status: 'completed', result: { options: [expect.any(Object)] } }),
      },
    };

    it('the table names exactly the routes that honour Prefer', () => {
      const honouring: string[] = [];
      for (const mod of t.app.get(ModulesContainer).values()) {
        for (const wrapper of mod.controllers.values()) {
          const cls = wrapper.metatype as (new (...args: never[]) => object) | null;
          if (!cls) continue;
          const base = String(Reflect.getMetadata(PATH_METADATA, cls) ?? '').replace(/^\/|\/$/g, '');
          for (const name of Object.getOwnPropertyNames(cls.prototype)) {
            const handler = (cls.prototype as Record<string, unknown>)[name];
            if (typeof handler !== 'function' || name === 'constructor') continue;
            const interceptors = (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) ?? []) as unknown[];
            if (!interceptors.includes(PreferWaitInterceptor)) continue;
            const sub = String(Reflect.getMetadata(PATH_METADATA, handler)).replace(/^\/|\/$/g, '');
            const verb = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod]!.toLowerCase();
            honouring.push(`${verb} /api/v1/${[base, sub].filter(Boolean).join('/')}`);
          }
        }
      }
      expect(honouring.sort()).toEqual(Object.keys(cases).sort());
    });

    it.each(Object.keys(cases))('%s: Prefer: wait=30 → 200 with the result', async (route) => {
      if (route.includes('/projects/') && !projectId) {
        const p = await request(t.server).post('/api/v1/projects').set(alice.auth).send({ name: 'prefer', model: 'primitives-obb' });
        expect(p.status, JSON.stringify(p.body)).toBe(201);
        projectId = p.body.id;
        const up = await request(t.server)
          .post(`/api/v1/projects/${projectId}/images`)
          .set(alice.auth)
          .attach('images', resolve(fixtures, DETECTOR_IMAGE));
        expect(up.status, JSON.stringify(up.body)).toBeLessThan(300);
      }
      if (route.endsWith('/start-rest')) {
        const up = await request(t.server)
          .post(`/api/v1/projects/${projectId}/images`)
          .set(alice.auth)
          .attach('images', resolve(fixtures, 'primitives/office-01-600x800.jpg'));
        expect(up.status, JSON.stringify(up.body)).toBeLessThan(300);
      }
      const c = cases[route]!;
      const res = await c.send().set('Prefer', 'wait=30');
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.headers['preference-applied']).toBe('wait=30');
      expect(res.headers['vary']).toMatch(/\bPrefer\b/);
      c.check(res.body as Record<string, unknown>);
    });
  });
});
