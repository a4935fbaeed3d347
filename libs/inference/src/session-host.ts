import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type {
  InputTensor,
  OutputTensor,
  RunResult,
  SessionInfo,
  SessionLoadOptions,
  WorkerRequest,
  WorkerResponse,
} from './session-types.js';

/**
 * Runs onnxruntime-node sessions in a small pool of worker threads. onnxruntime-node's run() executes the native
 * Run synchronously on the calling thread (it only defers with setImmediate), so a session on the main thread
 * stalls every timer, socket and health probe for the whole inference; here only a worker stalls.
 *
 * Each session lives in one worker (the one with the fewest sessions when loaded); runs on a session are serialized
 * by its worker, runs on sessions of different workers proceed in parallel.
 */

export class SessionNotLoadedError extends Error {
  constructor(sessionId: string) {
    super(`Session ${sessionId} is not loaded`);
    this.name = 'SessionNotLoadedError';
  }
}

class SessionWorkerError extends Error {
  constructor(message: string, name = 'SessionWorkerError') {
    super(message);
    this.name = name;
  }
}

export interface SessionHostOptions {
  /** Worker threads; default 1. */
  poolSize?: number;
  /** The worker script; default session-worker.js beside this file (dist), else session-worker.ts (tests). */
  workerUrl?: URL;
}

export interface RunOptions {
  /** Only these outputs are fetched. Default: all. */
  outputNames?: readonly string[];
  /**
   * Move the input buffers to the worker instead of copying them (default true). The caller's typed arrays are
   * detached afterwards. Arrays that are views on a larger or shared buffer are always copied.
   */
  transferInputs?: boolean;
}

interface Pending {
  resolve: (v: SessionInfo | RunResult | null) => void;
  reject: (e: Error) => void;
  slot: number;
}

interface Slot {
  worker: Worker;
  sessions: Set<string>;
  pending: number;
}

function defaultWorkerUrl(): URL {
  const js = new URL('./session-worker.js', import.meta.url);
  return existsSync(fileURLToPath(js)) ? js : new URL('./session-worker.ts', import.meta.url);
}

function checkInput(name: string, t: InputTensor): void {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (!t.dims.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`Input ${name} has invalid dims [${t.dims.join(', ')}]`);
  if (t.data.length !== n) throw new Error(`Input ${name} has ${t.data.length} values for dims [${t.dims.join(', ')}]`);
  const ok =
    (t.type === 'float32' && t.data instanceof Float32Array) ||
    (t.type === 'int32' && t.data instanceof Int32Array) ||
    (t.type === 'int64' && t.data instanceof BigInt64Array) ||
    ((t.type === 'uint8' || t.type === 'bool') && t.data instanceof Uint8Array);
  if (!ok) throw new Error(`Input ${name}: data does not match type ${t.type}`);
}

/** The named float32 output of a run, narrowed for the post-processors; throws if absent or of another type. */
export function float32Output(outputs: Record<string, OutputTensor>, name: string): { data: Float32Array; dims: number[] } {
  const t = outputs[name];
  if (!t) throw new Error(`Output ${name} is missing (have ${Object.keys(outputs).join(', ') || 'none'})`);
  if (!(t.data instanceof Float32Array)) throw new Error(`Output ${name} is ${t.type}, expected float32`);
  return { data: t.data, dims: t.dims };
}

/** A loaded session: its names and metadata, plus run/release bound to the host. */
export class RemoteSession {
  constructor(
    private readonly host: SessionHost,
    readonly info: SessionInfo,
  ) {}

  get id(): string {
    return this.info.sessionId;
  }

  run(inputs: Record<string, InputTensor>, options?: RunOptions): Promise<Record<string, OutputTensor>> {
    return this.host.run(this.info.sessionId, inputs, options);
  }

  release(): Promise<void> {
    return this.host.release(this.info.sessionId);
  }
}

export class SessionHost {
  private readonly slots: (Slot | undefined)[];
  private readonly workerUrl: URL;
  private readonly pending = new Map<number, Pending>();
  /** sessionId → slot index */
  private readonly sessionSlot = new Map<string, number>();
  private nextId = 1;
  private closed = false;

  constructor(options: SessionHostOptions = {}) {
    const size = options.poolSize ?? 1;
    if (!Number.isInteger(size) || size < 1) throw new Error('poolSize must be a positive integer');
    this.slots = Array.from({ length: size }, () => undefined);
    this.workerUrl = options.workerUrl ?? defaultWorkerUrl();
  }

