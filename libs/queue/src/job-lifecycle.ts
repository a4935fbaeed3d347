import type { Readable } from 'node:stream';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { type EntityManager, type FilterQuery, MikroORM, raw } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { FINAL_JOB_STATUSES, Job, JobArtifact, type JobStatus, type JsonObject } from '@aperture/database/entities/job.entity.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { publishJobFinal } from './job-events.js';
import { JobLeaseLostError } from './job-handler.js';
import { JobQueues } from './job-queues.js';
import { CANCEL_CHANNEL, JOB_TYPES, type JobType } from './job-registry.js';

/** The statuses a job can still move from. */
export const ACTIVE_JOB_STATUSES: readonly JobStatus[] = ['queued', 'running'];

/** Who claims a job and for how long; the lease is renewed by progress and heartbeats, never by Bull's in-Redis lock. */
export interface LeaseOptions {
  /** Names the claimer: a worker process, or (later) an external worker leasing over HTTP. */
  owner: string;
  leaseMs: number;
}

/**
 * One attempt of one job, as claimed. Every write of the attempt is guarded by
 * `id = jobId AND status = 'running' AND attempts = attempt AND lease_owner = owner`: once the job is cancelled,
 * deleted, re-queued or taken over, the attempt's writes affect nothing.
 */
export interface JobAttempt {
  readonly jobId: string;
  readonly type: JobType;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly owner: string;
  readonly leaseMs: number;
}

export type ClaimResult =
  /** This claimer runs attempt `attempt.attempt`; `job` is the record as claimed, loaded in the caller's entity manager. */
  | { kind: 'claimed'; attempt: JobAttempt; job: Job }
  /** No such job (deleted). */
  | { kind: 'gone' }
  /** Completed, failed or cancelled: never run again. */
  | { kind: 'final'; status: JobStatus }
  /** Running under someone else's lease, which has not expired yet. */
  | { kind: 'busy'; leaseExpiresAt: Date }
  /** Its lease expired with no attempt left: it was failed. */
  | { kind: 'exhausted' };

/** What a failed attempt led to: the job failed, it goes back to the queue, or the attempt was no longer current. */
export type FailOutcome = 'failed' | 'retry' | 'stale';

export interface SweepReport {
  /** Queued rows without a live queue entry, enqueued again. */
  enqueued: number;
  /** Running rows whose lease expired without a live queue entry, re-queued (attempts remained). */
  requeued: number;
  /** Running rows whose lease expired without a live queue entry and without attempts left, failed. */
  failed: number;
}

/**
 * A queued row younger than this is left alone by the periodic sweep: its enqueue may be on its way (enqueueing it
 * twice would be harmless, a no-op, but needless).
 */
const SWEEP_QUEUED_GRACE_MS = 15000;

/** Bull states in which the job will still be delivered (or is held by a worker that Bull will declare stalled). */
const LIVE_BULL_STATES = new Set(['waiting', 'active', 'delayed', 'paused']);

/**
 * The one home of every job status transition: enqueue, claim, progress and heartbeat, complete, fail or retry,
 * cancel, discard artifacts, delete, and the sweeper that repairs what Redis or a crash left behind.
 *
 * Each transition is one guarded write (`UPDATE jobs SET … WHERE id = ? AND status IN (…) [AND attempts = ?]`) that
 * affects one row or none, on PostgreSQL and SQLite alike: whoever changes the row first wins, and the loser learns
 * it from the affected-row count. Bull only delivers jobs to internal workers; the record is the truth.
 */
@Injectable()
export class JobLifecycle {
  private readonly logger = new Logger('JobLifecycle');

