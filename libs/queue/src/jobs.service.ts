import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Queue } from 'bull';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { Job, type JsonObject } from '@aperture/database/entities/job.entity.js';
import type { User } from '@aperture/database/entities/user.entity.js';
import { JobLifecycle } from './job-lifecycle.js';
import { JobQueues } from './job-queues.js';
import { type BullJobData, type JobPayloads, type JobType, jobModel, type QueueName } from './job-registry.js';

/**
 * The API's side of jobs: builds Job records, enqueues, cancels and deletes them. Every status change is the
 * lifecycle's (JobLifecycle); this facade only keeps the API's calls short. Never runs a job.
 */
@Injectable()
export class JobsService {
  constructor(
    private readonly lifecycle: JobLifecycle,
    private readonly queues: JobQueues,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  queue(name: QueueName): Queue<BullJobData> {
    return this.queues.queue(name);
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
      model: jobModel(type, params),
      maxAttempts: this.config.jobs.attempts,
    });
  }

  /** Puts a persisted Job on its queue (commit first). If Redis refuses, this throws and the worker's sweeper enqueues it later. */
  enqueue(job: Job): Promise<void> {
    return this.lifecycle.enqueue(job);
  }

  /**
   * Re-enqueues queued records whose Bull job is missing, now (no grace: a second enqueue is a no-op), and resolves
   * expired leases (see JobLifecycle.sweep, which the worker also runs periodically).
   */
  async requeueOrphans(_em?: EntityManager): Promise<number> {
    const r = await this.lifecycle.sweep({ queuedGraceMs: 0 });
    return r.enqueued + r.requeued;
  }

  /** Cancels a job (see JobLifecycle.cancel). Returns false if the job had already finished. */
  cancel(em: EntityManager, job: Job): Promise<boolean> {
    return this.lifecycle.cancel(em, job);
  }

  /** Cancels (if needed) and deletes a job with its artifacts and uploaded inputs. */
  delete(em: EntityManager, job: Job): Promise<void> {
    return this.lifecycle.deleteJob(em, job);
  }

  get queueNames(): readonly QueueName[] {
    return this.queues.names;
  }
}
