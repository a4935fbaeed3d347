/**
 * `npm run bench`: measures the platform and prints a table (and writes tmp/bench.json).
 * - API process idle RSS (after start and 3 s idle)
 * - a 1000-code QR batch: in-process render time, and through HTTP + queue + a separate worker process
 * - every image model in-process on a 1920x1080 JPEG: decode, pre-processing, session.run (worker thread),
 *   post-processing, total (scene-gru is left out: its input is the detected primitives, not an image)
 * - the detector through HTTP + queue + worker (POST /models/primitives-obb/infer): images/s at concurrency 1 and 4,
 *   latency split into accept, pickup, run and finish; sam-tiny (a click) likewise at concurrency 1
 * - a segmentation batch of 10 such images with a click each (POST /segment/batches, multipart and JSON): the time to
 *   accept it, to finish every job, and images/s
 * - object extraction's own work (no model) on a 1920x1080 image with 12 masks: cleaning, RGBA crops (feather 0
 *   and 8), PNG encoding, the overlay and the SVG
 * - model memory: RSS of this process over 20 load/unload cycles of every shipped model (sessions in worker threads)
 * - GET /images/{id}/embedding: the first request (a job and an encoder run), after a prompt (cache hit), stored
 * - one 980 MB upload (20 files of 49 MB): seconds, and the API process's RSS before and at its peak
 * - the booth: one 1920x1080 photo from POST /booth/submissions until its X-ray options are listed for review
 *   (GET /reviews), with the worker's xray model
 * - sam-tiny's automatic mask generator (points_per_side 32) on a 1024x768 image: encoder, decoder session.run and
 *   post-processing (everything else) times and their ratio; and a first prompt on an image (encode + decode) against
 *   a second one (embedding cache hit, decode only), through the SAM pipeline
 * The API and worker processes use a scratch PostgreSQL database when one is reachable (PG_ADMIN_URL, default the
 * local server; two processes in production share PostgreSQL), else the embedded SQLite default (BENCH_DB=sqlite
 * forces it), in a temporary DATA_DIR with a throwaway Redis prefix. Never run by the tests.
 * - the service-level targets (scripts/bench-targets.ts), each with met / not met, first on the fresh API process
 * BENCH_ONLY=sam runs the sam-tiny figures alone (automatic masks and the embedding cache), in this process;
 * BENCH_ONLY=targets runs the targets alone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import sharp from 'sharp';
import { outputPngs } from '@aperture/analysis/render.js';
import { rleEncode } from '@aperture/inference/mask.js';
import { renderMaskSvg } from '@aperture/inference/mask-svg.js';
import { cleanMask, cutObject, maskBytes, tintMasks } from '@aperture/inference/objects.js';
import { decodeYoloObb } from '@aperture/inference/postprocess/obb.js';
import { encodeSamPrompt, samMaskFromOutputs, type SamPrompt } from '@aperture/inference/postprocess/sam.js';
import { decodeYoloSegment } from '@aperture/inference/postprocess/yolo-segment.js';
import { imageToChw01, letterbox, samPreprocess } from '@aperture/inference/preprocess.js';
import { decodeImage, type RgbImage } from '@aperture/imaging/decode.js';
import { float32Output, SessionHost } from '@aperture/inference/session-host.js';
import { loadManifest, type ModelEntry } from '@aperture/models/manifest.js';
import { AutoMaskPipeline } from '@aperture/models/auto-mask.pipeline.js';
import { EmbeddingCache } from '@aperture/models/embedding-cache.js';
import { ModelRegistry } from '@aperture/models/model-registry.js';
import { ModelRunner } from '@aperture/models/model-runner.js';
import { SamPipeline } from '@aperture/models/sam.pipeline.js';
import { renderQrPdf } from '@aperture/qr/qr-pdf.js';
import { benchTargets, rssMb, type TargetRow } from './bench-targets.js';

const root = resolve(import.meta.dirname, '..', '..');
const dataDir = mkdtempSync(join(tmpdir(), 'aperture-bench-'));
const pgAdminUrl = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const benchDb = `aperture_bench_${randomBytes(3).toString('hex')}`;

/** A scratch PostgreSQL database's URL, or '' (SQLite) when BENCH_DB=sqlite or no server answers. */
async function scratchDatabase(): Promise<string> {
  if (process.env.BENCH_DB === 'sqlite') return '';
  const admin = new pg.Client({ connectionString: pgAdminUrl, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
    await admin.query(`create database "${benchDb}"`);
  } catch {
    return '';
  } finally {
    await admin.end().catch(() => undefined);
  }
  const url = new URL(pgAdminUrl);
  url.pathname = `/${benchDb}`;
  return url.toString();
}

async function dropScratchDatabase(): Promise<void> {
  const admin = new pg.Client({ connectionString: pgAdminUrl });
  await admin.connect();
  await admin.query(`drop database if exists "${benchDb}" with (force)`);
  await admin.end();
}

const databaseUrl = await scratchDatabase();
const env = {
  ...process.env,
  NODE_ENV: 'production',
  JWT_SECRET: randomBytes(32).toString('hex'),
  DATA_DIR: dataDir,
  DATABASE_URL: databaseUrl,
  REDIS_PREFIX: `aperture-bench-${randomBytes(3).toString('hex')}`,
  LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  PORT: '3917',
  WORKER_HEALTH_PORT: '3918',
  WORKER_CONCURRENCY: '4',
  RATE_LIMIT_PER_MINUTE: '1000000',
  RATE_LIMIT_PER_HOUR: '100000000',
  UPLOAD_MAX_REQUEST_MB: '1024',
  // As the launcher, the Dockerfile and the manifests run the processes (README, Memory).
  MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
};

const children: ChildProcess[] = [];
/** BENCH_NODE_ARGS: extra Node flags for the API and worker processes (e.g. --heap-prof, --cpu-prof). */
const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** The API's own Node flags, as `npm run start:api`, the Dockerfile and the manifests pass them. */
const API_NODE_ARGS = ['--max-semi-space-size=8'];
function start(entry: string, args: string[] = []): ChildProcess {
  const argv = [...args, ...nodeArgs, resolve(root, entry)];
  const c = spawn(process.execPath, argv, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(c);
  return c;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitOk(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* starting */
    }
    await sleep(100);
  }
  throw new Error(`${url} never answered`);
}

const base = `http://127.0.0.1:${env.PORT}`;
let token = '';
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const results: Record<string, number> = {};
const perModel: Record<string, string | number>[] = [];
const targets: TargetRow[] = [];
const targetsOnly = process.env.BENCH_ONLY === 'targets';
try {
  if (process.env.BENCH_ONLY === 'sam') {
    await benchSamAlone();
  } else {
    mkdirSync(join(root, 'tmp'), { recursive: true });
    if (!targetsOnly) await benchInProcess();
    const api = start('dist/apps/api/src/main.js', API_NODE_ARGS);
    await waitOk(`${base}/health/ready`);
    await sleep(3000);
    results['api_idle_rss_mb'] = Math.round(rssMb(api.pid!));
    const worker = start('dist/apps/worker/src/main.js');
    await waitOk(`http://127.0.0.1:${env.WORKER_HEALTH_PORT}/health/ready`);
    results['worker_idle_rss_mb'] = Math.round(rssMb(worker.pid!));

    const credentials = { username: 'bench', password: 'bench-password-1' };
    await call('POST', '/api/v1/auth/register', { ...credentials, email: 'bench@example.com' });
    token = String((await call('POST', '/api/v1/auth/login', credentials)).json.access_token);
    const ctx = {
      root,
      base,
      token,
      apiPid: api.pid!,
      workerPid: worker.pid!,
      workerConcurrency: Number(env.WORKER_CONCURRENCY),
      sessionThreads: 1,
    };
    targets.push(...(await benchTargets(ctx, credentials)));
    if (!targetsOnly) await benchThroughServer(api.pid!, worker.pid!);
  }
} finally {
  for (const c of children) c.kill('SIGTERM');
  await sleep(500);
  rmSync(dataDir, { recursive: true, force: true });
  if (databaseUrl) await dropScratchDatabase();
}

/** The figures measured in this process: the QR renderer, every model's phases, object extraction. */
async function benchInProcess(): Promise<void> {
  const items = Array.from({ length: 1000 }, (_, i) => ({
    code: `C${i}`,
    value: `https://aperture.example/q/BENCH${String(i).padStart(7, '0')}`,
  }));
  const t = performance.now();
  const pdf = await renderQrPdf(items, { title: 'bench', date: new Date() });
  results['qr_render_1000_in_process_ms'] = Math.round(performance.now() - t);
  results['qr_pdf_1000_bytes'] = pdf.length;
  await benchModels();
  await benchObjectCutting();
}

/** The figures through the API and worker processes. */
async function benchThroughServer(apiPid: number, workerPid: number): Promise<void> {
  await benchBigUpload(apiPid);
  const t = performance.now();
  const created = await call('POST', '/api/v1/qr/batches', { n: 1000 });
  results['qr_create_1000_request_ms'] = Math.round(performance.now() - t);
  const id = String(created.json.id);
  for (;;) {
    const b = await call('GET', `/api/v1/qr/batches/${id}`);
    if (b.json.status === 'completed') break;
    if (b.json.status === 'failed') throw new Error(`batch failed: ${String(b.json.error)}`);
    await sleep(20);
  }
  results['qr_batch_1000_end_to_end_ms'] = Math.round(performance.now() - t);
  const job = await call('GET', `/api/v1/jobs/${String(created.json.job_id)}`);
  results['qr_batch_1000_job_run_ms'] = new Date(String(job.json.finished_at)).getTime() - new Date(String(job.json.started_at)).getTime();
  results['worker_rss_after_batch_mb'] = Math.round(rssMb(workerPid));
  await benchQueue('primitives-obb', 'obb', {}, 24, [1, 4]);
  await benchQueue('sam-tiny', 'sam', { points: JSON.stringify([{ x: 960, y: 540, label: 1 }]) }, 8, [1]);
  await benchFragmentTask();
  await benchEmbedding();
  await benchSegmentBatch();
  await benchBooth(id);
}

/**
 * A model through HTTP, the queue and the worker process: latency per image (upload to the answer of
 * GET /jobs/{id}/status?wait_ms=, no polling) and images per second; at concurrency 1 the latency is split into
 * accept (the POST: upload, validation, storage, record, enqueue), pickup (queued to started), run (started to
 * finished: the record marked running, the handler, whose own total is `handler`, and the result written), and
 * finish (the record completed to the client's answer), from the job's timestamps. The detector runs at
 * concurrency 1 and 4; sam-tiny (a click), whose compute outweighs the fixed cost of the trip, at 1.
 */
async function benchQueue(model: string, tag: string, fields: Record<string, string>, n: number, concurrencies: number[]): Promise<void> {
  const jpeg = readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg'));
  type Split = { total: number; accept: number; pickup: number; run: number; handler: number; finish: number };
  const one = async (): Promise<Split> => {
    const t0 = Date.now();
    const form = new FormData();
    form.append('image', new Blob([jpeg], { type: 'image/jpeg' }), 'bench.jpg');
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    const res = await fetch(`${base}/api/v1/models/${model}/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    if (res.status !== 202) throw new Error(`infer answered ${res.status}: ${await res.text()}`);
    const { job_id: id } = (await res.json()) as { job_id: string };
    const tAccepted = Date.now();
    for (;;) {
      const s = await call('GET', `/api/v1/jobs/${id}/status?wait_ms=30000`);
      if (s.json.status === 'completed') break;
      if (s.json.status === 'failed') throw new Error(`infer job failed: ${JSON.stringify(s.json)}`);
    }
    const tDone = Date.now();
    const job = (await call('GET', `/api/v1/jobs/${id}`)).json as {
      started_at: string;
      finished_at: string;
      result: { timings_ms: { total: number } };
    };
    const started = Date.parse(job.started_at);
    const finished = Date.parse(job.finished_at);
    const handler = job.result.timings_ms.total;
    return {
      total: tDone - t0,
      accept: tAccepted - t0,
      pickup: started - tAccepted,
      run: finished - started,
      handler,
      finish: tDone - finished,
    };
  };
  await one(); // the worker loads the model
  for (const concurrency of concurrencies) {
    let next = 0;
    const splits: Split[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          splits.push(await one());
        }
      }),
    );
    const wall = performance.now() - t0;
    const mean = (k: keyof Split): number => Math.round((splits.reduce((a, b) => a + b[k], 0) / splits.length) * 10) / 10;
    results[`queue_${tag}_c${concurrency}_images_per_s`] = Math.round((n / wall) * 1000 * 100) / 100;
    results[`queue_${tag}_c${concurrency}_mean_latency_ms`] = mean('total');
    if (concurrency === 1)
      for (const k of ['accept', 'pickup', 'run', 'handler', 'finish'] as const) results[`queue_${tag}_c1_${k}_ms`] = mean(k);
  }
  results[`queue_${tag}_c1_latency_over_in_process_total`] =
    Math.round((results[`queue_${tag}_c1_mean_latency_ms`]! / results[`${model}_1920x1080_total_ms`]!) * 100) / 100;
}

/** One fragment analysis of a 1920x1080 image through HTTP, the queue and the worker, artifacts included. */
async function benchFragmentTask(): Promise<void> {
  const png = await sharp(resolve(root, 'models/fixtures/fragments/fragments-04-1024x768.png'))
    .resize(1920, 1080, { fit: 'cover' })
    .png()
    .toBuffer();
  const one = async (): Promise<{ total: number; run: number }> => {
    const t0 = performance.now();
    const form = new FormData();
    form.append('type', 'fragments');
    form.append('real_radius', '20');
    form.append('unit', 'mm');
    form.append('image', new Blob([png], { type: 'image/png' }), 'rocks-1920x1080.png');
    const res = await fetch(`${base}/api/v1/tasks`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
    if (res.status !== 202) throw new Error(`task answered ${res.status}: ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    for (;;) {
      const s = await call('GET', `/api/v1/tasks/${id}/status?wait_ms=30000`);
      if (s.json.status === 'completed') break;
      if (s.json.status === 'failed') throw new Error(`fragment task failed: ${JSON.stringify(s.json)}`);
    }
    const total = performance.now() - t0;
    const task = await call('GET', `/api/v1/tasks/${id}`);
    return { total, run: new Date(String(task.json.finished_at)).getTime() - new Date(String(task.json.started_at)).getTime() };
  };
  await one(); // the worker loads the model
  const runs = [await one(), await one(), await one()];
  results['fragments_task_1920x1080_end_to_end_ms'] = Math.round(runs.reduce((a, r) => a + r.total, 0) / runs.length);
  results['fragments_task_1920x1080_job_run_ms'] = Math.round(runs.reduce((a, r) => a + r.run, 0) / runs.length);
}

/**
 * GET /images/{id}/embedding on a 1920x1080 JPEG: the first request (an image.embedding job: decode, encoder, storing
 * 4 MB), the same after a prompt on the image (the job finds the embedding in the worker's cache: no encoder run), and
 * a stored one (read from storage, no job), each the mean of 3 fresh images, to the last byte of the body.
 */
async function benchEmbedding(): Promise<void> {
  const jpeg = readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg'));
  const auth = { authorization: `Bearer ${token}` };
  const upload = async (i: number): Promise<string> => {
    // A different file each time (re-encoded at another quality), so that no embedding is shared.
    const bytes = await sharp(jpeg)
      .jpeg({ quality: 90 - i })
      .toBuffer();
    const form = new FormData();
    form.append('images', new Blob([bytes], { type: 'image/jpeg' }), `bench-${i}.jpg`);
    const res = await fetch(`${base}/api/v1/images`, { method: 'POST', headers: auth, body: form });
    if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { data: { id: string }[] }).data[0]!.id;
  };
  const get = async (id: string): Promise<number> => {
    const t0 = performance.now();
    const res = await fetch(`${base}/api/v1/images/${id}/embedding`, { headers: auth });
    const body = await res.arrayBuffer();
    if (res.status !== 200 || body.byteLength !== 4 * 256 * 64 * 64) throw new Error(`embedding answered ${res.status}`);
    return performance.now() - t0;
  };
  const mean = (v: number[]): number => Math.round((v.reduce((a, b) => a + b, 0) / v.length) * 10) / 10;
  const cold: number[] = [];
  const stored: number[] = [];
  const afterPrompt: number[] = [];
  for (let i = 0; i < 3; i++) {
    const id = await upload(i);
    cold.push(await get(id));
    stored.push(await get(id));
    const prompted = await upload(10 + i);
    const form = new FormData();
    form.append('image_id', prompted);
    form.append('points', JSON.stringify([{ x: 960, y: 540 }]));
    const seg = await fetch(`${base}/api/v1/segment/points`, { method: 'POST', headers: auth, body: form });
    if (seg.status !== 200) throw new Error(`segment/points answered ${seg.status}: ${await seg.text()}`);
    afterPrompt.push(await get(prompted));
  }
  results['embedding_1920x1080_first_get_ms'] = mean(cold);
  results['embedding_1920x1080_after_prompt_get_ms'] = mean(afterPrompt);
  results['embedding_1920x1080_stored_get_ms'] = mean(stored);
}

/**
 * A segmentation batch of 10 copies of the 1920x1080 JPEG, one click each, through HTTP, the queue and the worker:
 * accept (the POST: every image checked, stored and queued), end to end (until every job has finished) and images/s,
 * in the multipart form and in the JSON form (base64 images).
 */
async function benchSegmentBatch(): Promise<void> {
  const jpeg = readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg'));
  const n = 10;
  const points = JSON.stringify(Array.from({ length: n }, () => [{ x: 960, y: 540, label: 1 }]));
  const run = async (tag: string, send: () => Promise<Response>): Promise<void> => {
    const t0 = performance.now();
    const res = await send();
    if (res.status !== 202) throw new Error(`batch answered ${res.status}: ${await res.text()}`);
    const accepted = performance.now() - t0;
    const batch = (await res.json()) as { batch_id: string; jobs: { job_id: string }[] };
    for (const j of batch.jobs) {
      for (;;) {
        const st = await call('GET', `/api/v1/jobs/${j.job_id}/status?wait_ms=30000`);
        if (st.json.status === 'completed') break;
        if (st.json.status === 'failed') throw new Error(`batch job failed: ${JSON.stringify(st.json)}`);
      }
    }
    const total = performance.now() - t0;
    const b = await call('GET', `/api/v1/segment/batches/${batch.batch_id}`);
    if (b.json.status !== 'completed') throw new Error(`batch ended ${String(b.json.status)}`);
    results[`segment_batch_${tag}_${n}_accept_ms`] = Math.round(accepted);
    results[`segment_batch_${tag}_${n}_end_to_end_ms`] = Math.round(total);
    results[`segment_batch_${tag}_${n}_images_per_s`] = Math.round((n / total) * 1000 * 100) / 100;
  };
  await run('multipart', () => {
    const form = new FormData();
    for (let i = 0; i < n; i++) form.append('images', new Blob([jpeg], { type: 'image/jpeg' }), `bench-${i}.jpg`);
    form.append('points', points);
    form.append('coords', 'pixels');
    return fetch(`${base}/api/v1/segment/batches`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  });
  await run('json', () =>
    fetch(`${base}/api/v1/segment/batches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ images: Array.from({ length: n }, () => jpeg.toString('base64')), points: JSON.parse(points) as unknown }),
    }),
  );
}

/**
 * One multipart request of 20 files of 49 MB (random bytes, sent chunked; POST /images refuses each as not an image
 * once it arrived): the seconds it took and the API process's RSS before and at its peak (sampled every 20 ms). Files
 * are streamed to temporary files, so the peak stays near the idle RSS instead of growing by the request's size.
 */
async function benchBigUpload(apiPid: number): Promise<void> {
  const MB = 1024 * 1024;
  const noise = randomBytes(MB).fill(0, 0, 16);
  const boundary = 'aperture-bench-boundary';
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 20; i++) {
      yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="images"; filename="noise-${i}.bin"\r\n\r\n`);
      for (let left = 49 * MB; left > 0; left -= MB) yield noise.subarray(0, Math.min(MB, left));
      yield Buffer.from('\r\n');
    }
    yield Buffer.from(`--${boundary}--\r\n`);
  }
  const before = rssMb(apiPid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(apiPid))), 20);
  const t0 = performance.now();
  try {
    const res = await fetch(`${base}/api/v1/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: Readable.toWeb(Readable.from(body())) as ReadableStream<Uint8Array>,
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    if (res.status !== 400) throw new Error(`the 980 MB upload answered ${res.status}: ${text.slice(0, 300)}`);
  } finally {
    clearInterval(sampler);
  }
  results['upload_20x49mb_seconds'] = Math.round((performance.now() - t0) / 100) / 10;
  results['upload_20x49mb_api_rss_before_mb'] = Math.round(before);
  results['upload_20x49mb_api_rss_peak_mb'] = Math.round(peak);
}

/**
 * What segment.objects does after the model, in-process on a 1920x1080 photo with 12 elliptical masks (each with a
 * hole and a speck): clean, cut (feather 0 and 8), encode object and mask PNGs, the overlay and the SVG.
 */
async function benchObjectCutting(): Promise<void> {
  const img = await decodeImage(readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg')));
  const { width: W, height: H } = img;
  const masks = Array.from({ length: 12 }, (_, k) => {
    const m = new Uint8Array(W * H);
    const [cx, cy, rx, ry] = [150 + (k % 4) * 450, 180 + Math.floor(k / 4) * 340, 120 + 10 * k, 90 + 5 * k];
    for (let y = Math.max(0, cy - ry); y < Math.min(H, cy + ry); y++) {
      for (let x = Math.max(0, cx - rx); x < Math.min(W, cx + rx); x++) {
        const d = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
        if (d <= 1 && d > 0.0004) m[y * W + x] = 1;
      }
    }
    m[(cy - ry - 5) * W + cx] = 1;
    return m;
  });
  const png = (data: Uint8Array, w: number, h: number, channels: 1 | 3 | 4): Promise<Buffer> => {
    const image = sharp(data, { raw: { width: w, height: h, channels } });
    return (channels === 1 ? image.toColourspace('b-w') : image).png().toBuffer();
  };
  const runs = 3;
  const sum = { clean: 0, cut0: 0, cut8: 0, png: 0, overlay_svg: 0 };
  for (let r = 0; r < runs + 1; r++) {
    const t0 = performance.now();
    const cleaned = masks.map((m) => cleanMask(m, W, H, 100));
    const t1 = performance.now();
    const hard = cleaned.map((c) => cutObject(img, c.mask, c.box, 0));
    const t2 = performance.now();
    cleaned.forEach((c) => cutObject(img, c.mask, c.box, 8));
    const t3 = performance.now();
    for (const [i, o] of hard.entries()) {
      await png(o.data, o.width, o.height, 4);
      await png(maskBytes(cleaned[i]!.mask), W, H, 1);
    }
    const t4 = performance.now();
    await png(
      tintMasks(
        img,
        cleaned.map((c) => c.mask),
      ),
      W,
      H,
      3,
    );
    await renderMaskSvg(
      img,
      cleaned.map((c, i) => ({ mask: c.mask, score: 0.9, title: `object ${i}` })),
    );
    const t5 = performance.now();
    if (r === 0) continue; // warm-up
    sum.clean += t1 - t0;
    sum.cut0 += t2 - t1;
    sum.cut8 += t3 - t2;
    sum.png += t4 - t3;
    sum.overlay_svg += t5 - t4;
  }
  for (const [k, v] of Object.entries(sum)) results[`objects_12_masks_1920x1080_${k}_ms`] = Math.round(v / runs);
}

/** The codes of a QR batch, straight from the database (the API hands them out only as the printed PDF). */
async function qrCodesOf(batchId: string): Promise<string[]> {
  const sql = 'select code from qr_codes where batch_id = $1 order by position';
  if (!databaseUrl) {
    const db = new DatabaseSync(join(dataDir, 'aperture.sqlite'), { readOnly: true });
    try {
      return db
        .prepare(sql.replace('$1', '?'))
        .all(batchId)
        .map((r) => String(r['code']));
    } finally {
      db.close();
    }
  }
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    return (await db.query(sql, [batchId])).rows.map((r: { code: string }) => r.code);
  } finally {
    await db.end();
  }
}

/**
 * The booth with internal processing: one 1920x1080 photo from the submission (upload, checks, storage, record,
 * enqueue) until GET /reviews lists its options (the worker ran the xray model and stored BOOTH_RESULTS_PER_IMAGE
 * PNGs); the first run loads the model and is left out.
 */
async function benchBooth(qrBatchId: string): Promise<void> {
  const jpeg = readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg'));
  const codes = await qrCodesOf(qrBatchId);
  const one = async (code: string): Promise<{ total: number; run: number }> => {
    const t0 = performance.now();
    const form = new FormData();
    for (const [k, v] of Object.entries({
      first_name: 'Bench',
      last_name: 'Mark',
      animal_name: 'Rex',
      animal_type: 'dog',
      qr_content: code,
    }))
      form.append(k, v);
    form.append('file', new Blob([jpeg], { type: 'image/jpeg' }), 'pet.jpg');
    const res = await fetch(`${base}/api/v1/booth/submissions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    if (res.status !== 201) throw new Error(`booth submission answered ${res.status}: ${await res.text()}`);
    const { job_id: jobId } = (await res.json()) as { job_id: string };
    for (;;) {
      const s = await call('GET', `/api/v1/jobs/${jobId}/status?wait_ms=30000`);
      if (s.json.status === 'failed') throw new Error(`booth job failed: ${JSON.stringify(s.json)}`);
      if (s.json.status !== 'completed') continue;
      const r = await call('GET', '/api/v1/reviews?page_size=100');
      if ((r.json.results as Record<string, string[]>)[jobId]?.length) break;
    }
    const total = performance.now() - t0;
    const job = await call('GET', `/api/v1/jobs/${jobId}`);
    const reviewed = await call('POST', `/api/v1/jobs/${jobId}/review`, { decision: 'cancel' }); // keeps the review list short
    if (reviewed.status !== 200) throw new Error(`booth review answered ${reviewed.status}`);
    return { total, run: new Date(String(job.json.finished_at)).getTime() - new Date(String(job.json.started_at)).getTime() };
  };
  await one(codes[0]!); // the worker loads the model
  const runs: { total: number; run: number }[] = [];
  for (const code of codes.slice(1, 6)) runs.push(await one(code));
  results['booth_1920x1080_submit_to_reviewable_ms'] = Math.round(runs.reduce((a, r) => a + r.total, 0) / runs.length);
  results['booth_1920x1080_job_run_ms'] = Math.round(runs.reduce((a, r) => a + r.run, 0) / runs.length);
}

