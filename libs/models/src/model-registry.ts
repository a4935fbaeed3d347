import { resolve } from 'node:path';
import { readOnnxMetadataFile } from '@aperture/inference/onnx-metadata.js';
import type { RemoteSession, RunOptions, SessionHost } from '@aperture/inference/session-host.js';
import type { InputTensor, OutputTensor, SessionLoadOptions, ValueMetadata } from '@aperture/inference/session-types.js';
import { checkContract, type LoadedFileView } from './model-contracts.js';
import type { ModelEntry, ModelManifest } from './manifest.js';
import type { ModelState, ModelStats, ModelStatus, PhaseStats } from './model-status.js';
import { warmupFeeds } from './warmup.js';

/** A model that cannot be loaded or run as its contract says (problem code MODEL_ERROR). */
export class ModelError extends Error {
  readonly code = 'MODEL_ERROR';
  constructor(message: string) {
    super(message);
    this.name = 'ModelError';
  }
}

export class UnknownModelError extends Error {
  constructor(readonly model: string) {
    super(`Model ${model} does not exist.`);
    this.name = 'UnknownModelError';
  }
}

/** The timings a caller measured around run(): time waiting in the queue, pre- and post-processing. */
export interface PhaseTimings {
  queueMs?: number;
  /** Includes decodeMs when given (decoding counts as pre-processing in the statistics). */
  preprocessMs?: number;
  postprocessMs?: number;
  /** The part of preprocessMs spent reading and decoding the image: only for the inference listeners. */
  decodeMs?: number;
  /** The model runs of this inference (the statistics take them from run()): only for the inference listeners. */
  computeMs?: number;
}

/**
 * One finished inference as the listeners (the worker's metrics) see it: its outcome and, for a success, each phase
 * on its own (preprocessMs without decodeMs). A failure is one failed run() of the model.
 */
export interface InferenceEvent {
  model: string;
  outcome: 'success' | 'failure';
  totalMs: number;
  queueMs?: number | undefined;
  decodeMs?: number | undefined;
  preprocessMs?: number | undefined;
  computeMs?: number | undefined;
  postprocessMs?: number | undefined;
}

export type InferenceListener = (event: InferenceEvent) => void;

export interface ModelRegistryOptions {
  /** Folder the manifest's file paths are relative to. */
  dir: string;
  sessionOptions?: SessionLoadOptions;
  /** Past this estimated memory, the least recently used idle models are unloaded. 0 = no limit. */
  memoryBudgetBytes?: number;
  /** Run each file once on zero inputs at load (warmup.ts): the first request then runs warm. Default false. */
  warmup?: boolean;
  /** Called after every state change (to publish the state). */
  onChange?: (name: string) => void;
  /**
   * Asked by resolve() for a name the registry does not have, before it gives up: makes the model known (the worker
   * fetches an installed model whose announcement it missed and add()s it). Its errors reach resolve()'s caller.
   */
  fetchMissing?: (name: string) => Promise<unknown>;
  log?: (level: 'log' | 'warn' | 'error', message: string) => void;
}

/**
 * Something that keeps per-model state derived from a model's sessions (the SAM embedding cache): told when those
 * sessions are replaced (reload) or released (unload, memory budget, shutdown), and able to add to the statistics.
 */
export interface ModelSessionObserver {
  /** The sessions of `model` changed; what the previous ones produced is stale. */
  sessionsChanged(model: string): void;
  /** Merged into the model's statistics by status(). */
  stats?(model: string): Partial<ModelStats>;
}

interface Slot {
  model: ModelEntry;
  state: ModelState;
  reason: string | null;
  sessions: Map<string, RemoteSession> | null;
  /** Bumped whenever `sessions` is replaced or released: tells outputs of different loads apart. */
  generation: number;
  loadedAt: Date | null;
  lastUsed: number;
  inFlight: number;
  /** Inside a serialized load/unload. */
  busy: number;
  provider: string | null;
  warnings: string[];
  /** Serializes load/unload of this model. */
  chain: Promise<unknown>;
  stats: ModelStats;
}

const phase = (): PhaseStats => ({ count: 0, total_ms: 0 });
const emptyStats = (): ModelStats => ({
  inference_count: 0,
  success: phase(),
  failure: phase(),
  queue: phase(),
  preprocess: phase(),
  compute: phase(),
  postprocess: phase(),
  last_inference_at: null,
});
const add = (p: PhaseStats, ms: number | undefined): void => {
  if (ms === undefined || !Number.isFinite(ms)) return;
  p.count++;
  p.total_ms += ms;
};

