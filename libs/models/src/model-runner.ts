import { Injectable } from '@nestjs/common';
import type { RunOptions } from '@aperture/inference/session-host.js';
import type { InputTensor, OutputTensor } from '@aperture/inference/session-types.js';
import { PermanentJobError } from '@aperture/queue/job-handler.js';
import type { ModelEntry, ModelKind } from './manifest.js';
import { ModelError, ModelRegistry, UnknownModelError } from './model-registry.js';

/** Milliseconds of each phase of one model call. */
export interface PhaseMs {
  preprocessMs: number;
  computeMs: number;
  postprocessMs: number;
}

/**
 * What the caller measured before the pipeline ran: the time the job waited in the queue and the time it took to
 * read and decode the image. Both go into the statistics of the inference they are passed to (once).
 */
export interface InferenceTiming {
  queueMs?: number | undefined;
  decodeMs?: number | undefined;
}

/**
 * What every model pipeline shares: the registry lookup, the runs, the per-model statistics and the mapping of
 * model errors to job errors. A model that is unknown, of the wrong kind, cannot be loaded or run, or whose output
 * does not fit its contract fails the job for good (PermanentJobError with the ModelError's message): retrying
 * cannot fix it.
 */
@Injectable()
export class ModelRunner {
  constructor(readonly registry: ModelRegistry) {}

  /**
   * The model a job names, optionally of one of the given kinds: every pipeline's lookup by name. A model the
   * registry does not have yet is fetched first (ModelRegistry.resolve: an installed model whose announcement this
   * worker missed); unknown after that, or of another kind, fails the job for good.
   */
  async resolve(name: string, kinds?: readonly ModelKind[]): Promise<ModelEntry> {
    let model: ModelEntry;
    try {
      model = await this.registry.resolve(name);
    } catch (e) {
      if (e instanceof UnknownModelError) throw new PermanentJobError(e.message);
      throw e;
    }
    return ofKinds(model, kinds);
  }

  /** A model the registry already has (one a previous resolve() returned), optionally of one of the given kinds. */
  entry(name: string, kinds?: readonly ModelKind[]): ModelEntry {
    let model: ModelEntry;
    try {
      model = this.registry.model(name);
    } catch (e) {
      if (e instanceof UnknownModelError) throw new PermanentJobError(e.message);
      throw e;
    }
    return ofKinds(model, kinds);
  }

  /** Runs one file of a model (loading it first if needed); the registry records the compute time. */
  async run(
    model: ModelEntry,
    role: string,
    inputs: Record<string, InputTensor>,
    runOptions?: RunOptions,
  ): Promise<{ outputs: Record<string, OutputTensor>; computeMs: number; generation: number }> {
    try {
      return await this.registry.run(model.name, role, inputs, runOptions);
    } catch (e) {
      throw asJobError(e);
    }
  }

  /** Post-processing failures (an output that does not fit the contract) are the model's, not the caller's. */
  post<T>(model: ModelEntry, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof ModelError || e instanceof PermanentJobError) throw asJobError(e);
      throw new PermanentJobError(`Model ${model.name}: ${(e as Error).message}`);
    }
  }

  /**
   * Adds one finished inference of a model to its statistics: the caller's queue and decode time (decoding counts
   * as pre-processing) and the phases of the pipeline. Compute is recorded by the registry at each run.
   */
  record(model: ModelEntry, timing: InferenceTiming, t: PhaseMs): void {
    const decodeMs = timing.decodeMs ?? 0;
    this.registry.record(model.name, {
      totalMs: decodeMs + t.preprocessMs + t.computeMs + t.postprocessMs,
      queueMs: timing.queueMs,
      preprocessMs: decodeMs + t.preprocessMs,
      postprocessMs: t.postprocessMs,
      decodeMs: timing.decodeMs,
      computeMs: t.computeMs,
    });
  }
}

function ofKinds(model: ModelEntry, kinds: readonly ModelKind[] | undefined): ModelEntry {
  if (kinds && !kinds.includes(model.kind)) {
    throw new PermanentJobError(`Model ${model.name} is a ${model.kind}; expected ${kinds.join(' or ')}`);
  }
  return model;
}

/** ModelError → PermanentJobError with its message; anything else unchanged. */
export function asJobError(e: unknown): unknown {
  return e instanceof ModelError ? new PermanentJobError(e.message) : e;
}
