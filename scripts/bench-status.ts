/**
 * The authenticated request path: `GET /api/v1/jobs/{id}/status` with a bearer token on one API process, against
 * `GET /health/live` (no authentication, no rate limit, no database) on the same process.
 * - at a fixed 300 requests/s for 10 s (an open-loop, evenly paced load): p50 and p99 latency;
 * - the ceiling: as many requests as 32 connections can push for 10 s (requests/s).
 *
 * `benchStatus(base, token, jobId)` measures an API that is already running; run on its own
 * (`npm run build && node dist/scripts/bench-status.js`) it starts the API and a worker as separate processes on a
 * scratch PostgreSQL database (PG_ADMIN_URL, default the local server) with a throwaway Redis prefix, registers a
 * user, creates a job (a one-code QR batch), prints the figures as JSON and removes everything again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';

export interface StatusBenchFigures {
  /** GET /jobs/{id}/status (authenticated) at 300 requests/s */
  status_p50_ms: number;
  status_p99_ms: number;
  /** GET /jobs/{id}/status with 32 connections, unthrottled */
  status_max_rps: number;
  /** GET /health/live at 300 requests/s and unthrottled, for comparison */
  live_p50_ms: number;
  live_p99_ms: number;
  live_max_rps: number;
  /** Non-2xx answers or errors during the runs (a rate limit, a refused token): the figures are void when > 0 */
  failures: number;
  /**
   * CPU time (user + system) the API process spent per request during the unthrottled runs, in ms: what the route
   * costs whatever else the machine is doing (Linux only, and only when the API's pid is known; else absent).
   */
  status_cpu_ms?: number;
  live_cpu_ms?: number;
}

interface Run {
  p50: number;
  p99: number;
  rps: number;
  failures: number;
  /** Requests answered (the unthrottled runs) */
  total?: number;
}

/**
 * The CPU time (user + system) of a /proc/{pid}/stat or /proc/{pid}/task/{tid}/stat line, in ms. The fields after the
 * command name (which may hold spaces, so split after its closing parenthesis): utime is the 14th field of the line,
 * stime the 15th, in clock ticks (100 a second on Linux).
 */
export function statCpuMs(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    return statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8')) / 1000;
  } catch {
    return undefined;
  }
}

const percentile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/**
 * An open-loop load at a fixed rate: request i is due at i/rate seconds and is sent then (on a keep-alive pool of
 * `connections` sockets), whatever happened to the others; its latency counts from when it was due, so a stall shows
 * in the percentiles instead of slowing the load down. (autocannon's own rate limit sends each second's quota in
 * one burst at the start of the second, which measures its queue, not the server.)
 */
async function paced(url: string, headers: Record<string, string>, rate: number, connections: number, seconds: number): Promise<Run> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  let failures = 0;
  const one = (due: number): Promise<void> =>
    new Promise((done) => {
      const req = httpGet(url, { agent, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) failures++;
          latencies.push(performance.now() - due);
          done();
        });
      });
      req.on('error', () => {
        failures++;
        done();
      });
    });
  const t0 = performance.now() + 5;
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(one(due));
  }
  await Promise.all(inFlight);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const round = (v: number): number => Math.round(v * 100) / 100;
  return { p50: round(percentile(latencies, 0.5)), p99: round(percentile(latencies, 0.99)), rps: rate, failures };
}

function drive(url: string, headers: Record<string, string>, opts: { rate?: number; connections: number; seconds: number }): Promise<Run> {
  if (opts.rate) return paced(url, headers, opts.rate, opts.connections, opts.seconds);
  return new Promise((resolvePromise, reject) => {
    autocannon(
      {
        url,
        headers,
        connections: opts.connections,
        duration: opts.seconds,
      },
      (err, r) => {
        if (err) return reject(err);
        resolvePromise({
          p50: r.latency.p50,
          p99: r.latency.p99,
          rps: Math.round(r.requests.average),
          failures: r.non2xx + r.errors + r.timeouts,
          total: r.requests.total,
        });
      },
    );
  });
}

/**
 * Drives the status route and /health/live of a running API (base: `http://host:port`) and answers the figures; with
 * the API's pid (a process of its own), also its CPU time per request.
 */
