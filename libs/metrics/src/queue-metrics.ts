import { Injectable, Logger } from '@nestjs/common';
import { MikroORM } from '@mikro-orm/core';
import { withTimeout } from '@aperture/health/probes.js';
import { JobQueues } from '@aperture/queue/job-queues.js';
import { ALL_JOB_TYPES, type QueueName } from '@aperture/queue/job-registry.js';
import { METRIC, Metrics } from './metrics.js';

/** The Bull states reported as queue depth. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed'] as const;
/** The job record statuses counted per job type. */
const ACTIVE_STATUSES = ['queued', 'running'] as const;

/** How long one scrape waits for Redis and the database before it reports the queue as down. */
const SCRAPE_TIMEOUT_MS = 1000;
/** Scrapes within this window share one read (the gauges below collect separately). */
const SNAPSHOT_MS = 500;

interface Snapshot {
  queues: Map<QueueName, Record<(typeof QUEUE_STATES)[number], number> | null>;
  jobs: Map<string, number> | null;
}

/**
 * Queue depth, read at scrape time (never on a request's path): per Bull queue the jobs waiting, active and delayed
 * (`aperture_queue_jobs`, with `aperture_queue_up` 0 when Redis did not answer within a second), and per job type the
 * job records queued and running (`aperture_jobs_active`: also counts jobs left to external workers, which no Bull
 * queue holds). Every process reports the same figures: aggregate with max(), not sum().
 */
@Injectable()
export class QueueMetrics {
  private readonly logger = new Logger('Metrics');
  private snapshot: { at: number; value: Promise<Snapshot> } | null = null;

  constructor(
    metrics: Metrics,
    private readonly queues: JobQueues,
    private readonly orm: MikroORM,
  ) {
    const read = (): Promise<Snapshot> => this.read();
    metrics.gauge({
      name: METRIC.queueJobs,
      help: 'Jobs in each Bull queue by state (waiting, active, delayed), read at scrape time',
      labelNames: ['queue', 'state'],
      async collect() {
        const s = await read();
        this.reset();
        for (const [queue, counts] of s.queues) if (counts) for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state]);
      },
    });
    metrics.gauge({
      name: METRIC.queueUp,
      help: 'Whether the queue answered its depth within a second at this scrape (1) or not (0)',
      labelNames: ['queue'],
      async collect() {
        const s = await read();
        for (const [queue, counts] of s.queues) this.set({ queue }, counts ? 1 : 0);
      },
    });
    metrics.gauge({
      name: METRIC.jobsActive,
      help: 'Job records queued or running, per job type, read at scrape time',
      labelNames: ['type', 'status'],
      async collect() {
        const s = await read();
        this.reset();
        if (!s.jobs) return;
        for (const type of ALL_JOB_TYPES)
          for (const status of ACTIVE_STATUSES) this.set({ type, status }, s.jobs.get(`${type}\0${status}`) ?? 0);
      },
    });
  }

  private read(): Promise<Snapshot> {
    const now = Date.now();
    if (this.snapshot && now - this.snapshot.at < SNAPSHOT_MS) return this.snapshot.value;
    const value = this.readNow();
    this.snapshot = { at: now, value };
    return value;
  }

  private async readNow(): Promise<Snapshot> {
    const queues = new Map<QueueName, Record<(typeof QUEUE_STATES)[number], number> | null>();
    const [counts, jobs] = await Promise.all([
      Promise.all(
        this.queues.names.map((name) =>
          withTimeout(this.queues.queue(name).getJobCounts(), SCRAPE_TIMEOUT_MS, `queue ${name}`).then(
            (c) => ({ waiting: c.waiting, active: c.active, delayed: c.delayed }),
            (e: Error) => {
              this.logger.warn(`Queue depth of ${name} not read: ${e.message}`);
              return null;
            },
          ),
        ),
      ),
      withTimeout(this.jobCounts(), SCRAPE_TIMEOUT_MS, 'job counts').catch((e: Error) => {
        this.logger.warn(`Job counts not read: ${e.message}`);
        return null;
      }),
    ]);
    this.queues.names.forEach((name, i) => queues.set(name, counts[i] ?? null));
    return { queues, jobs };
  }

  /** One grouped count over the jobs table (status is indexed). */
  private async jobCounts(): Promise<Map<string, number>> {
    const rows = (await this.orm.em
      .getConnection()
      .execute(`select type, status, count(*) as n from jobs where status in ('queued', 'running') group by type, status`)) as {
      type: string;
      status: string;
      n: number | string;
    }[];
    return new Map(rows.map((r) => [`${r.type}\0${r.status}`, Number(r.n)]));
  }
}
