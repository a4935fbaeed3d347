/**
 * Types shared by session-host.ts (caller side) and session-worker.ts (the worker thread). Type-only: the worker
 * imports this file with `import type`, so it runs unchanged under Node's TypeScript type stripping.
 */

export type InputTensor =
  | { type: 'float32'; dims: readonly number[]; data: Float32Array }
  | { type: 'int32'; dims: readonly number[]; data: Int32Array }
  | { type: 'int64'; dims: readonly number[]; data: BigInt64Array }
  | { type: 'uint8'; dims: readonly number[]; data: Uint8Array }
  | { type: 'bool'; dims: readonly number[]; data: Uint8Array };

export type OutputData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface OutputTensor {
  /** ONNX Runtime's type name: 'float32', 'int64', 'bool', … */
  type: string;
  dims: number[];
  data: OutputData;
}

export type ExecutionProviderName = 'cpu' | 'cuda';

export interface SessionLoadOptions {
  /** Threads inside one operator; ORT's 0 = one per physical core. Default 1 (the pool gives parallelism). */
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  /**
   * Whether ORT's pool threads spin-wait for work between and after runs (ORT's default). Default false: the threads
   * sleep instead. Spinning buys little latency on a dedicated core, but in a worker whose runs are separated by
   * decoding, queue and database work, and beside other processes, the spinning threads took about as much CPU as the
   * model itself (measured: 51 ms of session-thread CPU per 1920x1080 detector run spinning, 11 ms not).
   */
  allowSpinning?: boolean;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'layout' | 'all';
  /** In order of preference; 'cpu' is always the final fallback. Default ['cpu']. */
  executionProviders?: readonly ExecutionProviderName[];
  /** CUDA device when 'cuda' is requested. Default 0. */
  deviceId?: number;
}

export interface ValueMetadata {
  name: string;
  isTensor: boolean;
  /** Element type for tensors ('float32', …). */
  type?: string;
  /** Dimensions; symbolic ones are strings ('batch', 'n'). */
  shape?: (number | string)[];
}

export interface SessionInfo {
  sessionId: string;
  modelPath: string;
  inputNames: string[];
  outputNames: string[];
  inputMetadata: ValueMetadata[];
  outputMetadata: ValueMetadata[];
  /** The provider the session actually runs on. */
  executionProvider: ExecutionProviderName;
  /** e.g. that CUDA was requested but could not be loaded, so the session fell back to the CPU. */
  warnings: string[];
  loadMs: number;
}

export type WorkerRequest =
  | { id: number; op: 'load'; sessionId: string; modelPath: string; options: SessionLoadOptions }
  | { id: number; op: 'run'; sessionId: string; inputs: Record<string, InputTensor>; outputNames?: readonly string[] }
  | { id: number; op: 'release'; sessionId: string };

export interface RunResult {
  outputs: Record<string, OutputTensor>;
  runMs: number;
}

export type WorkerResponse =
  { id: number; ok: true; result: SessionInfo | RunResult | null } | { id: number; ok: false; error: { name: string; message: string } };
