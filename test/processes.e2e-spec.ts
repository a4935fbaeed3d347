import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { QR_PER_PAGE } from '@aperture/qr/qr-layout.js';
import { testEnv } from './support/env.js';
import { waitFor } from './support/http.js';
import { readQrPdf } from './support/pdf.js';
import { freePort, type Proc, startNode, stop, waitForHttp } from './support/processes.js';

const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => stop(p, 'SIGKILL')));
});

/** A tiny HTTP client for a server in another process (real sockets, no supertest). */
function client(base: string) {
  let token = '';
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const type = res.headers.get('content-type') ?? '';
    const data = type.includes('json') ? await res.json() : Buffer.from(await res.arrayBuffer());
    return { status: res.status, type, data };
  };
  return {
    call,
    async signIn(username: string, password: string) {
      const reg = await call('POST', '/api/v1/auth/register', { username, email: `${username}@example.com`, password });
      expect(reg.status, JSON.stringify(reg.data)).toBe(201);
      const login = await call('POST', '/api/v1/auth/login', { username, password });
      expect(login.status).toBe(200);
      token = (login.data as { access_token: string }).access_token;
    },
  };
}

describe('production processes', () => {
  it('single-process mode (npm start) on the embedded SQLite default: register → login → QR batch → progress → PDF', async () => {
    const port = await freePort();
    const env = testEnv('standalone', { PORT: String(port), HOST: '127.0.0.1', WORKER_HEALTH_PORT: '0' });
    // DATABASE_URL empty: the embedded default, a SQLite file under DATA_DIR.
    const p = startNode('dist/apps/standalone/src/main.js', { ...env, DATABASE_URL: '' });
    procs.push(p);
    await waitForHttp(`http://127.0.0.1:${port}/health/ready`, 30000, p);
    const api = client(`http://127.0.0.1:${port}`);
    await api.signIn('standalone_user', 'standalone-pass-1');
    const n = 30;
    const created = await api.call('POST', '/api/v1/qr/batches', { n });
    expect(created.status).toBe(202);
    const id = (created.data as { id: string }).id;
    const progress: number[] = [];
    await waitFor(
      async () => {
        const b = await api.call('GET', `/api/v1/qr/batches/${id}`);
        const d = b.data as { status: string; progress: number };
        progress.push(d.progress);
        return d.status === 'completed';
      },
      30000,
      50,
    );
    expect(progress.at(-1)).toBe(100);
    const pdf = await api.call('GET', `/api/v1/qr/batches/${id}/pdf`);
    expect(pdf.status).toBe(200);
    expect(pdf.type).toBe('application/pdf');
    const doc = readQrPdf(pdf.data as Buffer);
    expect(doc.pages).toBe(Math.ceil(n / QR_PER_PAGE));
    expect(doc.decodeCell(0, 0)).toMatch(/^https:\/\/aperture\.example\/q\/[0-9A-Z]{26}$/);
    expect(existsSync(join(env.DATA_DIR!, 'aperture.sqlite'))).toBe(true);
    // Graceful stop.
    expect(await stop(p)).toBe(0);
  });

  type JobView = { status: string; attempts: number; artifacts: { name: string; url: string }[] };

  /**
   * API + one worker on short leases, a signed-in user, and a 1000-code QR batch the worker is rendering (progress
   * above 0) when this returns. `secondWorker()` starts another worker on the same queues.
   */
  async function batchBeingRendered(name: string, extraEnv: Record<string, string> = {}) {
    const port = await freePort();
    const env = testEnv(name, {
      PORT: String(port),
      HOST: '127.0.0.1',
      JOB_LOCK_DURATION_MS: '3000',
      JOB_STALLED_INTERVAL_MS: '1000',
      WORKER_CONCURRENCY: '1',
      ...extraEnv,
    });
    const startWorker = async (wait: boolean): Promise<Proc> => {
      const wport = await freePort();
      const w = startNode('dist/apps/worker/src/main.js', { ...env, WORKER_HEALTH_PORT: String(wport) });
      procs.push(w);
      if (wait) await waitForHttp(`http://127.0.0.1:${wport}/health/ready`, 30000, w);
      return w;
    };
    const api = startNode('dist/apps/api/src/main.js', env);
    procs.push(api);
    await waitForHttp(`http://127.0.0.1:${port}/health/ready`, 30000, api);
    const w1 = await startWorker(true);
    const http = client(`http://127.0.0.1:${port}`);
    await http.signIn(`${name.replace(/-/g, '_')}_user`, `${name}-pass-1`);
    const created = await http.call('POST', '/api/v1/qr/batches', { n: 1000 });
    const { id, job_id: jobId } = created.data as { id: string; job_id: string };
    await waitFor(
      async () => {
        const d = (await http.call('GET', `/api/v1/qr/batches/${id}`)).data as { status: string; progress: number };
        return d.status === 'running' && d.progress > 0;
      },
      30000,
      20,
    );
    const job = async (): Promise<JobView> => (await http.call('GET', `/api/v1/jobs/${jobId}`)).data as JobView;
    const completed = (): Promise<JobView> => waitFor(async () => ((await job()).status === 'completed' ? job() : null), 60000, 200);
    /** The batch was made exactly once: 1000 codes, and one artifact row, written by the given attempt. */
    const madeOnce = async (attempt: number): Promise<void> => {
      const db = new pg.Client({ connectionString: env.DATABASE_URL });
      await db.connect();
      try {
        const codes = await db.query('select count(*)::int as n from qr_codes where batch_id = $1', [id]);
        expect(codes.rows[0].n).toBe(1000);
        const arts = await db.query('select attempt from job_artifacts where job_id = $1', [jobId]);
        expect(arts.rows).toEqual([{ attempt }]);
      } finally {
        await db.end();
      }
    };
    return { api, w1, http, id, job, completed, madeOnce, secondWorker: () => startWorker(false) };
  }

  it('a worker killed mid-job is replaced and the job completes exactly once', async () => {
    const { api, w1, http, id, job, completed, madeOnce, secondWorker } = await batchBeingRendered('killed-worker');
    // Kill the worker (no goodbye: SIGKILL) while it renders.
    await stop(w1, 'SIGKILL');
    expect((await job()).status).toBe('running'); // nobody finished it

    const w2 = await secondWorker();
    const done = await completed();
    expect(done.attempts).toBe(2);
    expect(done.artifacts).toHaveLength(1);
    const pdf = await http.call('GET', `/api/v1/qr/batches/${id}/pdf`);
    expect(readQrPdf(pdf.data as Buffer).pages).toBe(50);

    // Exactly once, and the job is not picked up again.
    await madeOnce(2);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await job()).toMatchObject({ attempts: 2, status: 'completed' });
    expect(await stop(w2)).toBe(0);
    expect(await stop(api)).toBe(0);
  });

  it('a worker that stalls mid-job (SIGSTOP) is taken over; when it resumes it destroys nothing of the completed job', async () => {
    const { api, w1, http, id, job, completed, madeOnce, secondWorker } = await batchBeingRendered('stalled-worker', {
      JOB_SWEEP_INTERVAL_MS: '1000',
    });
    // The first worker freezes mid-render (its connections stay open, it just stops answering).
    w1.child.kill('SIGSTOP');
    const w2 = await secondWorker();
    const done = await completed();
    expect(done.attempts).toBe(2);
    expect(done.artifacts).toHaveLength(1);

    // The frozen worker wakes up and carries on with its stale attempt for a while, then dies without a goodbye.
    w1.child.kill('SIGCONT');
    await new Promise((r) => setTimeout(r, 4000));
    await stop(w1, 'SIGKILL');

    const after = await job();
    expect(after).toMatchObject({ status: 'completed', attempts: 2 });
    expect(after.artifacts.map((a) => a.url)).toEqual(done.artifacts.map((a) => a.url));
    for (const a of after.artifacts) {
      const file = await http.call('GET', a.url);
      expect(file.status, `${a.name} at ${a.url}`).toBe(200);
      expect(readQrPdf(file.data as Buffer).pages).toBe(50);
    }
    const pdf = await http.call('GET', `/api/v1/qr/batches/${id}/pdf`);
    expect(pdf.status).toBe(200);
    expect(readQrPdf(pdf.data as Buffer).pages).toBe(50);

    // Exactly once: the one artifact row is attempt 2's, and no further attempt follows.
    await madeOnce(2);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await job()).toMatchObject({ status: 'completed', attempts: 2 });
    expect(await stop(w2)).toBe(0);
    expect(await stop(api)).toBe(0);
  });

  it('a worker asked to stop (SIGTERM) finishes its running job first, then exits 0', async () => {
    const port = await freePort();
    const wport = await freePort();
    const env = testEnv('drain', { PORT: String(port), HOST: '127.0.0.1', WORKER_CONCURRENCY: '1' });
    const api = startNode('dist/apps/api/src/main.js', env);
    procs.push(api);
    await waitForHttp(`http://127.0.0.1:${port}/health/ready`, 30000, api);
    const worker = startNode('dist/apps/worker/src/main.js', { ...env, WORKER_HEALTH_PORT: String(wport) });
    procs.push(worker);
    await waitForHttp(`http://127.0.0.1:${wport}/health/ready`, 30000, worker);
    const http = client(`http://127.0.0.1:${port}`);
    await http.signIn('drain_user', 'drain-user-pass-1');
    const { id, job_id: jobId } = (await http.call('POST', '/api/v1/qr/batches', { n: 1000 })).data as { id: string; job_id: string };
    await waitFor(
      async () => ((await http.call('GET', `/api/v1/qr/batches/${id}`)).data as { status: string }).status === 'running',
      30000,
      20,
    );
    expect(await stop(worker, 'SIGTERM')).toBe(0);
    const job = (await http.call('GET', `/api/v1/jobs/${jobId}`)).data as { status: string; attempts: number };
    expect(job).toMatchObject({ status: 'completed', attempts: 1 });
    expect(await stop(api)).toBe(0);
  });

  it('two worker processes: preload gates readiness, admin load/unload reaches both, each reports state, unload frees memory', async () => {
    const port = await freePort();
    const wports = [await freePort(), await freePort()];
    const env = testEnv('two-workers', {
      PORT: String(port),
      HOST: '127.0.0.1',
      ADMIN_USERNAME: 'two_admin',
      ADMIN_PASSWORD: 'admin-password-1',
      MODELS_PRELOAD: 'scene-gru',
    });
    const api = startNode('dist/apps/api/src/main.js', env);
    procs.push(api);
    await waitForHttp(`http://127.0.0.1:${port}/health/ready`, 30000, api);
    const workers = wports.map((wp) => startNode('dist/apps/worker/src/main.js', { ...env, WORKER_HEALTH_PORT: String(wp) }));
    procs.push(...workers);
    for (const [i, wp] of wports.entries()) {
      await waitForHttp(`http://127.0.0.1:${wp}/health/ready`, 30000, workers[i]);
      const ready = (await (await fetch(`http://127.0.0.1:${wp}/health/ready`)).json()) as { details: Record<string, { status: string }> };
      expect(ready.details['models']).toEqual({ status: 'up' });
    }
    const http = client(`http://127.0.0.1:${port}`);
    const login = await http.call('POST', '/api/v1/auth/login', { username: 'two_admin', password: 'admin-password-1' });
    const auth = { authorization: `Bearer ${(login.data as { access_token: string }).access_token}` };
    const call = async (method: string, path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: auth });
      return {
        status: res.status,
        data: (await res.json()) as { state: string; workers: { state: string; worker_id: string; done?: boolean; rss_mb: number }[] },
      };
    };
    // The preloaded model is loaded on both.
    await waitFor(async () => (await call('GET', '/api/v1/models/scene-gru')).data.workers.length === 2);
    expect((await call('GET', '/api/v1/models/scene-gru')).data.state).toBe('loaded');

    // sam-tiny's warm-up run (MODELS_WARMUP, on by default) allocates the encoder's working memory at 1024x1024 on
    // each worker; unloading releases the sessions and that memory, and each worker's reported RSS drops.
    const load = await call('POST', '/api/v1/models/sam-tiny/load?wait_ms=30000');
    expect(load.status, JSON.stringify(load.data)).toBe(200);
    expect(load.data.workers).toHaveLength(2);
    expect(new Set(load.data.workers.map((w) => w.worker_id)).size).toBe(2);
    expect(load.data.workers.every((w) => w.state === 'loaded' && w.done)).toBe(true);
    expect((await call('GET', '/api/v1/models/sam-tiny')).data.state).toBe('loaded');
    const loadedRss = new Map(load.data.workers.map((w) => [w.worker_id, w.rss_mb]));

    const unload = await call('POST', '/api/v1/models/sam-tiny/unload?wait_ms=30000');
    expect(unload.status).toBe(200);
    expect(unload.data.workers.every((w) => w.state === 'available' && w.done)).toBe(true);
    for (const w of unload.data.workers) {
      const before = loadedRss.get(w.worker_id)!;
      console.log(`[metrics] worker ${w.worker_id}: RSS ${before} MB with sam-tiny loaded and warmed, ${w.rss_mb} MB after unload`);
      expect(w.rss_mb, `worker ${w.worker_id} RSS after unload`).toBeLessThan(before - 20);
    }

    // A worker that stops leaves the control plane at once.
    expect(await stop(workers[1]!)).toBe(0);
    expect((await call('GET', '/api/v1/models/sam-tiny')).data.workers).toHaveLength(1);
  });

  it('refuses to start with a bad configuration and lists every problem', async () => {
    const p = startNode('dist/apps/api/src/main.js', {
      NODE_ENV: 'production',
      PORT: 'eighty',
      DATABASE_URL: 'mysql://x',
      JWT_SECRET: '',
      RATE_LIMIT_PER_MINUTE: '-1',
    });
    procs.push(p);
    const code = await p.exited;
    expect(code).toBe(78);
    const out = p.output();
    for (const s of [
      'PORT must be an integer',
      'DATABASE_URL must start with',
      'JWT_SECRET is required in production',
      'RATE_LIMIT_PER_MINUTE must be between',
    ]) {
      expect(out).toContain(s);
    }
  });
});