/**
 * The worker's models: states (available → loading → loaded | failed), lazy load on first use, loads and unloads
 * of one model serialized, a failed reload that keeps the previous sessions serving, least-recently-used unloading
 * under a memory budget, and per-model statistics. Sessions live in the SessionHost's worker threads, so runs never
 * block this thread.
 */
export class ModelRegistry {
  private readonly slots = new Map<string, Slot>();
  private readonly observers = new Set<ModelSessionObserver>();
  private readonly listeners = new Set<InferenceListener>();

  constructor(
    manifest: ModelManifest,
    private readonly host: SessionHost,
    private readonly options: ModelRegistryOptions,
  ) {
    for (const model of manifest.models) this.addSlot(model);
  }

  /** Adds a model (one installed at run time); it loads on first use like the others. A taken name is an error. */
  add(model: ModelEntry): void {
    if (this.slots.has(model.name)) throw new ModelError(`Model ${model.name} already exists`);
    this.addSlot(model);
    this.options.onChange?.(model.name);
  }

  /** Unloads a model and forgets it (an installed model removed); unknown names are ignored. */
  async remove(name: string): Promise<void> {
    const s = this.slots.get(name);
    if (!s) return;
    await this.serialize(s, () => this.unloadSlot(s, 'removed'));
    if (this.slots.get(name) === s) this.slots.delete(name);
    this.options.onChange?.(name);
  }

  has(name: string): boolean {
    return this.slots.has(name);
  }

  private addSlot(model: ModelEntry): void {
    this.slots.set(model.name, {
      model,
      state: 'available',
      reason: null,
      sessions: null,
      generation: 0,
      loadedAt: null,
      lastUsed: 0,
      inFlight: 0,
      busy: 0,
      provider: null,
      warnings: [],
      chain: Promise.resolve(),
      stats: emptyStats(),
    });
  }

  names(): string[] {
    return [...this.slots.keys()];
  }

  model(name: string): ModelEntry {
    return this.slot(name).model;
  }

  /**
   * A model by name for a job: like model(), but a name the registry does not have is first handed to the
   * fetchMissing option (an installed model this process has not heard of yet). UnknownModelError if still unknown.
   */
  async resolve(name: string): Promise<ModelEntry> {
    if (!this.slots.has(name) && this.options.fetchMissing) await this.options.fetchMissing(name);
    return this.model(name);
  }

  status(name: string): ModelStatus {
    const s = this.slot(name);
    return {
      name,
      state: s.state,
      reason: s.reason,
      loaded_at: s.loadedAt?.toISOString() ?? null,
      last_used_at: s.lastUsed ? new Date(s.lastUsed).toISOString() : null,
      memory_bytes: s.sessions ? this.estimate(s.model) : 0,
      execution_provider: s.provider,
      warnings: [...s.warnings],
      stats: this.stats(s),
    };
  }

