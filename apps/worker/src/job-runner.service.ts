import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { DiscoveryService, Reflector } from '@nestjs/core';
import { type EntityManager, MikroORM } from '@mikro-orm/core';
import type { Job as BullJob } from 'bull';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { ImageDecodeError } from '@aperture/imaging/decode.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import {
  JOB_HANDLER_TYPE,
  JobCancelledError,
  type JobContext,
  type JobHandler,
  JobLeaseLostError,
  PermanentJobError,
} from '@aperture/queue/job-handler.js';
import { type JobAttempt, JobLifecycle } from '@aperture/queue/job-lifecycle.js';
import { JobQueues } from '@aperture/queue/job-queues.js';
import {
  ALL_JOB_TYPES,
  type BullJobData,
  CANCEL_CHANNEL,
  JOB_TYPES,
  type JobPayloads,
  type JobType,
  isJobType,
} from '@aperture/queue/job-registry.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import { type JobOutcome, WorkerMetrics } from './worker-metrics.service.js';
import { coalescedProgress } from './progress-writer.js';

type AnyHandler = JobHandler<JobType>;

/** At most one progress write per job in this many ms. */
const PROGRESS_WRITE_MS = 250;

/** Thrown at boot when the job registry and the handlers do not match one to one. */
export class JobRegistryError extends Error {
  override name = 'JobRegistryError';
}

/**
 * Consumes the Bull queues and runs each delivered job's handler, with the abort plumbing (cancellation, lost lease,
 * shutdown) around it. Every status write (claim, progress and heartbeat, complete, fail or retry, discarding
 * artifacts) is JobLifecycle's guarded write; it also runs the lifecycle's sweeper, at start and periodically.
 */
