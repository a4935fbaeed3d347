import { Injectable } from '@nestjs/common';
import {
  collectDefaultMetrics,
  Counter,
  type CounterConfiguration,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from 'prom-client';
import { FastHistogram } from './fast-histogram.js';

/** Every Aperture series starts with this, the process defaults included (`aperture_process_cpu_seconds_total`, …). */
export const METRICS_PREFIX = 'aperture_';

/**
 * The series names, in one place: the code that records them, the tests that scrape them and the Kubernetes
 * autoscalers that query them (checked by a test) all use these.
 */
export const METRIC = {
  httpDuration: `${METRICS_PREFIX}http_request_duration_seconds`,
  queueJobs: `${METRICS_PREFIX}queue_jobs`,
  queueUp: `${METRICS_PREFIX}queue_up`,
  jobsActive: `${METRICS_PREFIX}jobs_active`,
  jobQueueWait: `${METRICS_PREFIX}job_queue_wait_seconds`,
  jobDuration: `${METRICS_PREFIX}job_duration_seconds`,
  modelInferences: `${METRICS_PREFIX}model_inferences_total`,
  modelPhase: `${METRICS_PREFIX}model_phase_seconds`,
  embeddingCacheHits: `${METRICS_PREFIX}embedding_cache_hits_total`,
  embeddingCacheMisses: `${METRICS_PREFIX}embedding_cache_misses_total`,
  embeddingCacheEvictions: `${METRICS_PREFIX}embedding_cache_evictions_total`,
  embeddingCacheBytes: `${METRICS_PREFIX}embedding_cache_bytes`,
} as const;

/** The route label of a request no route matched (404s, static files): one label, whatever the path was. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Seconds: from a fast status read to a long model run. */
export const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds: jobs run from milliseconds (a small QR batch) to minutes (automatic segmentation of a large image). */
export const JOB_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Seconds: one phase of one inference. */
export const PHASE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * One Prometheus registry per process (per Nest application): the API's and the worker's series, and the process
 * defaults. In the single-process mode both sides share it, so /metrics shows everything once. Metrics are made with
 * the get-or-create helpers below, so two providers asking for the same series get the same one (never a
 * duplicate-registration error); each application has its own registry (tests boot several in one process).
 */
@Injectable()
export class Metrics {
  readonly registry = new Registry();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: METRICS_PREFIX });
  }

  counter<L extends string>(config: CounterConfiguration<L>): Counter<L> {
    return (this.registry.getSingleMetric(config.name) as Counter<L> | undefined) ?? new Counter({ ...config, registers: [this.registry] });
  }

  gauge<L extends string>(config: GaugeConfiguration<L>): Gauge<L> {
    return (this.registry.getSingleMetric(config.name) as Gauge<L> | undefined) ?? new Gauge({ ...config, registers: [this.registry] });
  }

  histogram<L extends string>(config: HistogramConfiguration<L>): Histogram<L> {
    return (
      (this.registry.getSingleMetric(config.name) as Histogram<L> | undefined) ?? new Histogram({ ...config, registers: [this.registry] })
    );
  }

  /** A histogram for the request path (see FastHistogram): same get-or-create rule as the others. */
  fastHistogram<L extends string>(config: {
    name: string;
    help: string;
    labelNames: readonly L[];
    buckets: readonly number[];
  }): FastHistogram<L> {
    const existing = this.registry.getSingleMetric(config.name);
    if (existing instanceof FastHistogram) return existing as FastHistogram<L>;
    return new FastHistogram(config.name, config.help, config.labelNames, config.buckets).registerIn(this.registry);
  }

  /** The exposition text (collects the scrape-time gauges first). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
