/**
 * The service-level targets of `npm run bench`, each printed with its measured value and `met` / `not met`. Ratios
 * compare figures measured in the same run on the same machine:
 * - the shipped detector on a 1920x1080 JPEG, one request at a time, in one round trip (`Prefer: wait`): end-to-end
 *   latency against the in-process decode + pre-processing + run + post-processing of the same image (≤ 1.5×);
 * - four requests at a time through HTTP + queue + worker: images/s against the in-process pipeline at the same
 *   concurrency (≥ 80%);
 * - authenticated `GET /jobs/{id}/status` at a fixed 300 requests/s: p99 (≤ 25 ms), and the most it answers per
 *   second on one API process (≥ 2,000), with `GET /health/live` beside it for scale;
 * - the API process's RSS after 10,000 mixed requests against its RSS after the first 100 (≤ 1.3×).
 * Without `Prefer: wait` support (an older server answers 202) the round trip falls back to POST + GET …/result, so
 * the same script measures a before and an after.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { ImageSource } from '@aperture/imaging/decode.js';
import { SessionHost } from '@aperture/inference/session-host.js';
import { DetectionPipeline } from '@aperture/models/detection.pipeline.js';
import { loadManifest } from '@aperture/models/manifest.js';
import { ModelRegistry } from '@aperture/models/model-registry.js';
import { ModelRunner } from '@aperture/models/model-runner.js';
import { benchStatus, statCpuMs } from './bench-status.js';

export interface TargetContext {
  root: string;
  base: string;
  token: string;
  apiPid: number;
  /** The worker process, whose CPU time per image the detector rows report beside the API's. */
  workerPid?: number;
  /** The worker process's WORKER_CONCURRENCY, which the in-process comparison uses too. */
  workerConcurrency: number;
  /** The worker's INFERENCE_THREADS (session threads). */
  sessionThreads: number;
}

export interface TargetRow {
  target: string;
  measured: string;
  goal: string;
  verdict: 'met' | 'not met' | 'info';
}

const DETECTOR = 'primitives-obb';
/** A plain Python service (FastAPI, two uvicorn workers, OpenCV-DNN, no database or queue) on this machine kind. */
const PYTHON_SERVICE_IMAGES_PER_S = 25;

const r1 = (v: number): number => Math.round(v * 10) / 10;
const r2 = (v: number): number => Math.round(v * 100) / 100;
const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** A process's resident set, in MB (Linux). */
export const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** A process's CPU time so far (user + system), in ms (Linux: /proc/{pid}/stat, in clock ticks of 10 ms). */
const cpuMs = (pid: number): number => statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8'));

/** A process's CPU time so far per thread name (Linux: /proc/{pid}/task/{tid}/stat), in ms. */
const cpuByThread = (pid: number): Map<string, number> => {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/[0-9]+$/, '#');
    out.set(name, (out.get(name) ?? 0) + statCpuMs(stat));
  }
  return out;
};

/** Where a process's CPU time went between two cpuByThread readings, per image: "name ms, …", largest first. */
const threadSplit = (before: Map<string, number>, after: Map<string, number>, n: number): string =>
  [...after]
    .map(([name, ms]) => [name, (ms - (before.get(name) ?? 0)) / n] as const)
    .filter(([, ms]) => ms >= 0.5)
    .sort((a, b) => b[1] - a[1])
    .map(([name, ms]) => `${name} ${r1(ms)}`)
    .join(', ');

