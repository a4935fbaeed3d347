// The model state and statistics that workers report and the API aggregates: plain types, no runtime.

export type ModelState = 'available' | 'loading' | 'loaded' | 'failed';

/** Cumulative count and milliseconds of one phase (Triton's inference_stats entries, in ms). */
export interface PhaseStats {
  count: number;
  total_ms: number;
}

/** Per-model statistics, Triton style: counts, and cumulative ms of each phase of an inference. */
export interface ModelStats {
  inference_count: number;
  success: PhaseStats;
  failure: PhaseStats;
  queue: PhaseStats;
  preprocess: PhaseStats;
  compute: PhaseStats;
  postprocess: PhaseStats;
  last_inference_at: string | null;
  /** SAM models: the worker's image-embedding cache (embedding-cache.ts). Absent for other kinds. */
  embedding_cache?: EmbeddingCacheStats;
}

/** One model's share of a SAM embedding cache: cumulative lookups and evictions, and what it holds now. */
export interface EmbeddingCacheStats {
  /** Lookups answered from the cache (no encoder run). */
  hits: number;
  /** Lookups that ran the encoder (including every lookup while the cache is disabled). */
  misses: number;
  /** Entries dropped to stay within the byte bound (not those dropped because the model was unloaded or reloaded). */
  evictions: number;
  entries: number;
  bytes: number;
}

export interface ModelStatus {
  name: string;
  state: ModelState;
  /** Why it failed, or why the last reload failed while the previous sessions kept serving. */
  reason: string | null;
  loaded_at: string | null;
  last_used_at: string | null;
  /** Estimated memory of the loaded sessions (the weights' size on disk); 0 when not loaded. */
  memory_bytes: number;
  execution_provider: string | null;
  warnings: string[];
  stats: ModelStats;
}