  /** Loads a model into the least busy worker. Rejects if the file cannot be loaded; CUDA failures fall back to CPU with a warning. */
  async load(modelPath: string, options: SessionLoadOptions = {}): Promise<RemoteSession> {
    const slot = this.pickSlot();
    const sessionId = randomUUID();
    this.slotAt(slot).sessions.add(sessionId);
    try {
      const info = (await this.request(slot, { id: 0, op: 'load', sessionId, modelPath, options })) as SessionInfo;
      this.sessionSlot.set(sessionId, slot);
      return new RemoteSession(this, info);
    } catch (e) {
      this.slots[slot]?.sessions.delete(sessionId);
      throw e;
    }
  }

  /** Runs a loaded session; rejects with SessionNotLoadedError after release() (or if its worker died). */
  async run(sessionId: string, inputs: Record<string, InputTensor>, options: RunOptions = {}): Promise<Record<string, OutputTensor>> {
    const slot = this.sessionSlot.get(sessionId);
    if (slot === undefined) throw new SessionNotLoadedError(sessionId);
    for (const [name, t] of Object.entries(inputs)) checkInput(name, t);
    const transfer: ArrayBuffer[] = [];
    if (options.transferInputs ?? true) {
      const seen = new Set<ArrayBuffer>();
      for (const t of Object.values(inputs)) {
        const buf = t.data.buffer;
        if (buf instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === buf.byteLength) seen.add(buf);
      }
      transfer.push(...seen);
    }
    const req: WorkerRequest = { id: 0, op: 'run', sessionId, inputs };
    if (options.outputNames) req.outputNames = options.outputNames;
    const result = (await this.request(slot, req, transfer)) as RunResult;
    return result.outputs;
  }

  /** Releases the native session (session.release()) in its worker. Idempotent. */
  async release(sessionId: string): Promise<void> {
    const slot = this.sessionSlot.get(sessionId);
    if (slot === undefined) return;
    this.sessionSlot.delete(sessionId); // runs issued from now on reject at once
    this.slots[slot]?.sessions.delete(sessionId);
    await this.request(slot, { id: 0, op: 'release', sessionId });
  }

  /** Loaded session ids. */
  sessionIds(): string[] {
    return [...this.sessionSlot.keys()];
  }

  /** Terminates every worker; their sessions are gone and pending requests reject. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.slots.filter((s): s is Slot => s !== undefined).map((s) => s.worker);
    this.slots.fill(undefined);
    this.sessionSlot.clear();
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new SessionWorkerError('Session host closed'));
    }
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private pickSlot(): number {
    if (this.closed) throw new SessionWorkerError('Session host closed');
    let best = 0;
    let bestLoad = Infinity;
    this.slots.forEach((s, i) => {
      const load = s ? s.sessions.size * 1000 + s.pending : 0;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    });
    return best;
  }

  private slotAt(i: number): Slot {
    const existing = this.slots[i];
    if (existing) return existing;
    const worker = new Worker(this.workerUrl);
    const slot: Slot = { worker, sessions: new Set(), pending: 0 };
    worker.on('message', (msg: WorkerResponse) => this.onMessage(msg));
    worker.on('error', (e) => this.onWorkerGone(i, worker, e));
    worker.on('exit', (code) => this.onWorkerGone(i, worker, new SessionWorkerError(`Session worker exited with code ${code}`)));
    this.slots[i] = slot;
    return slot;
  }

  private request(slotIndex: number, req: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<SessionInfo | RunResult | null> {
    const slot = this.slotAt(slotIndex);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot: slotIndex });
      slot.pending++;
      try {
        slot.worker.postMessage({ ...req, id }, transfer);
      } catch (e) {
        this.pending.delete(id);
        slot.pending--;
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  private onMessage(msg: WorkerResponse): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    const slot = this.slots[p.slot];
    if (slot) slot.pending--;
    if (msg.ok) p.resolve(msg.result);
    else
      p.reject(
        msg.error.name === 'SessionNotLoadedError'
          ? Object.assign(new SessionNotLoadedError(''), { message: msg.error.message })
          : new SessionWorkerError(msg.error.message, msg.error.name),
      );
  }

  /** A crashed or exited worker: its sessions are lost, its pending requests reject; the slot restarts on next use. */
  private onWorkerGone(i: number, worker: Worker, err: Error): void {
    const slot = this.slots[i];
    if (!slot || slot.worker !== worker) return;
    this.slots[i] = undefined;
    for (const id of slot.sessions) this.sessionSlot.delete(id);
    for (const [id, p] of this.pending) {
      if (p.slot !== i) continue;
      this.pending.delete(id);
      p.reject(err instanceof Error ? err : new SessionWorkerError(String(err)));
    }
    void worker.terminate();
  }
}
