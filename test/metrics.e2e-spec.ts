import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { resolve } from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { METRIC, UNMATCHED_ROUTE } from '@aperture/metrics/metrics.js';
import { WorkerHealth } from '@apps/worker/worker-health.service.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { expectProblem, login, registerAndLogin, uniqueName, waitFor } from './support/http.js';
import { freePort, type Proc, startNode, stop, waitForHttp } from './support/processes.js';
import { type Exposition, parseExposition } from './support/prometheus.js';

const PROMETHEUS_TEXT = /^text\/plain; version=0\.0\.4; charset=utf-8$/;

/** GET over a real socket: status, content type and body text. */
async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

async function scrape(url: string): Promise<{ text: string; m: Exposition }> {
  const res = await get(url);
  expect(res.status, res.text).toBe(200);
  expect(res.type).toMatch(PROMETHEUS_TEXT);
  return { text: res.text, m: parseExposition(res.text) };
}

describe('GET /metrics on the API and on the worker probe port (separate processes, a real worker)', () => {
  const procs: Proc[] = [];
  let api: string;
  let worker: string;
  let auth: Record<string, string>;
  beforeAll(async () => {
    const port = await freePort();
    const wport = await freePort();
    const env = testEnv('metrics-procs', { PORT: String(port), HOST: '127.0.0.1', WORKER_CONCURRENCY: '1' });
    const a = startNode('dist/apps/api/src/main.js', env);
    procs.push(a);
    api = `http://127.0.0.1:${port}`;
    await waitForHttp(`${api}/health/ready`, 60000, a);
    const w = startNode('dist/apps/worker/src/main.js', { ...env, WORKER_HEALTH_PORT: String(wport) });
    procs.push(w);
    worker = `http://127.0.0.1:${wport}`;
    await waitForHttp(`${worker}/health/ready`, 60000, w);
    const username = uniqueName('metrics');
    const json = { 'content-type': 'application/json' };
    const reg = await fetch(`${api}/api/v1/auth/register`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ username, email: `${username}@example.com`, password: 'metrics-pass-1' }),
    });
    expect(reg.status).toBe(201);
    const tokens = (await (
      await fetch(`${api}/api/v1/auth/login`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ username, password: 'metrics-pass-1' }),
      })
    ).json()) as { access_token: string };
    auth = { authorization: `Bearer ${tokens.access_token}` };
  }, 180000);
  afterAll(async () => {
    await Promise.all(procs.splice(0).map((p) => stop(p, 'SIGKILL')));
  });

  /** POST /models/{model}/infer with a fixture image, then waits for the job to complete. */
  async function infer(model: string, file: string, fields: Record<string, string> = {}): Promise<string> {
    const form = new FormData();
    form.append('image', new Blob([readFileSync(resolve(fixtures, file))], { type: 'image/png' }), file.split('/').at(-1));
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    const res = await fetch(`${api}/api/v1/models/${model}/infer`, { method: 'POST', headers: auth, body: form });
    const body = (await res.json()) as { job_id: string };
    expect(res.status, JSON.stringify(body)).toBe(202);
    const status = await waitFor(async () => {
      const s = (await (await fetch(`${api}/api/v1/jobs/${body.job_id}/status`, { headers: auth })).json()) as { status: string };
      return ['completed', 'failed', 'cancelled'].includes(s.status) ? s.status : null;
    }, 60000);
    expect(status).toBe('completed');
    return body.job_id;
  }

  it('the API: request durations by route template and status, queue depth and job counts, process defaults', async () => {
    const route = '/api/v1/jobs/:id/status';
    const before = (await scrape(`${api}/metrics`)).m;
    const missing = randomUUID();
    for (let i = 0; i < 3; i++) expect((await get(`${api}/api/v1/jobs/${missing}/status`, auth)).status).toBe(404);
    const unmatchedPath = `/api/v1/no-such-route/${randomUUID()}`;
    expect((await get(`${api}${unmatchedPath}`)).status).toBe(404);
    expect((await get(`${api}/health/live`)).status).toBe(200);
    const jobId = await infer('primitives-obb', 'primitives/office-00-800x600.jpg');

    const { text, m } = await scrape(`${api}/metrics`);
    expect(m.types.get(METRIC.httpDuration)).toBe('histogram');
    const count = (mm: Exposition, labels: Record<string, string>): number => mm.value(`${METRIC.httpDuration}_count`, labels) ?? 0;
    const notFound = { method: 'GET', route, status_code: '404' };
    expect(count(m, notFound) - count(before, notFound)).toBe(3);
    const polled = { method: 'GET', route, status_code: '200' };
    expect(count(m, polled)).toBeGreaterThanOrEqual(1);
    expect(count(m, { method: 'POST', route: '/api/v1/models/:name/infer', status_code: '202' })).toBe(1);
    expect(count(m, { method: 'GET', route: '/health/live', status_code: '200' })).toBeGreaterThanOrEqual(1);
    expect(count(m, { method: 'GET', route: UNMATCHED_ROUTE, status_code: '404' })).toBeGreaterThanOrEqual(1);
    // Bounded labels: no id and no unmatched path ever becomes a label value.
    for (const id of [missing, jobId, unmatchedPath]) expect(text).not.toContain(id);
    for (const s of m.find(`${METRIC.httpDuration}_count`)) expect(s.labels['route']).toMatch(/^(\/[a-z0-9/:._-]*|unmatched)$/i);

    // Queue depth, read at scrape time: the job ran, nothing waits. The job's row is final a moment before the queue
    // has moved its entry out of `active`, so the scrape is repeated until the queue has caught up (or the wait fails).
    const queues = ['default', 'inference'];
    const idle = (mm: Exposition): boolean =>
      queues.every((queue) => ['waiting', 'active', 'delayed'].every((state) => mm.value(METRIC.queueJobs, { queue, state }) === 0));
    const settled = idle(m)
      ? m
      : await waitFor(async () => {
          const s = (await scrape(`${api}/metrics`)).m;
          return idle(s) && s;
        }, 10000);
    for (const queue of queues) {
      for (const state of ['waiting', 'active', 'delayed']) expect(settled.value(METRIC.queueJobs, { queue, state })).toBe(0);
      expect(settled.value(METRIC.queueUp, { queue })).toBe(1);
    }
    expect(settled.value(METRIC.jobsActive, { type: 'model.infer', status: 'queued' })).toBe(0);
    expect(settled.value(METRIC.jobsActive, { type: 'qr.batch', status: 'running' })).toBe(0);
    // Process defaults, prefixed; and none of the worker's series in the API process.
    expect(m.types.get('aperture_process_cpu_seconds_total')).toBe('counter');
    expect(m.types.get('aperture_nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(m.types.has(METRIC.jobDuration)).toBe(false);
    expect(m.types.has(METRIC.modelInferences)).toBe(false);
  });

  it('the worker: queue wait and duration per job type and outcome, model inferences and phases, embedding cache', async () => {
    const before = (await scrape(`${worker}/metrics`)).m;
    const truth = JSON.parse(readFileSync(resolve(fixtures, 'sam/ground-truth.json'), 'utf8')) as {
      images: { file: string; shapes: { point: [number, number] }[] }[];
    };
    const img = truth.images[2]!;
    const click = (p: [number, number]) => ({ points: JSON.stringify([{ x: p[0], y: p[1], label: 1 }]) });
    await infer('sam-tiny', img.file, click(img.shapes[0]!.point));
    await infer('sam-tiny', img.file, click(img.shapes[1]!.point));
    await infer('primitives-obb', 'primitives/office-01-600x800.jpg');

    const { m } = await scrape(`${worker}/metrics`);
    const moved = (name: string, labels: Record<string, string>): number =>
      (m.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0);
    const type = { type: 'model.infer' };
    expect(moved(`${METRIC.jobDuration}_count`, { ...type, outcome: 'completed' })).toBe(3);
    expect(moved(`${METRIC.jobQueueWait}_count`, type)).toBe(3);
    expect(m.value(`${METRIC.jobDuration}_count`, { ...type, outcome: 'failed' })).toBeUndefined();
    expect(moved(METRIC.modelInferences, { model: 'sam-tiny', outcome: 'success' })).toBe(2);
    expect(moved(METRIC.modelInferences, { model: 'primitives-obb', outcome: 'success' })).toBe(1);
    for (const phase of ['queue', 'decode', 'preprocess', 'run', 'postprocess']) {
      expect(moved(`${METRIC.modelPhase}_count`, { model: 'primitives-obb', phase }), phase).toBe(1);
      expect(m.value(`${METRIC.modelPhase}_sum`, { model: 'primitives-obb', phase }), phase).toBeGreaterThanOrEqual(0);
    }
    expect(m.value(`${METRIC.modelPhase}_sum`, { model: 'primitives-obb', phase: 'run' })).toBeGreaterThan(0);
    // The second prompt on the same image reused the first one's embedding.
    expect(moved(METRIC.embeddingCacheMisses, { model: 'sam-tiny' })).toBe(1);
    expect(moved(METRIC.embeddingCacheHits, { model: 'sam-tiny' })).toBe(1);
    expect(m.value(METRIC.embeddingCacheBytes, { model: 'sam-tiny' })).toBeGreaterThan(0);
    expect(m.types.get(METRIC.embeddingCacheHits)).toBe('counter');
    // The worker reports queue depth too, and its process defaults; it serves no HTTP routes to time.
    expect(m.value(METRIC.queueJobs, { queue: 'inference', state: 'waiting' })).toBe(0);
    expect(m.types.get('aperture_process_resident_memory_bytes')).toBe('gauge');
    expect(m.types.has(METRIC.httpDuration)).toBe(false);
  });
});

