import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Counter, Histogram } from 'prom-client';
import type { Job } from '@aperture/database/entities/job.entity.js';
import { JOB_BUCKETS, METRIC, Metrics, PHASE_BUCKETS } from '@aperture/metrics/metrics.js';
import type { EmbeddingCacheStats } from '@aperture/models/model-status.js';
import { ModelAgent } from './models/model-agent.service.js';

/** How an attempt of a job ended: done, failed for good, back to the queue for another attempt, or stopped. */
export type JobOutcome = 'completed' | 'failed' | 'retried' | 'cancelled';

/** The phases of one inference (`phase` label): as the model statistics measure them, decode on its own. */
export const INFERENCE_PHASES = ['queue', 'decode', 'preprocess', 'run', 'postprocess'] as const;

/**
 * What the worker records where jobs run: queue wait and duration per job type and outcome, per model inferences and
 * phase times (from the model registry's inference events), and the SAM embedding cache's hits and misses (its
 * counters, read at scrape time).
 */
@Injectable()
export class WorkerMetrics implements OnModuleInit, OnModuleDestroy {
  private readonly wait: Histogram<'type'>;
  private readonly duration: Histogram<'type' | 'outcome'>;
  private readonly inferences: Counter<'model' | 'outcome'>;
  private readonly phases: Histogram<'model' | 'phase'>;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly metrics: Metrics,
    private readonly models: ModelAgent,
  ) {
    this.wait = metrics.histogram({
      name: METRIC.jobQueueWait,
      help: 'Time a job attempt waited from being queued (or re-queued for a retry) to being started, per job type',
      labelNames: ['type'],
      buckets: JOB_BUCKETS,
    });
    this.duration = metrics.histogram({
      name: METRIC.jobDuration,
      help: 'Duration of a job attempt on this worker, per job type and outcome (completed, failed, retried, cancelled)',
      labelNames: ['type', 'outcome'],
      buckets: JOB_BUCKETS,
    });
    this.inferences = metrics.counter({
      name: METRIC.modelInferences,
      help: 'Inferences per model and outcome (success: a finished inference; failure: a failed model run)',
      labelNames: ['model', 'outcome'],
    });
    this.phases = metrics.histogram({
      name: METRIC.modelPhase,
      help: 'Time of each phase of a successful inference per model: queue, decode, preprocess, run, postprocess',
      labelNames: ['model', 'phase'],
      buckets: PHASE_BUCKETS,
    });
    const cache = (): Map<string, EmbeddingCacheStats> => this.embeddingCaches();
    const cacheCounter = (name: string, help: string, field: 'hits' | 'misses' | 'evictions'): void => {
      metrics.counter({
        name,
        help,
        labelNames: ['model'],
        collect() {
          this.reset();
          for (const [model, s] of cache()) this.inc({ model }, s[field]);
        },
      });
    };
    cacheCounter(METRIC.embeddingCacheHits, 'SAM embedding cache lookups answered from the cache (no encoder run), per model', 'hits');
    cacheCounter(METRIC.embeddingCacheMisses, 'SAM embedding cache lookups that ran the encoder, per model', 'misses');
    cacheCounter(METRIC.embeddingCacheEvictions, 'SAM embeddings dropped to stay within SAM_EMBEDDING_CACHE_MB, per model', 'evictions');
    metrics.gauge({
      name: METRIC.embeddingCacheBytes,
      help: 'Bytes the SAM embedding cache holds, per model',
      labelNames: ['model'],
      collect() {
        this.reset();
        for (const [model, s] of cache()) this.set({ model }, s.bytes);
      },
    });
  }

  onModuleInit(): void {
    this.unsubscribe = this.models.registry.onInference((e) => {
      this.inferences.inc({ model: e.model, outcome: e.outcome });
      if (e.outcome !== 'success') return;
      const phase = (name: (typeof INFERENCE_PHASES)[number], ms: number | undefined): void => {
        if (ms !== undefined && Number.isFinite(ms) && ms >= 0) this.phases.observe({ model: e.model, phase: name }, ms / 1000);
      };
      phase('queue', e.queueMs);
      phase('decode', e.decodeMs);
      phase('preprocess', e.preprocessMs);
      phase('run', e.computeMs);
      phase('postprocess', e.postprocessMs);
    });
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
  }

  /**
   * Starts timing one attempt of a claimed job (and records how long it waited in the queue); call the returned
   * function once with its outcome (later calls are ignored).
   */
  jobStarted(job: Pick<Job, 'type' | 'queuedAt' | 'startedAt'>): (outcome: JobOutcome) => void {
    if (job.startedAt) this.wait.observe({ type: job.type }, Math.max(0, job.startedAt.getTime() - job.queuedAt.getTime()) / 1000);
    const t0 = performance.now();
    let ended = false;
    return (outcome) => {
      if (ended) return;
      ended = true;
      this.duration.observe({ type: job.type, outcome }, (performance.now() - t0) / 1000);
    };
  }

  /** The embedding caches' counters of the models that have one (SAM), from the registry's statistics. */
  private embeddingCaches(): Map<string, EmbeddingCacheStats> {
    const out = new Map<string, EmbeddingCacheStats>();
    for (const s of this.models.registry.statuses()) if (s.stats.embedding_cache) out.set(s.name, s.stats.embedding_cache);
    return out;
  }
}