  /**
   * Registers an observer of session changes (see ModelSessionObserver); returns its removal. Observers are called
   * synchronously, right after the sessions are swapped or dropped and before the old ones are released.
   */
  observe(observer: ModelSessionObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Which load of the model is current (see run()'s `generation`); changes at every load, reload and unload. */
  generation(name: string): number {
    return this.slot(name).generation;
  }

  statuses(): ModelStatus[] {
    return this.names().map((n) => this.status(n));
  }

  /** Estimated memory of all loaded models. */
  memoryBytes(): number {
    let total = 0;
    for (const s of this.slots.values()) if (s.sessions) total += this.estimate(s.model);
    return total;
  }

  /**
   * Loads a model (or reloads it when loaded: the new sessions replace the old only once they load and fit the
   * contract; if not, the old ones keep serving and `reason` says why the reload failed).
   */
  load(name: string): Promise<ModelStatus> {
    const s = this.slot(name);
    return this.serialize(s, async () => {
      await this.loadSlot(s);
      return this.status(name);
    });
  }

  unload(name: string): Promise<ModelStatus> {
    const s = this.slot(name);
    return this.serialize(s, async () => {
      await this.unloadSlot(s, 'unloaded on request');
      return this.status(name);
    });
  }

  /**
   * Runs one file of a model (loading the model first if needed) and records the compute time; the caller passes
   * the timings it measured itself (queue, pre/post-processing) with record() or here.
   */
  async run(
    name: string,
    role: string,
    inputs: Record<string, InputTensor>,
    runOptions?: RunOptions,
  ): Promise<{ outputs: Record<string, OutputTensor>; computeMs: number; generation: number }> {
    const s = this.slot(name);
    const { sessions, generation } = await this.ensureLoaded(s);
    const session = sessions.get(role);
    if (!session) throw new ModelError(`Model ${name} has no file with role ${role} (has ${[...sessions.keys()].join(', ')})`);
    s.inFlight++;
    s.lastUsed = Date.now();
    const t0 = performance.now();
    try {
      const outputs = await session.run(inputs, runOptions);
      const computeMs = performance.now() - t0;
      add(s.stats.compute, computeMs);
      return { outputs, computeMs, generation };
    } catch (e) {
      const failedMs = performance.now() - t0;
      add(s.stats.failure, failedMs);
      s.stats.inference_count++;
      s.stats.last_inference_at = new Date().toISOString();
      this.emit({ model: name, outcome: 'failure', totalMs: failedMs });
      throw new ModelError(`Model ${name} (${role}) failed to run: ${(e as Error).message}`);
    } finally {
      s.inFlight--;
      s.lastUsed = Date.now();
    }
  }

  /** The inputs of one file of a model as its graph declares them (symbolic dimensions are strings); loads the model if needed. */
  async inputMetadata(name: string, role: string): Promise<ValueMetadata[]> {
    const { sessions } = await this.ensureLoaded(this.slot(name));
    const session = sessions.get(role);
    if (!session) throw new ModelError(`Model ${name} has no file with role ${role} (has ${[...sessions.keys()].join(', ')})`);
    return session.info.inputMetadata;
  }

  /** Records one finished inference request of a model (after its run() calls succeeded). */
  record(name: string, t: PhaseTimings & { totalMs: number }): void {
    const s = this.slot(name);
    s.stats.inference_count++;
    add(s.stats.success, t.totalMs);
    add(s.stats.queue, t.queueMs);
    add(s.stats.preprocess, t.preprocessMs);
    add(s.stats.postprocess, t.postprocessMs);
    s.stats.last_inference_at = new Date().toISOString();
    const preprocessMs = t.preprocessMs === undefined ? undefined : Math.max(0, t.preprocessMs - (t.decodeMs ?? 0));
    this.emit({ ...t, model: name, outcome: 'success', preprocessMs });
  }

  /** Calls listener after every finished inference (record()) and every failed run; returns its removal. */
  onInference(listener: InferenceListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: InferenceEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        /* a listener's problem is not the registry's */
      }
    }
  }

