/**
 * Worker-thread side of SessionHost: owns onnxruntime-node sessions so that their synchronous native run()
 * blocks this thread, never the caller's event loop. Only erasable TypeScript (type imports), so Node can run
 * the .ts directly under type stripping (tests) as well as tsc's .js output (dist).
 */
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { InferenceSession } from 'onnxruntime-node';
import type {
  ExecutionProviderName,
  OutputTensor,
  RunResult,
  SessionInfo,
  SessionLoadOptions,
  ValueMetadata,
  WorkerRequest,
  WorkerResponse,
} from './session-types.js';

const port = parentPort;
if (!port) throw new Error('session-worker must run in a worker thread');

const sessions = new Map<string, { session: InferenceSession; path: string }>();

function baseOptions(o: SessionLoadOptions): InferenceSession.SessionOptions {
  const opts: InferenceSession.SessionOptions = {
    intraOpNumThreads: o.intraOpNumThreads ?? 1,
    graphOptimizationLevel: o.graphOptimizationLevel ?? 'all',
  };
  if (!o.allowSpinning) {
    const spin = { allow_spinning: '0' };
    opts.extra = { session: { intra_op: spin, inter_op: spin } };
  }
  if (o.interOpNumThreads !== undefined) opts.interOpNumThreads = o.interOpNumThreads;
  return opts;
}

function metadataOf(list: readonly InferenceSession.ValueMetadata[]): ValueMetadata[] {
  return list.map((m) =>
    m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false },
  );
}

async function load(sessionId: string, modelPath: string, o: SessionLoadOptions): Promise<SessionInfo> {
  if (sessions.has(sessionId)) throw new Error(`Session ${sessionId} is already loaded`);
  const t0 = performance.now();
  const warnings: string[] = [];
  let provider: ExecutionProviderName = 'cpu';
  let session: InferenceSession | undefined;
  if (o.executionProviders?.includes('cuda')) {
    try {
      session = await ort.InferenceSession.create(modelPath, {
        ...baseOptions(o),
        executionProviders: [{ name: 'cuda', deviceId: o.deviceId ?? 0 }, 'cpu'],
      });
      provider = 'cuda';
    } catch (e) {
      warnings.push(`CUDA execution provider unavailable, using CPU: ${(e as Error).message}`);
    }
  }
  session ??= await ort.InferenceSession.create(modelPath, { ...baseOptions(o), executionProviders: ['cpu'] });
  sessions.set(sessionId, { session, path: modelPath });
  return {
    sessionId,
    modelPath,
    inputNames: [...session.inputNames],
    outputNames: [...session.outputNames],
    inputMetadata: metadataOf(session.inputMetadata),
    outputMetadata: metadataOf(session.outputMetadata),
    executionProvider: provider,
    warnings,
    loadMs: performance.now() - t0,
  };
}

async function run(req: Extract<WorkerRequest, { op: 'run' }>): Promise<RunResult> {
  const entry = sessions.get(req.sessionId);
  if (!entry) throw Object.assign(new Error(`Session ${req.sessionId} is not loaded`), { name: 'SessionNotLoadedError' });
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(req.inputs)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  const t0 = performance.now();
  const res = req.outputNames ? await entry.session.run(feeds, [...req.outputNames]) : await entry.session.run(feeds);
  const runMs = performance.now() - t0;
  const outputs: Record<string, OutputTensor> = {};
  for (const [name, t] of Object.entries(res)) {
    outputs[name] = { type: t.type, dims: [...t.dims], data: t.data as OutputTensor['data'] };
  }
  return { outputs, runMs };
}

async function release(sessionId: string): Promise<null> {
  const entry = sessions.get(sessionId);
  if (!entry) return null;
  sessions.delete(sessionId);
  await entry.session.release();
  return null;
}

/** Buffers to transfer (not copy): each distinct, non-shared ArrayBuffer backing an output exactly. */
function transferList(result: RunResult): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of Object.values(result.outputs)) {
    const buf = t.data.buffer;
    if (buf instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === buf.byteLength) seen.add(buf);
  }
  return [...seen];
}

port.on('message', (req: WorkerRequest) => {
  const work = req.op === 'load' ? load(req.sessionId, req.modelPath, req.options) : req.op === 'run' ? run(req) : release(req.sessionId);
  work.then(
    (result) => {
      const msg: WorkerResponse = { id: req.id, ok: true, result };
      if (req.op !== 'run' || result === null) return port.postMessage(msg);
      try {
        port.postMessage(msg, transferList(result as RunResult));
      } catch {
        port.postMessage(msg); // a buffer ORT owns that cannot be detached: structured clone copies it
      }
    },
    (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      const msg: WorkerResponse = { id: req.id, ok: false, error: { name: err.name, message: err.message } };
      port.postMessage(msg);
    },
  );
});