describe('METRICS: who may read /metrics', () => {
  const admin = { name: uniqueName('admin'), password: 'admin-password-1' };
  const apps: TestApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });

  it('admin: 401 without credentials, 403 for a user, 200 for an admin', async () => {
    const t = await createTestApp(
      testEnv('metrics-admin', { METRICS: 'admin', ADMIN_USERNAME: admin.name, ADMIN_PASSWORD: admin.password }),
    );
    apps.push(t);
    const user = await registerAndLogin(t.server);
    const root = await login(t.server, admin.name, admin.password);
    expectProblem(await request(t.server).get('/metrics'), 401, 'UNAUTHORIZED');
    expectProblem(await request(t.server).get('/metrics').set(user.auth), 403, 'FORBIDDEN');
    const ok = await request(t.server).get('/metrics').set(root.auth);
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toMatch(PROMETHEUS_TEXT);
    expect(parseExposition(ok.text).types.get(METRIC.httpDuration)).toBe('histogram');
    // Only the probes and the documented routes live outside /api/v1.
    expectProblem(await request(t.server).get('/api/v1/metrics').set(root.auth), 404, 'NOT_FOUND');
  });

  it('queue depth and job counts are read at scrape time (an API with no worker: the job waits)', async () => {
    const t = await createTestApp(testEnv('metrics-depth', { METRICS: 'public' }));
    apps.push(t);
    const user = await registerAndLogin(t.server);
    const depth = async () => parseExposition((await request(t.server).get('/metrics')).text);
    const before = await depth();
    expect(before.value(METRIC.queueJobs, { queue: 'default', state: 'waiting' })).toBe(0);
    for (let i = 0; i < 2; i++) expect((await request(t.server).post('/api/v1/qr/batches').set(user.auth).send({ n: 2 })).status).toBe(202);
    await new Promise((r) => setTimeout(r, 600)); // past the snapshot a scrape shares with the next one
    const after = await depth();
    expect(after.value(METRIC.queueJobs, { queue: 'default', state: 'waiting' })).toBe(2);
    expect(after.value(METRIC.queueJobs, { queue: 'inference', state: 'waiting' })).toBe(0);
    expect(after.value(METRIC.jobsActive, { type: 'qr.batch', status: 'queued' })).toBe(2);
    expect(after.value(METRIC.jobsActive, { type: 'qr.batch', status: 'running' })).toBe(0);
  });

  it('off: 404 on the API and on the worker probe port (single-process mode)', async () => {
    const t = await createTestApp(testEnv('metrics-off', { METRICS: 'off' }), { worker: true });
    apps.push(t);
    expectProblem(await request(t.server).get('/metrics'), 404, 'NOT_FOUND');
    const health = t.app.get(WorkerHealth);
    const port = await health.listen(0, '127.0.0.1');
    expect((await get(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    expect((await get(`http://127.0.0.1:${port}/health/live`)).status).toBe(200);
  });

  it('single process (npm start): one /metrics with both sides, on the API and the probe port alike', async () => {
    const t = await createTestApp(testEnv('metrics-single', { METRICS: 'public' }), { worker: true });
    apps.push(t);
    const user = await registerAndLogin(t.server);
    const created = await request(t.server).post('/api/v1/qr/batches').set(user.auth).send({ n: 4 });
    expect(created.status).toBe(202);
    await waitFor(async () => {
      const b = (await request(t.server).get(`/api/v1/qr/batches/${created.body.id}`).set(user.auth)).body;
      return b.status === 'completed';
    }, 30000);
    const res = await request(t.server).get('/metrics');
    expect(res.status).toBe(200);
    const m = parseExposition(res.text);
    expect(m.value(`${METRIC.jobDuration}_count`, { type: 'qr.batch', outcome: 'completed' })).toBe(1);
    expect(m.value(`${METRIC.httpDuration}_count`, { method: 'POST', route: '/api/v1/qr/batches', status_code: '202' })).toBe(1);
    expect(m.value(METRIC.queueJobs, { queue: 'default', state: 'waiting' })).toBe(0);
    // The probe port serves the same registry.
    const port = await t.app.get(WorkerHealth).listen(0, '127.0.0.1');
    const probe = await new Promise<string>((done, fail) => {
      httpRequest(`http://127.0.0.1:${port}/metrics`, (r) => {
        let body = '';
        r.on('data', (d: Buffer) => (body += d.toString()));
        r.on('end', () => done(body));
      })
        .on('error', fail)
        .end();
    });
    expect(parseExposition(probe).value(`${METRIC.jobDuration}_count`, { type: 'qr.batch', outcome: 'completed' })).toBe(1);
  });
});
