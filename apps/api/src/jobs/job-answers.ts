import { ApiProperty } from '@nestjs/swagger';
import type { EntityManager } from '@mikro-orm/core';
import { ProblemException } from '@aperture/common/problem.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import type { JobWaiter } from '@aperture/queue/job-events.js';
import type { JobResultDto } from './jobs.dto.js';
import { JobAnswer } from './prefer-wait.js';

/** The 202 answer of a route that queued a job: where to follow it. */
export class JobAcceptedDto {
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ example: 'queued' }) status!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/status' }) status_url!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/result' }) result_url!: string;
}

export function jobAccepted(job: Pick<Job, 'id' | 'status'>): JobAcceptedDto {
  return { job_id: job.id, status: job.status, status_url: `/api/v1/jobs/${job.id}/status`, result_url: `/api/v1/jobs/${job.id}/result` };
}

/** The 202 answer of a queued job, or with Prefer: wait its result as GET /jobs/{id}/result gives it. */
export function acceptedJob(job: Pick<Job, 'id' | 'status'>): JobAnswer<JobAcceptedDto, JobResultDto> {
  return JobAnswer.ofJob(jobAccepted(job), job.id);
}

/**
 * Waits up to waitMs for a job a synchronous route queued: the completed job, or null if it is still queued or running
 * (the route then answers 202 with jobAccepted). A failed or cancelled job is the 422 MODEL_ERROR problem.
 */
export async function completedJob(waiter: JobWaiter, em: EntityManager, job: Job, waitMs: number): Promise<Job | null> {
  const fork = em.fork();
  const j = await waiter.whenFinal(job, waitMs, () => fork.findOneOrFail(Job, { id: job.id }, { refresh: true }));
  if (j.status === 'completed' && j.result) return j;
  if (j.status === 'failed' || j.status === 'cancelled') {
    throw new ProblemException(422, 'MODEL_ERROR', `Job ${j.id} ${j.status}: ${j.error ?? 'no reason recorded'}`, { job_id: j.id });
  }
  return null;
}
