import { randomUUID } from 'node:crypto';
import { getQueueToken } from '@nestjs/bull';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { EntityManager } from '@mikro-orm/core';
import type { Queue } from 'bull';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { FINAL_JOB_STATUSES, Job, type JsonObject } from '@aperture/database/entities/job.entity.js';
import type { User } from '@aperture/database/entities/user.entity.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { type BullJobData, CANCEL_CHANNEL, JOB_TYPES, type JobPayloads, type JobType, QUEUES, type QueueName } from './job-registry.js';

/** Creates Job records and their Bull jobs, and cancels them. Used by the API; never runs a job. */
@Injectable()
export class JobsService {
  private readonly logger = new Logger(JobsService.name);
  private readonly queues = new Map<QueueName, Queue<BullJobData>>();

  constructor(
    private readonly moduleRef: ModuleRef,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  queue(name: QueueName): Queue<BullJobData> {
    let q = this.queues.get(name);
    if (!q) {
      q = this.moduleRef.get<Queue<BullJobData>>(getQueueToken(name), { strict: false });
      this.queues.set(name, q);
    }
    return q;
  }

  /**
   * A new, not yet persisted Job record for type; persist it with the records it belongs to, then call enqueue().
   * Pass `id` when the params must name it (e.g. where its input is stored).
   */
  build<T extends JobType>(em: EntityManager, type: T, owner: User | null, params: JobPayloads[T], id: string = randomUUID()): Job {
    return em.create(Job, {
      id,
      type,
      owner,
      params: params as unknown as JsonObject,
      maxAttempts: this.config.jobs.attempts,
    });
  }

  /** Puts a persisted Job on its queue. The Bull job id is the record id, so a second enqueue is a no-op. */
  async enqueue(job: Job): Promise<void> {
    const def = JOB_TYPES[job.type as JobType];
    await this.queue(def.queue).add(
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

  /** Re-enqueues queued records whose Bull job is missing (e.g. Redis was flushed or an enqueue failed after commit). */
  async requeueOrphans(em: EntityManager): Promise<number> {
    const queued = await em.find(Job, { status: 'queued' }, { limit: 1000, orderBy: { queuedAt: 'asc' } });
    let n = 0;
    for (const job of queued) {
      const def = JOB_TYPES[job.type as JobType];
      if (!def) continue;
      const existing = await this.queue(def.queue).getJob(job.id);
      if (!existing) {
        await this.enqueue(job);
        n += 1;
      }
    }
    if (n > 0) this.logger.warn(`Re-enqueued ${n} queued job(s) that had no queue entry`);
    return n;
  }

  /**
   * Cancels a job: a queued one is removed from its queue, a running one is told to stop through Redis pub/sub.
   * Returns false if the job had already finished.
   */
  async cancel(em: EntityManager, job: Job): Promise<boolean> {
    if (FINAL_JOB_STATUSES.includes(job.status)) return false;
    const affected = await em.nativeUpdate(
      Job,
      { id: job.id, status: { $in: ['queued', 'running'] } },
      { status: 'cancelled', finishedAt: new Date(), error: 'Cancelled by user' },
    );
    if (affected === 0) return false;
    job.status = 'cancelled';
    const def = JOB_TYPES[job.type as JobType];
    if (def) {
      const bullJob = await this.queue(def.queue).getJob(job.id);
      await bullJob?.remove().catch(() => undefined); // a locked (active) job cannot be removed: the worker stops it
    }
    await this.redis.publish(this.keys.key(CANCEL_CHANNEL), job.id);
    return true;
  }

  /** Cancels (if needed) and deletes a job with its artifacts. */
  async delete(em: EntityManager, job: Job): Promise<void> {
    await this.cancel(em, job);
    await this.storage.deletePrefix(`jobs/${job.id}`);
    await this.storage.deletePrefix(`inputs/${job.id}`); // uploaded inputs (kept apart: a retry discards jobs/{id}/*)
    await em.nativeDelete(Job, { id: job.id });
  }

  get queueNames(): readonly QueueName[] {
    return QUEUES;
  }
}