/** Runs `n` calls of `one` with `concurrency` in flight; answers the wall time and each call's latency. */
async function pool(n: number, concurrency: number, one: (i: number) => Promise<void>): Promise<{ wallMs: number; latencies: number[] }> {
  let next = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        await one(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { wallMs: performance.now() - t0, latencies };
}

/**
 * The detector in this process, the way the worker runs it for POST /models/{name}/infer: the JPEG's header read, its
 * pixels decoded straight to the letterboxed size, run in a session worker thread and post-processed.
 */
async function inProcessDetector(ctx: TargetContext, jpeg: Buffer): Promise<{ c1Ms: number; cNImagesPerS: number; c1CpuMs: number }> {
  const host = new SessionHost({ poolSize: ctx.sessionThreads });
  const registry = new ModelRegistry(loadManifest(), host, { dir: resolve(ctx.root, 'models'), sessionOptions: { intraOpNumThreads: 0 } });
  try {
    const detection = new DetectionPipeline(new ModelRunner(registry));
    await registry.load(DETECTOR);
    const once = async (): Promise<void> => {
      await detection.detect(DETECTOR, await ImageSource.open(jpeg), {});
    };
    for (let i = 0; i < 5; i++) await once(); // warm-up
    const cpu0 = process.cpuUsage();
    const c1 = await pool(40, 1, once);
    const cpu = process.cpuUsage(cpu0);
    const cN = await pool(80, ctx.workerConcurrency, once);
    return { c1Ms: median(c1.latencies), cNImagesPerS: (80 / cN.wallMs) * 1000, c1CpuMs: (cpu.user + cpu.system) / 1000 / 40 };
  } finally {
    await registry.close();
    await host.close();
  }
}

/** One detector request over HTTP: `Prefer: wait=30`, or POST then GET …/result?wait_ms= when the server answers 202. */
async function detectOverHttp(ctx: TargetContext, jpeg: Buffer): Promise<{ roundTrips: number }> {
  const form = new FormData();
  form.append('image', new Blob([jpeg], { type: 'image/jpeg' }), 'bench.jpg');
  const auth = { authorization: `Bearer ${ctx.token}` };
  const res = await fetch(`${ctx.base}/api/v1/models/${DETECTOR}/infer`, {
    method: 'POST',
    headers: { ...auth, prefer: 'wait=30' },
    body: form,
  });
  if (res.status === 200) {
    await res.arrayBuffer();
    return { roundTrips: 1 };
  }
  if (res.status !== 202) throw new Error(`infer answered ${res.status}: ${await res.text()}`);
  const { job_id: id } = (await res.json()) as { job_id: string };
  for (let trips = 2; ; trips++) {
    const r = await fetch(`${ctx.base}/api/v1/jobs/${id}/result?wait_ms=30000`, { headers: auth });
    const body = (await r.json()) as { status?: string };
    if (r.status !== 200) throw new Error(`result answered ${r.status}: ${JSON.stringify(body)}`);
    if (body.status === 'completed') return { roundTrips: trips };
    if (body.status === 'failed' || body.status === 'cancelled') throw new Error(`infer job ${body.status}`);
  }
}

/** A mix of what clients do: status polls, lists, profile reads, uploads, inference, bad input, 404s, sign-ins. */
async function mixedRequests(
  ctx: TargetContext,
  n: number,
  jobId: string,
  imageId: string,
  small: Buffer,
  credentials: { username: string; password: string },
): Promise<void> {
  const auth = { authorization: `Bearer ${ctx.token}` };
  const get = async (path: string): Promise<void> => {
    await (await fetch(ctx.base + path, { headers: auth })).arrayBuffer();
  };
  const post = async (path: string, body: FormData | string, headers: Record<string, string> = {}): Promise<void> => {
    await (await fetch(ctx.base + path, { method: 'POST', headers: { ...auth, ...headers }, body })).arrayBuffer();
  };
  const upload = (field: string): FormData => {
    const f = new FormData();
    f.append(field, new Blob([small], { type: 'image/jpeg' }), 'mixed.jpg');
    return f;
  };
  await pool(n, 8, async (i) => {
    const k = i % 100;
    if (k < 55) return get(`/api/v1/jobs/${jobId}/status`);
    if (k < 63) return get('/api/v1/jobs?limit=20');
    if (k < 71) return get('/api/v1/auth/me');
    if (k < 76) return get(`/api/v1/images/${imageId}`);
    if (k < 80) return get('/api/v1/images?limit=20');
    if (k < 85) return post('/api/v1/images', upload('images'));
    if (k < 87) return post(`/api/v1/models/${DETECTOR}/infer`, upload('image'), { prefer: 'wait=30' });
    if (k < 92) return post('/api/v1/tasks', JSON.stringify({ type: 'nonsense' }), { 'content-type': 'application/json' });
    if (k < 97) return get('/api/v1/jobs/00000000-0000-4000-8000-000000000000/status');
    if (k < 98) return post('/api/v1/auth/login', JSON.stringify(credentials), { 'content-type': 'application/json' });
    return get('/api/v1/models');
  });
}

export async function benchTargets(ctx: TargetContext, credentials: { username: string; password: string }): Promise<TargetRow[]> {
  const jpeg = readFileSync(resolve(ctx.root, 'models/fixtures/bench-1920x1080.jpg'));
  const rows: TargetRow[] = [];
  const row: Row = (target, measured, goal, ok) => {
    rows.push({ target, measured, goal, verdict: ok === null ? 'info' : ok ? 'met' : 'not met' });
  };
  const auth = { authorization: `Bearer ${ctx.token}` };

  const which = new Set((process.env.BENCH_TARGETS ?? 'memory,detector,status').split(','));
  // Memory first, on a fresh API process: the RSS after the first 100 requests, then after 10,000.
  const small = await sharp(jpeg).resize(640, 360).jpeg({ quality: 85 }).toBuffer();
  const form = new FormData();
  form.append('images', new Blob([small], { type: 'image/jpeg' }), 'seed.jpg');
  const up = (await (await fetch(`${ctx.base}/api/v1/images`, { method: 'POST', headers: auth, body: form })).json()) as {
    data: { id: string }[];
  };
  const imageId = up.data[0]!.id;
  const inferForm = new FormData();
  inferForm.append('image', new Blob([small], { type: 'image/jpeg' }), 'seed.jpg');
  const accepted = (await (
    await fetch(`${ctx.base}/api/v1/models/${DETECTOR}/infer`, { method: 'POST', headers: auth, body: inferForm })
  ).json()) as {
    job_id: string;
  };
  const jobId = accepted.job_id;
  await (await fetch(`${ctx.base}/api/v1/jobs/${jobId}/result?wait_ms=60000`, { headers: auth })).arrayBuffer();
  if (which.has('memory')) {
    await mixedRequests(ctx, 100, jobId, imageId, small, credentials);
    const rss100 = rssMb(ctx.apiPid);
    const total = Number(process.env.BENCH_MIXED_REQUESTS ?? 10000);
    for (let done = 100; done < total; done += 1000) {
      await mixedRequests(ctx, Math.min(1000, total - done), jobId, imageId, small, credentials);
      if (process.env.BENCH_RSS_TRACE)
        console.log(
          `API RSS after ${Math.min(done + 1000, total)} mixed requests: ${Math.round(rssMb(ctx.apiPid))} MB${await heapOf(ctx)}`,
        );
    }
    const rss10k = rssMb(ctx.apiPid);
    row(
      'API RSS after 10,000 mixed requests / after the first 100',
      `${r2(rss10k / rss100)} (${Math.round(rss100)} → ${Math.round(rss10k)} MB)`,
      '≤ 1.3',
      rss10k / rss100 <= 1.3,
    );
  }

  if (which.has('detector')) await detectorTargets(ctx, jpeg, row);
  if (which.has('status')) await statusTargets(ctx, jobId, row);
  return rows;
}

/** The API's V8 heap and external memory from its /metrics, when the bench may read them (METRICS=public); else ''. */
async function heapOf(ctx: TargetContext): Promise<string> {
  const res = await fetch(`${ctx.base}/metrics`).catch(() => null);
  if (!res?.ok) return '';
  const text = await res.text();
  const mb = (name: string): number =>
    Math.round(Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 1048576);
  const [used, total, external] = ['heap_size_used', 'heap_size_total', 'external_memory'].map((m) => mb(`aperture_nodejs_${m}_bytes`));
  return ` (heap used ${used} of ${total} MB, external ${external} MB)`;
}

type Row = (target: string, measured: string, goal: string, ok: boolean | null) => void;

async function detectorTargets(ctx: TargetContext, jpeg: Buffer, row: Row): Promise<void> {
  // The detector: in process, then over HTTP at concurrency 1 (one round trip) and at the worker's concurrency.
  const local = await inProcessDetector(ctx, jpeg);
  for (let i = 0; i < 3; i++) await detectOverHttp(ctx, jpeg); // warm-up
  let trips = 0;
  const pids = [ctx.apiPid, ctx.workerPid ?? 0];
  const idle0 = pids.map((p) => (p ? cpuMs(p) : 0));
  await new Promise((r) => setTimeout(r, 2000));
  const [apiIdle, workerIdle] = pids.map((p, i) => (p ? (cpuMs(p) - idle0[i]!) / 2 : NaN));
  const cpu0 = pids.map((p) => (p ? cpuMs(p) : 0));
  const threads0 = process.env.BENCH_THREADS ? pids.map((p) => (p ? cpuByThread(p) : new Map<string, number>())) : [];
  const c1 = await pool(30, 1, async () => {
    trips = Math.max(trips, (await detectOverHttp(ctx, jpeg)).roundTrips);
  });
  const [apiCpu, workerCpu] = pids.map((p, i) => (p ? (cpuMs(p) - cpu0[i]!) / 30 : NaN));
  if (process.env.BENCH_THREADS)
    pids.forEach(
      (p, i) => p && console.log(`${i ? 'worker' : 'API'} CPU ms per image by thread: ${threadSplit(threads0[i]!, cpuByThread(p), 30)}`),
    );
  const c1Ms = median(c1.latencies);
  // CPU time, not wall time: it holds on a busy machine, where latencies do not.
  row(
    'Detector 1920x1080, concurrency 1: CPU time per image (API process, worker process)',
    `API ${r1(apiCpu!)} ms, worker ${r1(workerCpu!)} ms (in process: ${r1(local.c1CpuMs)} ms; ` +
      `idle: API ${r1(apiIdle!)}, worker ${r1(workerIdle!)} ms/s)`,
    'info',
    null,
  );
  row(
    `Detector 1920x1080, concurrency 1: HTTP latency (p50, ${trips} round trip${trips > 1 ? 's' : ''}) / in process`,
    `${r2(c1Ms / local.c1Ms)} (${r1(c1Ms)} ms / ${r1(local.c1Ms)} ms)`,
    '≤ 1.5',
    c1Ms / local.c1Ms <= 1.5,
  );
  const n = ctx.workerConcurrency;
  const cN = await pool(80, n, async () => {
    await detectOverHttp(ctx, jpeg);
  });
  const httpPerS = (80 / cN.wallMs) * 1000;
  row(
    `Detector 1920x1080, concurrency ${n}: images/s over HTTP + queue + worker / in process`,
    `${r2(httpPerS / local.cNImagesPerS)} (${r1(httpPerS)} / ${r1(local.cNImagesPerS)} images/s, p50 ${r1(median(cN.latencies))} ms)`,
    '≥ 0.8',
    httpPerS / local.cNImagesPerS >= 0.8,
  );
  row(
    `Detector, concurrency ${n}, over a plain Python service (FastAPI + OpenCV-DNN: ${PYTHON_SERVICE_IMAGES_PER_S} images/s)`,
    `${r2(httpPerS / PYTHON_SERVICE_IMAGES_PER_S)}×`,
    '≥ 2× (reference figure, not measured in this run)',
    null,
  );
}

async function statusTargets(ctx: TargetContext, jobId: string, row: Row): Promise<void> {
  const f = await benchStatus(ctx.base, ctx.token, jobId, 10, ctx.apiPid);
  const cpu = f.status_cpu_ms === undefined ? '' : `; API CPU ${f.status_cpu_ms} ms a request, /health/live ${f.live_cpu_ms} ms`;
  row(
    'GET /jobs/{id}/status at 300 requests/s: p99',
    `${f.status_p99_ms} ms (p50 ${f.status_p50_ms} ms; /health/live p99 ${f.live_p99_ms} ms)`,
    '≤ 25 ms',
    f.status_p99_ms <= 25 && f.failures === 0,
  );
  row(
    'GET /jobs/{id}/status: requests/s on one API process',
    `${Math.round(f.status_max_rps)} (/health/live: ${Math.round(f.live_max_rps)}; ${f.failures} failures${cpu})`,
    '≥ 2,000',
    f.status_max_rps >= 2000 && f.failures === 0,
  );
}
