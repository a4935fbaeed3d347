import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { boothDatabase, photo, STATION_PASSWORD } from './support/booth.js';
import { testEnv } from './support/env.js';
import { waitFor } from './support/http.js';
import { freePort, type Proc, startNode, stop, waitForHttp } from './support/processes.js';

const procs: Proc[] = [];
const dbs: Awaited<ReturnType<typeof boothDatabase>>[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => stop(p, 'SIGKILL')));
});
afterAll(async () => {
  for (const db of dbs) await db.drop();
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Everything durable about the booth, read straight from PostgreSQL. */
async function snapshot(databaseUrl: string) {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const subs = await db.query(
      `select s.id, s.job_id, s.first_name, s.animal_name, s.decision, s.choice, s.review_round, s.xray_key,
              j.status, j.attempts
         from booth_submissions s join jobs j on j.id = s.job_id order by s.created_at, s.id`,
    );
    const arts = await db.query(
      `select a.job_id, a.name, a.attempt, a.storage_key from job_artifacts a join booth_submissions s on s.job_id = a.job_id
        order by a.job_id, a.name`,
    );
    const carousel = await db.query('select id, submission_id, xray_key, original_key from booth_carousel order by created_at, id');
    return {
      subs: subs.rows as {
        id: string;
        job_id: string;
        first_name: string;
        animal_name: string;
        decision: string | null;
        choice: number | null;
        review_round: number;
        xray_key: string | null;
        status: string;
        attempts: number;
      }[],
      arts: arts.rows as { job_id: string; name: string; attempt: number; storage_key: string }[],
      carousel: carousel.rows as { id: string; submission_id: string; xray_key: string; original_key: string }[],
    };
  } finally {
    await db.end();
  }
}

describe('the booth survives SIGKILL of the API and the worker', () => {
  it('20 photos, API and worker killed mid-way, restarted: submissions, options, decisions, carousel intact; jobs done once', async () => {
    const port = await freePort();
    const db = await boothDatabase('booth_restart');
    dbs.push(db);
    const env = testEnv('booth-restart', {
      DATABASE_URL: db.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      STATION_PASSWORD,
      BOOTH_PROCESSING: 'internal',
      JOB_LOCK_DURATION_MS: '3000',
      JOB_STALLED_INTERVAL_MS: '1000',
      JOB_SWEEP_INTERVAL_MS: '1000',
      WORKER_CONCURRENCY: '1',
    });
    const base = `http://127.0.0.1:${port}`;
    const storage = join(env.DATA_DIR!, 'storage');
    const startApi = async () => {
      const api = startNode('dist/apps/api/src/main.js', env);
      procs.push(api);
      await waitForHttp(`${base}/health/ready`, 30000, api);
      return api;
    };
    const startWorker = async () => {
      const w = startNode('dist/apps/worker/src/main.js', { ...env, WORKER_HEALTH_PORT: String(await freePort()) });
      procs.push(w);
      return w;
    };
    let api = await startApi();
    let worker = await startWorker();

    const token = (await (
      await fetch(`${base}/api/v1/auth/token`, { method: 'POST', body: new URLSearchParams({ password: STATION_PASSWORD }) })
    ).json()) as {
      access_token: string;
    };
    const auth = { authorization: `Bearer ${token.access_token}` };
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const type = res.headers.get('content-type') ?? '';
      return {
        status: res.status,
        data: type.includes('json') ? ((await res.json()) as Record<string, unknown>) : Buffer.from(await res.arrayBuffer()),
      };
    };
    const batch = await call('POST', '/api/v1/qr/batches', { n: 20 });
    expect(batch.status).toBe(202);
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    const codes = (
      await client.query('select code from qr_codes where batch_id = $1 order by position', [(batch.data as { id: string }).id])
    ).rows.map((r: { code: string }) => r.code as string);
    await client.end();

    // 20 photos of 1920×1080: slow enough for the worker that the kill lands mid-way.
    const big = photo('bench-1920x1080.jpg');
    const jobIds: string[] = [];
    for (const [i, code] of codes.entries()) {
      const form = new FormData();
      form.append('first_name', `Owner${i}`);
      form.append('last_name', 'Restart');
      form.append('animal_name', `Pet${i}`);
      form.append('qr_content', code);
      form.append('file', new Blob([new Uint8Array(i % 2 ? big : photo())]), i % 2 ? 'pet.jpg' : 'pet.png');
      const res = await fetch(`${base}/api/v1/booth/submissions`, { method: 'POST', headers: auth, body: form });
      expect(res.status).toBe(201);
      jobIds.push(((await res.json()) as { job_id: string }).job_id);
    }

    // A few come back for review: confirm two (carousel), retry one, cancel one; then kill both processes at once.
    type Reviews = { results: Record<string, string[]> };
    const ready = await waitFor(
      async () => {
        const r = (await call('GET', '/api/v1/reviews?page_size=100')).data as Reviews;
        return Object.keys(r.results).length >= 4 ? Object.keys(r.results) : null;
      },
      120000,
      100,
    );
    const [c1, c2, retried, cancelled] = ready as [string, string, string, string];
    expect((await call('POST', `/api/v1/jobs/${c1}/review`, { decision: 'confirm', choice: 0 })).status).toBe(200);
    expect((await call('POST', `/api/v1/jobs/${c2}/review`, { decision: 'confirm', choice: 2 })).status).toBe(200);
    expect((await call('POST', `/api/v1/jobs/${retried}/review`, { decision: 'retry' })).status).toBe(200);
    expect((await call('POST', `/api/v1/jobs/${cancelled}/review`, { decision: 'cancel' })).status).toBe(200);
    await Promise.all([stop(api, 'SIGKILL'), stop(worker, 'SIGKILL')]);

    const before = await snapshot(env.DATABASE_URL!);
    expect(before.subs).toHaveLength(20);
    const unfinished = before.subs.filter((s) => s.status !== 'completed');
    expect(unfinished.length).toBeGreaterThan(0); // the kill landed mid-way
    expect(before.carousel).toHaveLength(2);
    const optionHashes = new Map<string, string>();
    for (const a of before.arts) {
      optionHashes.set(`${a.job_id}/${a.name}`, sha(readFileSync(join(storage, a.storage_key))));
    }

    // Restart both; every job finishes.
    api = await startApi();
    worker = await startWorker();
    await waitFor(async () => (await snapshot(env.DATABASE_URL!)).subs.every((s) => s.status === 'completed'), 180000, 250);
    const after = await snapshot(env.DATABASE_URL!);

    // Every submission and its review state, as before.
    const durable = (rows: typeof after.subs) => rows.map(({ status: _s, attempts: _a, ...kept }) => kept);
    expect(durable(after.subs)).toEqual(durable(before.subs));
    const byJob = new Map(after.subs.map((s) => [s.job_id, s]));
    expect(byJob.get(c1)).toMatchObject({ decision: 'confirmed', choice: 0 });
    expect(byJob.get(c2)).toMatchObject({ decision: 'confirmed', choice: 2 });
    expect(byJob.get(retried)).toMatchObject({ decision: null, review_round: 1 });
    expect(byJob.get(cancelled)).toMatchObject({ decision: 'cancelled' });

    // Every job finished exactly once: completed, with one set of 3 options, all written by its last attempt.
    for (const s of after.subs) {
      const arts = after.arts.filter((a) => a.job_id === s.job_id);
      if (s.decision === 'cancelled') {
        expect(arts).toEqual([]);
        continue;
      }
      expect(
        arts.map((a) => a.name),
        s.job_id,
      ).toEqual(['option-0', 'option-1', 'option-2']);
      expect(new Set(arts.map((a) => a.attempt)), s.job_id).toEqual(new Set([s.attempts]));
      for (const a of arts) expect(existsSync(join(storage, a.storage_key)), a.storage_key).toBe(true);
    }
    // The options of jobs completed before the kill are the same files with the same bytes (nothing was redone). A job
    // killed while storing its options may have left some of its attempt's files: its next attempt replaced them.
    const completedBefore = new Set(before.subs.filter((x) => x.status === 'completed').map((x) => x.job_id));
    for (const a of before.arts.filter((x) => completedBefore.has(x.job_id))) {
      const now = after.arts.find((x) => x.job_id === a.job_id && x.name === a.name);
      expect(now, `${a.job_id}/${a.name}`).toEqual(a);
      expect(sha(readFileSync(join(storage, a.storage_key)))).toBe(optionHashes.get(`${a.job_id}/${a.name}`));
    }

    // The carousel entries and their files, intact; the review queue holds every undecided job.
    expect(after.carousel).toEqual(before.carousel);
    const carousel = await call('GET', '/api/v1/carousel');
    expect(carousel.data).toEqual(['/api/v1/carousel/0', '/api/v1/carousel/1']);
    for (const i of [0, 1]) expect((await call('GET', `/api/v1/carousel/${i}`)).status).toBe(200);
    const reviews = (await call('GET', '/api/v1/reviews?page_size=100')).data as Reviews;
    expect(Object.keys(reviews.results).sort()).toEqual(
      after.subs
        .filter((s) => s.decision === null)
        .map((s) => s.job_id)
        .sort(),
    );
    for (const urls of Object.values(reviews.results)) {
      expect(urls).toHaveLength(3);
      expect((await call('GET', urls[2]!)).status).toBe(200);
    }
    expect(await stop(worker)).toBe(0);
    expect(await stop(api)).toBe(0);
  });
});
