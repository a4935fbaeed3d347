import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { DiscoveryService, Reflector } from '@nestjs/core';
import { EntityManager, MikroORM } from '@mikro-orm/core';
import type { Job as BullJob } from 'bull';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { FINAL_JOB_STATUSES, Job, JobArtifact } from '@aperture/database/entities/job.entity.js';
import { JOB_HANDLER_TYPE, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import {
  ALL_JOB_TYPES,
  type BullJobData,
  CANCEL_CHANNEL,
  JOB_TYPES,
  type JobPayloads,
  type JobType,
  isJobType,
} from '@aperture/queue/job-registry.js';
import { publishJobFinal } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';

type AnyHandler = JobHandler<JobType>;

/** Thrown at boot when the job registry and the handlers do not match one to one. */
export class JobRegistryError extends Error {
  override name = 'JobRegistryError';
}

/**
 * Consumes the Bull queues: keeps each Job record's status, attempts, progress, result and artifacts,
 * retries within bounds, honours cancellation, and never completes a job twice.
 */
@Injectable()
export class JobRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Jobs');
  private readonly handlers = new Map<JobType, AnyHandler>();
  private readonly active = new Map<string, AbortController>();
  private subscriber: Redis | null = null;
  private started = false;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly reflector: Reflector,
    private readonly orm: MikroORM,
    private readonly jobs: JobsService,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(STORAGE) private readonly storage: StoragePort,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
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
      const queue = this.jobs.queue(JOB_TYPES[type].queue);
      void queue.process(type, this.config.jobs.concurrency, (bullJob: BullJob<BullJobData>) => this.run(type, bullJob));
    }
    await this.jobs.requeueOrphans(this.orm.em.fork());
    this.started = true;
    this.logger.log(`Consuming job types: ${[...this.handlers.keys()].join(', ')}`);
  }

  get isStarted(): boolean {
    return this.started;
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** Lets running jobs finish (up to the shutdown timeout) before the queues and the database close. */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.started) return;
    for (const type of this.handlers.keys())
      await this.jobs
        .queue(JOB_TYPES[type].queue)
        .pause(true, true)
        .catch(() => undefined);
    const deadline = Date.now() + this.config.http.shutdownTimeoutMs;
    if (this.active.size) this.logger.log(`Waiting for ${this.active.size} running job(s) to finish…`);
    while (this.active.size && Date.now() < deadline) await sleep(100);
    for (const c of this.active.values()) c.abort(new Error('worker shutting down'));
    await this.subscriber?.quit().catch(() => undefined);
  }

  /** One attempt of one job. Returning resolves the Bull job; throwing lets Bull retry (or fail) it. */
  private async run(type: JobType, bullJob: BullJob<BullJobData>): Promise<void> {
    const em = this.orm.em.fork();
    const job = await em.findOne(Job, { id: bullJob.data.jobId });
    if (!job) return; // deleted meanwhile
    if (FINAL_JOB_STATUSES.includes(job.status)) return; // completed, failed or cancelled: never run twice
    const handler = this.handlers.get(type)!;
    const controller = new AbortController();
    this.active.set(job.id, controller);
    try {
      job.status = 'running';
      job.attempts += 1;
      job.startedAt = new Date();
      job.error = null;
      job.progress = 0;
      await em.flush();
      // A previous attempt that died (worker killed) may have left files behind: start clean. The first attempt has none.
      if (job.attempts > 1) await this.discardArtifacts(em, job.id);
      const result = await handler.handle(this.context(job, em, controller.signal, bullJob));
      if (controller.signal.aborted) throw controller.signal.reason;
      const done = await em.nativeUpdate(
        Job,
        { id: job.id, status: 'running' },
        { status: 'completed', progress: 1, result, finishedAt: new Date() },
      );
      if (done === 0)
        await this.discardArtifacts(em, job.id); // cancelled while finishing
      else await this.announceFinal(job.id);
    } catch (err) {
      await this.onError(em, job, bullJob, controller.signal, err);
    } finally {
      this.active.delete(job.id);
    }
  }

  private async onError(em: EntityManager, job: Job, bullJob: BullJob<BullJobData>, signal: AbortSignal, err: unknown): Promise<void> {
    if (signal.aborted && signal.reason instanceof JobCancelledError) {
      await this.discardArtifacts(em, job.id);
      this.logger.log(`Job ${job.id} (${job.type}) cancelled`);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    const permanent = err instanceof PermanentJobError;
    const lastAttempt = permanent || bullJob.attemptsMade + 1 >= (bullJob.opts.attempts ?? 1);
    if (lastAttempt) {
      await em.nativeUpdate(
        Job,
        { id: job.id, status: { $in: ['queued', 'running'] } },
        { status: 'failed', error: message, finishedAt: new Date() },
      );
      await this.announceFinal(job.id);
      this.logger.error({ err, job_id: job.id }, `Job ${job.id} (${job.type}) failed after ${job.attempts} attempt(s): ${message}`);
      if (permanent) await bullJob.discard();
    } else {
      await em.nativeUpdate(
        Job,
        { id: job.id, status: { $in: ['queued', 'running'] } },
        { status: 'queued', error: message, queuedAt: new Date() },
      );
      this.logger.warn({ job_id: job.id }, `Job ${job.id} (${job.type}) attempt ${job.attempts} failed, will retry: ${message}`);
    }
    throw err;
  }

  /** Wakes requests waiting on the job (GET …/status?wait_ms=); they re-read the record, so a lost message only costs their wait. */
  private async announceFinal(jobId: string): Promise<void> {
    await publishJobFinal(this.redis, this.keys, jobId).catch((e: unknown) =>
      this.logger.warn(`Cannot announce job ${jobId}: ${(e as Error).message}`),
    );
  }

  private async discardArtifacts(em: EntityManager, jobId: string): Promise<void> {
    await em.nativeDelete(JobArtifact, { job: jobId });
    await this.storage.deletePrefix(`jobs/${jobId}`);
  }

  private context<T extends JobType>(job: Job, em: EntityManager, signal: AbortSignal, bullJob: BullJob<BullJobData>): JobContext<T> {
    let lastWrite = 0;
    let lastValue = -1;
    return {
      job,
      params: job.params as unknown as JobPayloads[T],
      em,
      signal,
      progress: async (fraction: number) => {
        const p = Math.min(1, Math.max(0, fraction));
        const now = Date.now();
        if (p < 1 && (now - lastWrite < 250 || p - lastValue < 0.005)) return;
        lastWrite = now;
        lastValue = p;
        await em.nativeUpdate(Job, { id: job.id, status: 'running' }, { progress: p });
        await bullJob.progress(Math.round(p * 100)).catch(() => undefined);
      },
      saveArtifact: async (name: string, contentType: string, data: Readable | Buffer) => {
        const key = `jobs/${job.id}/${randomUUID()}`;
        const stored = await this.storage.put(key, data);
        const artifact = em.create(JobArtifact, { job, name, storageKey: key, contentType, sizeBytes: stored.sizeBytes });
        await em.flush();
        return artifact;
      },
    };
  }
}
