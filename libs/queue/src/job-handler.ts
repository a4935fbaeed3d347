import type { Readable } from 'node:stream';
import { SetMetadata } from '@nestjs/common';
import type { EntityManager } from '@mikro-orm/core';
import type { Job, JobArtifact } from '@aperture/database/entities/job.entity.js';
import type { JobPayloads, JobResults, JobType } from './job-registry.js';

/** What a handler gets for one attempt of one job. */
export interface JobContext<T extends JobType> {
  readonly job: Job;
  readonly params: JobPayloads[T];
  /** A fork of the entity manager for this attempt only. */
  readonly em: EntityManager;
  /** Aborted when the job is cancelled or the worker shuts down hard; check it between units of work. */
  readonly signal: AbortSignal;
  /** The attempt this context belongs to (1 for the first run). */
  readonly attempt: number;
  /** Reports progress 0..1 (throttled writes to the database and the queue); also renews the attempt's lease. */
  progress(fraction: number): Promise<void>;
  /**
   * Stores a file under a generated key of this attempt and attaches it to the job. Throws JobLeaseLostError (a
   * JobCancelledError) when this attempt is no longer the job's current one (cancelled, or taken over).
   */
  saveArtifact(name: string, contentType: string, data: Readable | Buffer): Promise<JobArtifact>;
}

export interface JobHandler<T extends JobType> {
  handle(ctx: JobContext<T>): Promise<JobResults[T]>;
}

export const JOB_HANDLER_TYPE = 'aperture:jobHandlerType';

/** Tags a provider as the handler of a job type; the worker refuses to boot with a type handled zero or two times. */
export const HandlesJob = (type: JobType): ClassDecorator => SetMetadata(JOB_HANDLER_TYPE, type);

/** Thrown by handlers for errors that retrying cannot fix (bad params, missing records): the job fails at once. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

export class JobCancelledError extends Error {
  override name = 'JobCancelledError';
  constructor(message = 'Job was cancelled') {
    super(message);
  }
}

/** This attempt is no longer the job's current one (cancelled, deleted, or taken over after its lease expired): stop, write nothing. */
export class JobLeaseLostError extends JobCancelledError {
  override name = 'JobLeaseLostError';
  constructor(jobId: string, attempt: number) {
    super(`Attempt ${attempt} of job ${jobId} is no longer current (cancelled or taken over)`);
  }
}