export async function benchStatus(base: string, token: string, jobId: string, seconds = 10, pid?: number): Promise<StatusBenchFigures> {
  const status = `${base}/api/v1/jobs/${jobId}/status`;
  const live = `${base}/health/live`;
  const auth = { authorization: `Bearer ${token}` };
  const check = await fetch(status, { headers: auth });
  if (!check.ok) throw new Error(`GET ${status} answered ${check.status}: ${await check.text()}`);
  // Warm-up: JIT, connection pools, caches.
  await drive(status, auth, { connections: 8, seconds: 2 });
  const sFixed = await drive(status, auth, { rate: 300, connections: 16, seconds });
  const cpuPerRequest = async (run: () => Promise<Run>): Promise<[Run, number | undefined]> => {
    const before = pid === undefined ? undefined : processCpuSeconds(pid);
    const r = await run();
    const after = pid === undefined ? undefined : processCpuSeconds(pid);
    if (before === undefined || after === undefined || !r.total) return [r, undefined];
    return [r, Math.round(((after - before) * 1e5) / r.total) / 100];
  };
  const [sMax, sCpu] = await cpuPerRequest(() => drive(status, auth, { connections: 32, seconds }));
  await drive(live, {}, { connections: 8, seconds: 1 });
  const lFixed = await drive(live, {}, { rate: 300, connections: 16, seconds });
  const [lMax, lCpu] = await cpuPerRequest(() => drive(live, {}, { connections: 32, seconds }));
  return {
    status_p50_ms: sFixed.p50,
    status_p99_ms: sFixed.p99,
    status_max_rps: sMax.rps,
    live_p50_ms: lFixed.p50,
    live_p99_ms: lFixed.p99,
    live_max_rps: lMax.rps,
    failures: sFixed.failures + sMax.failures + lFixed.failures + lMax.failures,
    ...(sCpu === undefined ? {} : { status_cpu_ms: sCpu }),
    ...(lCpu === undefined ? {} : { live_cpu_ms: lCpu }),
  };
}

async function main(): Promise<void> {
  const root = resolve(import.meta.dirname, '..', '..');
  const dataDir = mkdtempSync(join(tmpdir(), 'aperture-bench-status-'));
  const pgAdminUrl = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const db = `aperture_bench_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgAdminUrl });
  await admin.connect();
  await admin.query(`create database "${db}"`);
  await admin.end();
  const dbUrl = new URL(pgAdminUrl);
  dbUrl.pathname = `/${db}`;
  const port = process.env.BENCH_PORT ?? '3927';
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    JWT_SECRET: randomBytes(32).toString('hex'),
    DATA_DIR: dataDir,
    DATABASE_URL: dbUrl.toString(),
    REDIS_PREFIX: `aperture-bench-${randomBytes(3).toString('hex')}`,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: port,
    WORKER_HEALTH_PORT: String(Number(port) + 1),
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_PER_HOUR: '100000000',
  };
  const children: ChildProcess[] = [];
  const start = (entry: string, extra: string[] = []): ChildProcess => {
    const c = spawn(process.execPath, [...extra, resolve(root, entry)], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(c);
    return c;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const waitOk = async (url: string): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      try {
        if ((await fetch(url)).ok) return;
      } catch {
        /* starting */
      }
      await sleep(100);
    }
    throw new Error(`${url} never answered`);
  };
  const base = `http://127.0.0.1:${port}`;
  try {
    // BENCH_CPU_PROF=dir: the API process writes a CPU profile there when it exits.
    const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
    const api = start('dist/apps/api/src/main.js', prof);
    await waitOk(`${base}/health/ready`);
    start('dist/apps/worker/src/main.js');
    await waitOk(`http://127.0.0.1:${env.WORKER_HEALTH_PORT}/health/ready`);
    const post = async (path: string, body: unknown, token?: string): Promise<Record<string, unknown>> => {
      const res = await fetch(base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
      const json = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`POST ${path} answered ${res.status}: ${JSON.stringify(json)}`);
      return json;
    };
    await post('/api/v1/auth/register', { username: 'bench', email: 'bench@example.com', password: 'bench-password-1' });
    const token = String((await post('/api/v1/auth/login', { username: 'bench', password: 'bench-password-1' })).access_token);
    const jobId = String((await post('/api/v1/qr/batches', { n: 1 }, token)).job_id);
    const figures = await benchStatus(base, token, jobId, Number(process.env.BENCH_SECONDS ?? 10), api.pid);
    console.log(JSON.stringify(figures, null, 2));
    api.kill('SIGINT');
  } finally {
    await sleep(1500);
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await sleep(500);
    rmSync(dataDir, { recursive: true, force: true });
    const drop = new pg.Client({ connectionString: pgAdminUrl });
    await drop.connect();
    await drop.query(`drop database if exists "${db}" with (force)`);
    await drop.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