  /** Releases every session (shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.slots.values()].map((s) => this.serialize(s, () => this.unloadSlot(s, 'shutdown'))));
  }

  // ---------------------------------------------------------------- internals

  private slot(name: string): Slot {
    const s = this.slots.get(name);
    if (!s) throw new UnknownModelError(name);
    return s;
  }

  private estimate(model: ModelEntry): number {
    return model.files.reduce((a, f) => a + f.size_bytes, 0);
  }

  private serialize<T>(s: Slot, fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      s.busy++;
      try {
        return await fn();
      } finally {
        s.busy--;
      }
    };
    const next = s.chain.then(run, run);
    s.chain = next.catch(() => undefined);
    return next;
  }

  private async ensureLoaded(s: Slot): Promise<{ sessions: Map<string, RemoteSession>; generation: number }> {
    if (!s.sessions) {
      await this.serialize(s, async () => {
        if (!s.sessions) await this.loadSlot(s);
      });
    }
    if (!s.sessions) throw new ModelError(`Model ${s.model.name} is not loaded: ${s.reason ?? 'unknown reason'}`);
    return { sessions: s.sessions, generation: s.generation };
  }

  private stats(s: Slot): ModelStats {
    const stats = structuredClone(s.stats);
    for (const o of this.observers) {
      try {
        Object.assign(stats, o.stats?.(s.model.name));
      } catch {
        /* an observer's problem is not the registry's */
      }
    }
    return stats;
  }

  /** The sessions were swapped or dropped: a new generation, and the observers drop what the old ones produced. */
  private sessionsChanged(s: Slot): void {
    s.generation++;
    for (const o of this.observers) {
      try {
        o.sessionsChanged(s.model.name);
      } catch {
        /* an observer's problem is not the registry's */
      }
    }
  }

  private changed(s: Slot): void {
    try {
      this.options.onChange?.(s.model.name);
    } catch {
      /* a listener's problem is not the registry's */
    }
  }

  private async loadSlot(s: Slot): Promise<void> {
    const reload = s.sessions !== null;
    if (!reload) {
      s.state = 'loading';
      s.reason = null;
      this.changed(s);
    }
    await this.makeRoom(s);
    const opened: RemoteSession[] = [];
    try {
      const fresh = new Map<string, RemoteSession>();
      const views: LoadedFileView[] = [];
      for (const f of s.model.files) {
        const path = resolve(this.options.dir, f.path);
        let session: RemoteSession;
        try {
          session = await this.host.load(path, this.options.sessionOptions);
        } catch (e) {
          throw new ModelError(`${f.path} cannot be loaded: ${(e as Error).message}`);
        }
        opened.push(session);
        fresh.set(f.role, session);
        const metadata = await readOnnxMetadataFile(path).catch(() => ({}));
        views.push({ role: f.role, path: f.path, inputs: session.info.inputMetadata, outputs: session.info.outputMetadata, metadata });
      }
      const problems = checkContract(s.model, views);
      if (problems.length) throw new ModelError(`does not fit the ${s.model.contract} contract: ${problems.join('; ')}`);
      if (this.options.warmup) {
        for (const [role, session] of fresh) {
          try {
            await session.run(warmupFeeds(s.model, session.info.inputMetadata));
          } catch (e) {
            throw new ModelError(`the warm-up run of its ${role} file failed: ${(e as Error).message}`);
          }
        }
      }
      const old = s.sessions;
      s.sessions = fresh;
      this.sessionsChanged(s);
      s.state = 'loaded';
      s.reason = null;
      s.loadedAt = new Date();
      s.lastUsed = Date.now();
      s.provider = opened[0]?.info.executionProvider ?? null;
      s.warnings = opened.flatMap((o) => o.info.warnings);
      for (const w of s.warnings) this.options.log?.('warn', `${s.model.name}: ${w}`);
      if (old) await Promise.all([...old.values()].map((o) => o.release().catch(() => undefined)));
      this.options.log?.('log', `${s.model.name} ${reload ? 'reloaded' : 'loaded'} (${s.provider})`);
    } catch (e) {
      await Promise.all(opened.map((o) => o.release().catch(() => undefined)));
      const message = e instanceof ModelError ? e.message : `cannot be loaded: ${(e as Error).message}`;
      if (reload) {
        s.reason = `reload failed, the previous version keeps serving: ${message}`;
      } else {
        s.state = 'failed';
        s.reason = message;
      }
      this.options.log?.('error', `${s.model.name}: ${message}`);
      this.changed(s);
      throw new ModelError(`Model ${s.model.name} ${message}`);
    }
    this.changed(s);
  }

  private async unloadSlot(s: Slot, why: string): Promise<void> {
    const sessions = s.sessions;
    s.sessions = null;
    if (sessions) this.sessionsChanged(s);
    s.state = 'available';
    s.reason = null;
    s.loadedAt = null;
    s.provider = null;
    s.warnings = [];
    if (sessions) {
      await Promise.all([...sessions.values()].map((o) => o.release().catch(() => undefined)));
      this.options.log?.('log', `${s.model.name} unloaded (${why})`);
    }
    this.changed(s);
  }

  /** Unloads least recently used idle models until `s` fits the memory budget. */
  private async makeRoom(s: Slot): Promise<void> {
    const budget = this.options.memoryBudgetBytes ?? 0;
    if (budget <= 0) return;
    const need = this.estimate(s.model);
    const others = (): Slot[] => [...this.slots.values()].filter((o) => o !== s && o.sessions !== null);
    const used = (): number => others().reduce((a, o) => a + this.estimate(o.model), 0);
    while (used() + need > budget) {
      const victim = others()
        .filter((o) => o.inFlight === 0 && o.busy === 0)
        .sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!victim) break; // everything else is busy: go over budget rather than fail a request or deadlock
      await this.serialize(victim, () => this.unloadSlot(victim, `memory budget: making room for ${s.model.name}`));
    }
  }
}