/** Every image model's phases on a 1920x1080 JPEG, and RSS over load/unload cycles of every shipped model. */
async function benchModels(): Promise<void> {
  const manifest = loadManifest();
  const host = new SessionHost({ poolSize: 1 });
  const registry = new ModelRegistry(manifest, host, { dir: resolve(root, 'models'), sessionOptions: { intraOpNumThreads: 0 } });
  try {
    const jpeg = readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg'));
    const entry = (name: string): ModelEntry => {
      const m = manifest.models.find((x) => x.name === name);
      if (!m) throw new Error(`bench: model ${name} is not in the manifest`);
      return m;
    };
    const obb = entry('primitives-obb');
    const seg = entry('fragments-seg');
    const xray = entry('xray');
    /** Each stage returns what the next needs; `run` is session.run (in a worker thread), the rest is on this thread. */
    const pipelines: { name: string; pre: (img: RgbImage) => Promise<() => Promise<() => unknown>> }[] = [
      {
        name: 'primitives-obb',
        pre: async (img) => {
          const lb = await letterbox(img.data, img.width, img.height, obb.input_size!);
          return async () => {
            const { outputs } = await registry.run(obb.name, 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
            return () => decodeYoloObb(float32Output(outputs, 'output0'), lb);
          };
        },
      },
      {
        name: 'fragments-seg',
        pre: async (img) => {
          const lb = await letterbox(img.data, img.width, img.height, seg.input_size!);
          return async () => {
            const { outputs } = await registry.run(seg.name, 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
            return () => decodeYoloSegment(float32Output(outputs, 'output0'), float32Output(outputs, 'output1'), lb, { maskFormat: 'rle' });
          };
        },
      },
      {
        name: 'sam-tiny',
        pre: async (img) => {
          const pre = await samPreprocess(img.data, img.width, img.height);
          const prompt: SamPrompt = { points: [{ x: img.width / 2, y: img.height / 2, label: 1 }] };
          return async () => {
            const enc = await registry.run('sam-tiny', 'encoder', { image: { type: 'float32', dims: pre.dims, data: pre.tensor } });
            const feeds = encodeSamPrompt(
              prompt,
              { origW: img.width, origH: img.height, newW: pre.newW, newH: pre.newH },
              float32Output(enc.outputs, 'image_embeddings').data,
            );
            const dec = await registry.run('sam-tiny', 'decoder', feeds);
            return () => {
              const m = samMaskFromOutputs(float32Output(dec.outputs, 'masks'), float32Output(dec.outputs, 'iou_predictions'), prompt);
              return rleEncode(m.mask, m.width, m.height);
            };
          };
        },
      },
      {
        name: 'xray',
        pre: async (img) => {
          const input = imageToChw01(img);
          return async () => {
            const { outputs } = await registry.run(xray.name, 'model', {
              image: { type: 'float32', dims: input.dims, data: input.tensor },
            });
            return async () => {
              const out = float32Output(outputs, 'output');
              await outputPngs(out.data, out.dims[0] ?? 1, img.width, img.height);
            };
          };
        },
      },
    ];
    for (const p of pipelines) {
      await registry.load(p.name);
      const runs = p.name === 'xray' ? 5 : 20;
      const sum = { decode: 0, pre: 0, run: 0, post: 0, total: 0 };
      for (let i = 0; i < runs + 2; i++) {
        const t0 = performance.now();
        const img = await decodeImage(jpeg);
        const t1 = performance.now();
        const run = await p.pre(img);
        const t2 = performance.now();
        const post = await run();
        const t3 = performance.now();
        await post();
        const t4 = performance.now();
        if (i < 2) continue; // warm-up
        sum.decode += t1 - t0;
        sum.pre += t2 - t1;
        sum.run += t3 - t2;
        sum.post += t4 - t3;
        sum.total += t4 - t0;
      }
      const avg = Object.fromEntries(Object.entries(sum).map(([k, v]) => [k, Math.round((v / runs) * 100) / 100])) as typeof sum;
      perModel.push({ model: p.name, ...avg, 'pre+post / run': Math.round(((avg.pre + avg.post) / avg.run) * 100) / 100 });
      for (const [k, v] of Object.entries(avg)) results[`${p.name}_1920x1080_${k}_ms`] = v;
      await registry.unload(p.name);
    }

    await benchSam(registry, jpeg);

    const rss = (): number => Math.round(process.memoryUsage.rss() / 1024 / 1024);
    const names = manifest.models.map((m) => m.name);
    results['models_rss_before_mb'] = rss();
    let peak = 0;
    for (let cycle = 0; cycle < 20; cycle++) {
      for (const n of names) await registry.load(n);
      peak = Math.max(peak, rss());
      if (cycle === 0) results['models_rss_all_loaded_first_mb'] = rss();
      for (const n of names) await registry.unload(n);
      if (cycle === 0) results['models_rss_after_first_unload_mb'] = rss();
    }
    results['models_rss_peak_loaded_mb'] = peak;
    results['models_rss_after_20_cycles_mb'] = rss();
  } finally {
    await registry.close();
    await host.close();
  }
}

/** benchSam with a registry of its own (BENCH_ONLY=sam). */
async function benchSamAlone(): Promise<void> {
  const host = new SessionHost({ poolSize: 1 });
  const registry = new ModelRegistry(loadManifest(), host, { dir: resolve(root, 'models'), sessionOptions: { intraOpNumThreads: 0 } });
  try {
    await benchSam(registry, readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg')));
  } finally {
    await registry.close();
    await host.close();
  }
}

/**
 * sam-tiny through its pipelines on the bench photo resized to 1024x768: the automatic mask generator's time split at
 * points_per_side 32 (post-processing = total − encoder − decoder session.run: feeds, upscaling the surviving
 * low-res masks, stability, boxes, RLE, NMS), and the embedding cache's effect on a prompt.
 */
async function benchSam(registry: ModelRegistry, jpeg: Buffer): Promise<void> {
  const runner = new ModelRunner(registry);
  const sam = new SamPipeline(runner, new EmbeddingCache({ maxBytes: 256 * 1024 * 1024 }));
  const auto = new AutoMaskPipeline(runner, sam);
  const img = await decodeImage(await sharp(jpeg).resize(1024, 768, { fit: 'fill' }).png().toBuffer());
  await registry.load('sam-tiny');
  await auto.generate('sam-tiny', img, null, { points_per_side: 4, output_mode: 'binary_mask' }); // warm-up
  const res = await auto.generate('sam-tiny', img, null, { points_per_side: 32, output_mode: 'binary_mask' });
  const t = res.timings;
  const post = t.totalMs - t.encodeMs - t.decoderMs;
  const r = (v: number): number => Math.round(v * 10) / 10;
  results['sam_amg_1024x768_pps32_encoder_ms'] = r(t.encodeMs);
  results['sam_amg_1024x768_pps32_decoder_run_ms'] = r(t.decoderMs);
  results['sam_amg_1024x768_pps32_decoder_runs'] = t.decoderRuns;
  results['sam_amg_1024x768_pps32_postprocess_ms'] = r(post);
  results['sam_amg_1024x768_pps32_post_over_decoder'] = Math.round((post / t.decoderMs) * 1000) / 1000;
  results['sam_amg_1024x768_pps32_masks'] = res.masks.length;

  // First prompt on an image (encode + decode) vs a second prompt on it (cache hit, decode only), 10 images' worth.
  const first: number[] = [];
  const second: number[] = [];
  const encodeMs: number[] = [];
  const prompt = (x: number, y: number): SamPrompt => ({ points: [{ x, y, label: 1 }] });
  for (let i = 0; i < 12; i++) {
    const sha = `bench-${i}`;
    let t0 = performance.now();
    const a = await sam.samEncodeCached('sam-tiny', img, sha);
    await sam.samDecode(a.embedding, [prompt(512, 384)]);
    const t1 = performance.now() - t0;
    t0 = performance.now();
    const b = await sam.samEncodeCached('sam-tiny', img, sha);
    await sam.samDecode(b.embedding, [prompt(300, 200)]);
    const t2 = performance.now() - t0;
    if (a.hit || !b.hit) throw new Error('bench: the embedding cache did not miss then hit');
    if (i < 2) continue; // warm-up
    first.push(t1);
    second.push(t2);
    encodeMs.push(a.embedding.encodeMs.preprocessMs + a.embedding.encodeMs.computeMs);
  }
  const mean = (v: number[]): number => v.reduce((x, y) => x + y, 0) / v.length;
  results['sam_prompt_first_encode_decode_ms'] = r(mean(first));
  results['sam_prompt_second_cache_hit_ms'] = r(mean(second));
  results['sam_prompt_first_over_second'] = Math.round((mean(first) / mean(second)) * 100) / 100;
  results['sam_prompt_encoder_ms'] = r(mean(encodeMs));
  const enc = registry.status('sam-tiny').stats;
  await registry.unload('sam-tiny');
  console.log(
    `\nsam-tiny automatic masks, 1024x768, points_per_side 32 (${t.decoderRuns} decoder runs, ${res.masks.length} masks): ` +
      `encoder ${r(t.encodeMs)} ms, decoder session.run ${r(t.decoderMs)} ms, post-processing ${r(post)} ms, ` +
      `post-processing / decoder ${(post / t.decoderMs).toFixed(3)}\n` +
      `sam-tiny prompt through the pipeline: first on an image (encode + decode) ${r(mean(first))} ms, ` +
      `second (cache hit, decode only) ${r(mean(second))} ms: ${(mean(first) / mean(second)).toFixed(2)}x; ` +
      `of the first, the encoder (pre-processing + run) ${r(mean(encodeMs))} ms ` +
      `(embedding cache ${JSON.stringify((enc as { embedding_cache?: unknown }).embedding_cache ?? {})})`,
  );
}

if (perModel.length > 0)
  console.log('\nPer model on a 1920x1080 JPEG (ms, mean of 20 runs after 2 warm-ups; xray 5; sam = encoder + decoder for one click):');
if (perModel.length > 0) console.table(perModel);
console.log(`\nAperture platform benchmark (this machine; API and worker on ${databaseUrl ? 'PostgreSQL' : 'SQLite'}):`);
console.table(Object.entries(results).map(([metric, value]) => ({ metric, value })));
writeFileSync(
  join(root, 'tmp/bench.json'),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      database: databaseUrl ? 'postgresql' : 'sqlite',
      per_model: perModel,
      targets,
      results,
    },
    null,
    2,
  ),
);
if (targets.length > 0) {
  console.log('\nTargets (each ratio measured in this run, on this machine):');
  console.table(targets);
}
console.log('written to tmp/bench.json');