@Injectable()
export class JobRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Jobs');
  private readonly handlers = new Map<JobType, AnyHandler>();
  private readonly active = new Map<string, AbortController>();
  /** This process as a lease owner. */
  private readonly owner = `worker:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private subscriber: Redis | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private started = false;
  private stopping = false;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly reflector: Reflector,
    private readonly orm: MikroORM,
    private readonly lifecycle: JobLifecycle,
    private readonly queues: JobQueues,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: WorkerMetrics,
  ) {}

  /** Finds the handlers and checks the registry: every job type exactly one handler, no unknown type. */
  discoverHandlers(): Map<JobType, AnyHandler> {
    this.handlers.clear();
    const problems: string[] = [];
    for (const wrapper of this.discovery.getProviders()) {
      const { instance, metatype } = wrapper;
      if (!instance || !metatype) continue;
      const type = this.reflector.get<string | undefined>(JOB_HANDLER_TYPE, metatype);
      if (type === undefined) continue;
      if (!isJobType(type)) problems.push(`${metatype.name} handles unknown job type "${type}"`);
      else if (this.handlers.has(type))
        problems.push(`job type "${type}" has two handlers: ${this.handlers.get(type)!.constructor.name} and ${metatype.name}`);
      else this.handlers.set(type, instance as AnyHandler);
    }
    for (const type of ALL_JOB_TYPES) if (!this.handlers.has(type)) problems.push(`job type "${type}" has no handler`);
    if (problems.length) throw new JobRegistryError(`Job registry does not match the handlers:\n  - ${problems.join('\n  - ')}`);
    return this.handlers;
  }

  /** Starts consuming. Call once the schema is current. */
  async start(): Promise<void> {
    if (this.started) return;
    this.discoverHandlers();
    this.subscriber = this.redis.duplicate({ connectionName: 'aperture-cancel' });
    await this.subscriber.subscribe(this.keys.key(CANCEL_CHANNEL));
    this.subscriber.on('message', (_channel: string, jobId: string) => this.active.get(jobId)?.abort(new JobCancelledError()));
    for (const type of this.handlers.keys()) {
      const queue = this.queues.queue(JOB_TYPES[type].queue);
      void queue.process(type, this.config.jobs.concurrency, (bullJob: BullJob<BullJobData>) => this.run(type, bullJob));
    }
    await this.sweep();
    this.sweepTimer = setInterval(() => void this.sweep(), this.config.jobs.sweepIntervalMs);
    this.sweepTimer.unref();
    this.started = true;
    this.logger.log(`Consuming job types: ${[...this.handlers.keys()].join(', ')}`);
  }

  get isStarted(): boolean {
    return this.started;
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** One sweep at a time per process (see JobLifecycle.sweep); a failed sweep is logged and tried again next time. */
  private sweep(): Promise<void> {
    this.sweeping ??= this.lifecycle
      .sweep()
      .then(() => undefined)
      .catch((e: unknown) => this.logger.warn(`Job sweep failed: ${(e as Error).message}`))
      .finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  /** Lets running jobs finish (up to the shutdown timeout) before the queues and the database close. */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.started) return;
    this.stopping = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.sweeping;
    for (const type of this.handlers.keys())
      await this.queues
        .queue(JOB_TYPES[type].queue)
        .pause(true, true)
        .catch(() => undefined);
    const deadline = Date.now() + this.config.http.shutdownTimeoutMs;
    if (this.active.size) this.logger.log(`Waiting for ${this.active.size} running job(s) to finish…`);
    while (this.active.size && Date.now() < deadline) await sleep(100);
    for (const c of this.active.values()) c.abort(new Error('worker shutting down'));
    await this.subscriber?.quit().catch(() => undefined);
  }

  /**
   * Claims the job for this process. A job still running under another lease (Bull delivered it again, e.g. after
   * its holder stalled) is waited for until that lease expires, then taken over; or left alone if its holder renews.
   */
  private async claim(em: EntityManager, jobId: string): Promise<{ attempt: JobAttempt; job: Job } | null> {
    const leaseMs = this.lifecycle.defaultLeaseMs;
    const deadline = Date.now() + 10 * leaseMs;
    for (;;) {
      const r = await this.lifecycle.claim(em, jobId, { owner: this.owner, leaseMs });
      if (r.kind === 'claimed') return r;
      if (r.kind !== 'busy' || this.stopping || Date.now() > deadline) return null;
      await sleep(Math.min(leaseMs, Math.max(50, r.leaseExpiresAt.getTime() - Date.now() + 50)));
    }
  }

  /** One attempt of one job. Returning resolves the Bull job; throwing lets Bull retry (or fail) it. */
  private async run(type: JobType, bullJob: BullJob<BullJobData>): Promise<void> {
    const em = this.orm.em.fork();
    const claimed = await this.claim(em, bullJob.data.jobId);
    if (!claimed) return; // deleted, final (completed, failed or cancelled: never run twice) or held by a live run
    const { attempt: a, job } = claimed;
    const finished = this.metrics.jobStarted(job);
    const handler = this.handlers.get(type)!;
    const controller = new AbortController();
    this.active.set(job.id, controller);
    const lost = () => controller.abort(new JobLeaseLostError(a.jobId, a.attempt));
    const progress = coalescedProgress(async (p) => {
      if (!(await this.lifecycle.renew(a, p).catch(() => true))) lost();
      await bullJob.progress(Math.round(p * 100)).catch(() => undefined);
    }, PROGRESS_WRITE_MS);
    // The lease is renewed by progress and by this heartbeat (skipped while progress writes renew it); a heartbeat that
    // finds the attempt no longer current stops it.
    const every = Math.max(250, Math.floor(a.leaseMs / 3));
    const heartbeat = setInterval(() => {
      if (Date.now() - progress.lastWriteAt() < every) return;
      void this.lifecycle.renew(a).then(
        (ok) => ok || lost(),
        () => undefined,
      );
    }, every);
    try {
      const result = await handler.handle(this.context(job, a, em, controller.signal, progress.report));
      await progress.stop();
      if (controller.signal.aborted) throw controller.signal.reason;
      clearInterval(heartbeat);
      if (await this.lifecycle.complete(a, result)) finished('completed');
      else {
        finished('cancelled');
        this.logger.log(`Job ${job.id} (${job.type}) attempt ${a.attempt} finished, but the job was cancelled or taken over meanwhile`);
      }
    } catch (err) {
      clearInterval(heartbeat);
      await progress.stop();
      await this.onError(job, a, bullJob, controller.signal, err, finished);
    } finally {
      clearInterval(heartbeat);
      if (this.active.get(job.id) === controller) this.active.delete(job.id);
    }
  }

  private async onError(
    job: Job,
    a: JobAttempt,
    bullJob: BullJob<BullJobData>,
    signal: AbortSignal,
    err: unknown,
    finished: (outcome: JobOutcome) => void,
  ): Promise<void> {
    if (err instanceof JobCancelledError || (signal.aborted && signal.reason instanceof JobCancelledError)) {
      finished('cancelled');
      await this.lifecycle.abandon(a);
      const reason = signal.aborted && signal.reason instanceof Error ? signal.reason : err;
      this.logger.log(`Job ${job.id} (${job.type}) attempt ${a.attempt} stopped: ${(reason as Error).message}`);
      return;
    }
    // An input image that does not decode is the owner's to fix (the API checks only its header and structure).
    const permanent = err instanceof PermanentJobError || err instanceof ImageDecodeError;
    const raw = err instanceof Error ? err.message : String(err);
    // A PermanentJobError's (or ImageDecodeError's) text is written for the job's owner; anything else (SQL, file paths, a library's words)
    // stays in the log under an error id, and the job shows only that id.
    const errorId = randomUUID();
    const message = permanent ? raw : `The job failed on an internal error. Quote error id ${errorId} when reporting it.`;
    if (!permanent) this.logger.warn({ err, job_id: job.id, error_id: errorId }, `Job ${job.id} (${job.type}) error ${errorId}: ${raw}`);
    const outcome = await this.lifecycle.fail(a, message, permanent);
    finished(outcome === 'stale' ? 'cancelled' : outcome === 'retry' ? 'retried' : 'failed');
    if (outcome === 'stale') {
      this.logger.log(`Job ${job.id} (${job.type}) attempt ${a.attempt} failed after it was cancelled or taken over: ${message}`);
      return;
    }
    if (outcome === 'failed') {
      this.logger.error({ err, job_id: job.id }, `Job ${job.id} (${job.type}) failed after ${a.attempt} attempt(s): ${message}`);
      await bullJob.discard().catch(() => undefined); // the record is final: Bull must not retry it
    } else {
      this.logger.warn({ job_id: job.id }, `Job ${job.id} (${job.type}) attempt ${a.attempt} failed, will retry: ${message}`);
    }
    throw err;
  }

  private context<T extends JobType>(
    job: Job,
    a: JobAttempt,
    em: EntityManager,
    signal: AbortSignal,
    progress: (fraction: number) => Promise<void>,
  ): JobContext<T> {
    return {
      job,
      params: job.params as unknown as JobPayloads[T],
      em,
      signal,
      attempt: a.attempt,
      progress,
      saveArtifact: (name: string, contentType: string, data: Readable | Buffer) =>
        this.lifecycle.saveArtifact(em, a, job, name, contentType, data),
    };
  }
}