  constructor(
    private readonly orm: MikroORM,
    private readonly queues: JobQueues,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  /** The lease an internal worker takes when it claims a job. */
  get defaultLeaseMs(): number {
    return this.config.jobs.lockDurationMs;
  }

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  // ---------------------------------------------------------------- enqueue

  /**
   * Puts a persisted (committed) Job on its queue: commit first, then enqueue. The Bull job id is the record id, so
   * a second enqueue is a no-op. If Redis refuses, this throws and the row stays queued: the sweeper enqueues it.
   */
  async enqueue(job: Pick<Job, 'id' | 'type' | 'maxAttempts'>): Promise<void> {
    if (!this.deliveredByQueue(job.type)) return; // it waits in the table for an external worker's lease
    const def = JOB_TYPES[job.type];
    await this.queues.queue(def.queue).add(
      job.type,
      { jobId: job.id },
      {
        jobId: job.id,
        attempts: job.maxAttempts,
        backoff: { type: 'exponential', delay: this.config.jobs.backoffMs },
        removeOnComplete: true,
        removeOnFail: 1000,
      },
    );
  }

  /**
   * Whether Bull delivers jobs of this type to internal workers. A leasable type (the booth's) is left to external
   * workers alone when BOOTH_PROCESSING=external: they find it in the table (POST /jobs/lease).
   */
  deliveredByQueue(type: JobType): boolean {
    return !(JOB_TYPES[type]?.leasable && this.config.booth.processing === 'external');
  }

  // ---------------------------------------------------------------- claim

  /**
   * Starts the next attempt of a job for `lease.owner`:
   * `UPDATE jobs SET status = 'running', attempts = n + 1, lease_owner, lease_expires_at, …
   *  WHERE id = ? AND attempts = n
   *    AND (status = 'queued' OR (status = 'running' AND (lease_expires_at < now OR lease_expires_at IS NULL)))`
   * where n is the attempts count just read. A cancelled job is never claimed; of two racing claimers exactly one
   * wins; a running job whose lease expired (a stalled run) is taken over.
   */
  async claim(em: EntityManager, jobId: string, lease: LeaseOptions): Promise<ClaimResult> {
    // The common case, a queued job, in one guarded write and one read: `UPDATE … SET attempts = attempts + 1 …
    // WHERE id = ? AND status = 'queued'` (a queued job always has an attempt left: failing the last one fails the
    // job, and the sweeper re-queues only jobs with attempts left). Whatever else (running, final, gone) takes the
    // general path below.
    const start = new Date();
    const took = await this.em().nativeUpdate(
      Job,
      { id: jobId, status: 'queued' },
      {
        status: 'running',
        attempts: raw('attempts + 1'),
        leaseOwner: lease.owner,
        leaseExpiresAt: new Date(start.getTime() + lease.leaseMs),
        startedAt: start,
        error: null,
        progress: 0,
        updatedAt: start,
      },
    );
    if (took === 1) {
      const job = await em.findOneOrFail(Job, { id: jobId });
      return {
        kind: 'claimed',
        job,
        attempt: { jobId, type: job.type, attempt: job.attempts, maxAttempts: job.maxAttempts, owner: lease.owner, leaseMs: lease.leaseMs },
      };
    }
    for (let tries = 0; tries < 5; tries++) {
      const row = await this.em().findOne(Job, { id: jobId });
      if (!row) return { kind: 'gone' };
      if (FINAL_JOB_STATUSES.includes(row.status)) return { kind: 'final', status: row.status };
      const now = new Date();
      if (row.status === 'running' && row.leaseExpiresAt && row.leaseExpiresAt.getTime() > now.getTime())
        return { kind: 'busy', leaseExpiresAt: row.leaseExpiresAt };
      if (row.attempts >= row.maxAttempts) {
        const failed = await this.em().nativeUpdate(
          Job,
          { id: jobId, attempts: row.attempts, $or: this.claimable(now) },
          this.finalFields('failed', `Stopped after ${row.attempts} attempt(s): the last one stopped answering (its lease expired)`),
        );
        if (failed === 1) {
          await this.announceFinal(jobId);
          return { kind: 'exhausted' };
        }
        continue; // someone else changed it: look again
      }
      const attempt = row.attempts + 1;
      const affected = await this.em().nativeUpdate(
        Job,
        { id: jobId, attempts: row.attempts, $or: this.claimable(now) },
        {
          status: 'running',
          attempts: attempt,
          leaseOwner: lease.owner,
          leaseExpiresAt: new Date(now.getTime() + lease.leaseMs),
          startedAt: now,
          error: null,
          progress: 0,
          updatedAt: now,
        },
      );
      if (affected === 1) {
        const job = await em.findOneOrFail(Job, { id: jobId });
        return {
          kind: 'claimed',
          job,
          attempt: { jobId, type: row.type, attempt, maxAttempts: row.maxAttempts, owner: lease.owner, leaseMs: lease.leaseMs },
        };
      }
    }
    const row = await this.em().findOne(Job, { id: jobId });
    if (!row) return { kind: 'gone' };
    if (FINAL_JOB_STATUSES.includes(row.status)) return { kind: 'final', status: row.status };
    return { kind: 'busy', leaseExpiresAt: row.leaseExpiresAt ?? new Date(Date.now() + lease.leaseMs) };
  }

  private claimable(now: Date): FilterQuery<Job>[] {
    return [{ status: 'queued' }, { status: 'running', leaseExpiresAt: { $lt: now } }, { status: 'running', leaseExpiresAt: null }];
  }

  /** The guard of every write of one attempt. */
  private current(a: JobAttempt): FilterQuery<Job> {
    return { id: a.jobId, status: 'running', attempts: a.attempt, leaseOwner: a.owner };
  }

  // ---------------------------------------------------------------- progress, heartbeat

  /**
   * Renews the attempt's lease (a heartbeat), and records progress 0..1 when given:
   * `UPDATE jobs SET lease_expires_at = now + lease [, progress] WHERE id AND status = 'running' AND attempts = n AND lease_owner = owner`.
   * False when the attempt is no longer current: the caller must stop.
   */
  async renew(a: JobAttempt, progress?: number): Promise<boolean> {
    const data: Partial<Job> = { leaseExpiresAt: new Date(Date.now() + a.leaseMs) };
    if (progress !== undefined) data.progress = Math.min(1, Math.max(0, progress));
    return (await this.em().nativeUpdate(Job, this.current(a), data)) === 1;
  }

  /**
   * Renews the attempt's lease only while it is still live (`… AND lease_expires_at > now`): an external worker whose
   * lease ran out has lost the job even if nobody took it over yet. False when it expired, or is no longer current.
   */
  async renewLive(a: JobAttempt): Promise<boolean> {
    const now = new Date();
    return (
      (await this.em().nativeUpdate(
        Job,
        { id: a.jobId, status: 'running', attempts: a.attempt, leaseOwner: a.owner, leaseExpiresAt: { $gt: now } },
        { leaseExpiresAt: new Date(now.getTime() + a.leaseMs) },
      )) === 1
    );
  }

  /**
   * The running attempt held by `owner` (an external worker's lease), rebuilt from the record; null when the job is
   * not running under that owner any more (completed, re-queued, taken over, cancelled or deleted).
   */
  async attemptOf(jobId: string, owner: string, leaseMs: number): Promise<JobAttempt | null> {
    const row = await this.em().findOne(Job, { id: jobId, status: 'running', leaseOwner: owner });
    if (!row) return null;
    return { jobId, type: row.type, attempt: row.attempts, maxAttempts: row.maxAttempts, owner, leaseMs };
  }

  /**
   * Stores a file of the attempt under `jobs/{id}/attempt-{n}/{uuid}` and attaches it to the job (the row records the
   * attempt). Throws JobLeaseLostError, leaving nothing behind, when the attempt is no longer current before or after.
   */
  async saveArtifact(
    em: EntityManager,
    a: JobAttempt,
    job: Job,
    name: string,
    contentType: string,
    data: Readable | Buffer,
  ): Promise<JobArtifact> {
    if (!(await this.renew(a))) throw new JobLeaseLostError(a.jobId, a.attempt);
    const key = StorageKeys.jobArtifact(a.jobId, a.attempt);
    const stored = await this.storage.put(key, data);
    let artifact: JobArtifact;
    try {
      artifact = em.create(JobArtifact, { job, name, storageKey: key, contentType, sizeBytes: stored.sizeBytes, attempt: a.attempt });
      await em.flush();
    } catch (e) {
      await this.storage.delete(key).catch(() => undefined);
      if (!(await this.renew(a).catch(() => false))) throw new JobLeaseLostError(a.jobId, a.attempt); // e.g. the job was deleted
      throw e;
    }
    if (!(await this.renew(a))) {
      // Taken over (or cancelled) while storing: whoever completes the job must not find this file.
      await this.em().nativeDelete(JobArtifact, { id: artifact.id });
      await this.storage.delete(key).catch(() => undefined);
      throw new JobLeaseLostError(a.jobId, a.attempt);
    }
    return artifact;
  }

  // ---------------------------------------------------------------- complete, fail, abandon

  /**
   * Completes the job with the attempt's result:
   * `UPDATE jobs SET status = 'completed', result, … WHERE id AND status = 'running' AND attempts = n AND lease_owner = owner`.
   * The winner removes other attempts' artifacts; a stale attempt (cancelled or taken over) removes only its own and
   * gets false.
   */
  async complete(a: JobAttempt, result: JsonObject): Promise<boolean> {
    const now = new Date();
    const done = await this.em().nativeUpdate(Job, this.current(a), {
      status: 'completed',
      progress: 1,
      result,
      finishedAt: now,
      leaseOwner: null,
      leaseExpiresAt: null,
      updatedAt: now,
    });
    if (done === 0) {
      await this.discardAttempt(a.jobId, a.attempt);
      return false;
    }
    // The first attempt has no other attempts' files to remove (a later attempt would have taken the job over, and
    // this write would have found nothing): its waiters are told at once.
    if (a.attempt > 1) await this.discardOtherAttempts(a.jobId, a.attempt);
    await this.announceFinal(a.jobId);
    return true;
  }

  /**
   * A failed attempt: the job fails (permanent error or no attempt left) or goes back to the queue, both guarded as
   * complete is (`WHERE id AND status = 'running' AND attempts = n AND lease_owner = owner`). A retried attempt's
   * artifacts are discarded (the next attempt writes its own); a failed job keeps them; a stale attempt discards its own.
   */
  async fail(a: JobAttempt, message: string, permanent = false): Promise<FailOutcome> {
    const last = permanent || a.attempt >= a.maxAttempts;
    const now = new Date();
    const affected = await this.em().nativeUpdate(
      Job,
      this.current(a),
      last
        ? this.finalFields('failed', message)
        : { status: 'queued', error: message, queuedAt: now, leaseOwner: null, leaseExpiresAt: null, updatedAt: now },
    );
    if (affected === 0) {
      await this.discardAttempt(a.jobId, a.attempt);
      return 'stale';
    }
    if (last) {
      await this.announceFinal(a.jobId);
      return 'failed';
    }
    await this.discardAttempt(a.jobId, a.attempt);
    return 'retry';
  }

  /** An attempt that stopped because it was cancelled or lost its lease: its own files and rows go, the record is not touched. */
  async abandon(a: JobAttempt): Promise<void> {
    await this.discardAttempt(a.jobId, a.attempt);
  }

  /**
   * Sends a completed job back to the queue for another round (a reviewer asked for new options), in the caller's
   * transaction: `UPDATE jobs SET status = 'queued', result = NULL, max_attempts = attempts + JOB_ATTEMPTS, …
   * WHERE id = ? AND status = 'completed'`. False if it was not completed. After the commit, call afterReopen.
   */
  async reopen(em: EntityManager, job: Pick<Job, 'id' | 'attempts'>): Promise<boolean> {
    const now = new Date();
    const affected = await em.nativeUpdate(
      Job,
      { id: job.id, status: 'completed', attempts: job.attempts },
      {
        status: 'queued',
        result: null,
        progress: 0,
        error: null,
        maxAttempts: job.attempts + this.config.jobs.attempts,
        queuedAt: now,
        startedAt: null,
        finishedAt: null,
        leaseOwner: null,
        leaseExpiresAt: null,
        updatedAt: now,
      },
    );
    return affected === 1;
  }

  /**
   * After a committed reopen: drops the finished rounds' files and rows (attempts up to `attempts`; the next attempt
   * writes under its own prefix, so a claim racing this is safe), then enqueues the job.
   */
  async afterReopen(job: Pick<Job, 'id' | 'type' | 'attempts' | 'maxAttempts'>): Promise<void> {
    for (let n = 1; n <= job.attempts; n++) await this.discardAttempt(job.id, n);
    await this.enqueue({ id: job.id, type: job.type, maxAttempts: job.attempts + this.config.jobs.attempts });
  }

  // ---------------------------------------------------------------- cancel, delete

  /**
   * Cancels a job: `UPDATE jobs SET status = 'cancelled', … WHERE id AND status IN ('queued', 'running')`. A queued
   * one is removed from its queue, a running one is told to stop through Redis pub/sub (its next guarded write
   * fails anyway). Returns false if the job had already finished.
   */
  async cancel(em: EntityManager, job: Job): Promise<boolean> {
    if (FINAL_JOB_STATUSES.includes(job.status)) return false;
    const affected = await em.nativeUpdate(
      Job,
      { id: job.id, status: { $in: [...ACTIVE_JOB_STATUSES] } },
      this.finalFields('cancelled', 'Cancelled by user'),
    );
    if (affected === 0) return false;
    job.status = 'cancelled';
    const def = JOB_TYPES[job.type];
    if (def) {
      const bullJob = await this.queues
        .queue(def.queue)
        .getJob(job.id)
        .catch(() => null);
      await bullJob?.remove().catch(() => undefined); // a locked (active) job cannot be removed: the worker stops it
    }
    await this.redis.publish(this.keys.key(CANCEL_CHANNEL), job.id).catch(() => 0);
    return true;
  }

  /** The queued or running jobs matching where (at most limit), e.g. those still needing an image. */
  activeJobs(em: EntityManager, where: FilterQuery<Job>, limit = 20): Promise<Pick<Job, 'id' | 'type' | 'status'>[]> {
    return em.find(Job, { $and: [where, { status: { $in: [...ACTIVE_JOB_STATUSES] } }] }, { fields: ['id', 'type', 'status'], limit });
  }

  /** Cancels (where needed) and deletes the jobs matching where, with their artifacts and uploaded inputs. Returns how many. */
  async deleteJobs(em: EntityManager, where: FilterQuery<Job>): Promise<number> {
    const jobs = await em.find(Job, where);
    if (jobs.length === 0) return 0;
    for (const job of jobs) await this.cancel(em, job);
    for (const job of jobs) {
      await this.storage.deletePrefix(StorageKeys.jobPrefix(job.id));
      await this.storage.deletePrefix(StorageKeys.inputPrefix(job.id));
    }
    await em.nativeDelete(Job, { id: { $in: jobs.map((j) => j.id) } });
    return jobs.length;
  }

  /** Cancels (if needed) and deletes one job with its artifacts and uploaded inputs. */
  async deleteJob(em: EntityManager, job: Job): Promise<void> {
    await this.cancel(em, job);
    await this.storage.deletePrefix(StorageKeys.jobPrefix(job.id));
    await this.storage.deletePrefix(StorageKeys.inputPrefix(job.id));
    await em.nativeDelete(Job, { id: job.id });
  }

  // ---------------------------------------------------------------- artifacts

  /** Removes one attempt's artifacts: its rows, then its files. */
  async discardAttempt(jobId: string, attempt: number): Promise<void> {
    await this.em().nativeDelete(JobArtifact, { job: jobId, attempt });
    await this.storage.deletePrefix(StorageKeys.jobAttemptPrefix(jobId, attempt));
  }

  /** Removes the artifacts of every attempt but `keep` (after it completed the job). */
  private async discardOtherAttempts(jobId: string, keep: number): Promise<void> {
    await this.em().nativeDelete(JobArtifact, { job: jobId, attempt: { $ne: keep } });
    for (let n = 1; n < keep; n++) await this.storage.deletePrefix(StorageKeys.jobAttemptPrefix(jobId, n));
  }

  // ---------------------------------------------------------------- sweeper

  /**
   * Repairs what Redis or a crash left behind (every worker runs it periodically; concurrent sweeps are safe):
   * - a queued row older than the grace with no live Bull job is enqueued again;
   * - a running row whose lease expired and whose Bull job is gone or failed is re-queued
   *   (`UPDATE … SET status = 'queued' WHERE id AND status = 'running' AND attempts = n AND lease expired`) and enqueued
   *   when attempts remain, else failed under the same guard.
   * A running row whose Bull job is still live is left to Bull's stalled-job check and the claim's takeover.
   */
  async sweep(options: { queuedGraceMs?: number; limit?: number } = {}): Promise<SweepReport> {
    const report: SweepReport = { enqueued: 0, requeued: 0, failed: 0 };
    const limit = options.limit ?? 1000;
    const now = new Date();
    const em = this.em();
    const queued = await em.find(
      Job,
      { status: 'queued', queuedAt: { $lte: new Date(now.getTime() - (options.queuedGraceMs ?? SWEEP_QUEUED_GRACE_MS)) } },
      { limit, orderBy: { queuedAt: 'asc' } },
    );
    for (const job of queued) {
      if (!JOB_TYPES[job.type] || !this.deliveredByQueue(job.type) || (await this.hasLiveBullJob(job))) continue;
      await this.enqueue(job);
      report.enqueued += 1;
    }
    const expired = await em.find(Job, { status: 'running', $or: [{ leaseExpiresAt: { $lt: now } }, { leaseExpiresAt: null }] }, { limit });
    for (const job of expired) {
      if (!JOB_TYPES[job.type] || (await this.hasLiveBullJob(job))) continue;
      const guard: FilterQuery<Job> = {
        id: job.id,
        status: 'running',
        attempts: job.attempts,
        $or: [{ leaseExpiresAt: { $lt: now } }, { leaseExpiresAt: null }],
      };
      if (job.attempts < job.maxAttempts) {
        const t = new Date();
        const affected = await this.em().nativeUpdate(Job, guard, {
          status: 'queued',
          queuedAt: t,
          leaseOwner: null,
          leaseExpiresAt: null,
          error: `Attempt ${job.attempts} stopped answering (its lease expired); queued again`,
          updatedAt: t,
        });
        if (affected === 1) {
          await this.enqueue(job);
          report.requeued += 1;
        }
      } else {
        const affected = await this.em().nativeUpdate(
          Job,
          guard,
          this.finalFields('failed', `Stopped after ${job.attempts} attempt(s): the last one stopped answering (its lease expired)`),
        );
        if (affected === 1) {
          await this.announceFinal(job.id);
          report.failed += 1;
        }
      }
    }
    if (report.enqueued + report.requeued + report.failed > 0)
      this.logger.warn(
        `Sweep: enqueued ${report.enqueued} queued job(s) missing from the queue, re-queued ${report.requeued} and failed ` +
          `${report.failed} job(s) whose lease expired`,
      );
    return report;
  }

  /** True if Bull will still deliver the job; a finished Bull job (failed, or completed and kept) is removed so it can be added again. */
  private async hasLiveBullJob(job: Job): Promise<boolean> {
    const bullJob = await this.queues.queue(JOB_TYPES[job.type].queue).getJob(job.id);
    if (!bullJob) return false;
    const state = await bullJob.getState();
    if (LIVE_BULL_STATES.has(state)) return true;
    await bullJob.remove().catch(() => undefined);
    return false;
  }

  // ---------------------------------------------------------------- helpers

  private finalFields(status: 'failed' | 'cancelled', error: string): Partial<Job> {
    const now = new Date();
    return { status, error, finishedAt: now, leaseOwner: null, leaseExpiresAt: null, updatedAt: now };
  }

  /** Wakes requests waiting on the job (GET …/status?wait_ms=); they re-read the record, so a lost message only costs their wait. */
  private async announceFinal(jobId: string): Promise<void> {
    await publishJobFinal(this.redis, this.keys, jobId).catch((e: unknown) =>
      this.logger.warn(`Cannot announce job ${jobId}: ${(e as Error).message}`),
    );
  }
}
