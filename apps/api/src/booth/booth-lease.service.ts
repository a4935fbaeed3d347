import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { isUuid } from '@aperture/common/ids.js';
import { badRequest, conflict, forbidden, ProblemException } from '@aperture/common/problem.js';
import { BoothSubmission } from '@aperture/database/entities/booth.entity.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { missing } from '@aperture/database/owned.js';
import type { InspectedImage } from '@aperture/imaging/inspect.js';
import { JobLeaseLostError } from '@aperture/queue/job-handler.js';
import { type JobAttempt, JobLifecycle } from '@aperture/queue/job-lifecycle.js';
import { type BoothOption, type BoothXrayResult, boothOptionName } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import type { UploadedImage } from '../images/images.service.js';
import { uploadContent } from '../uploads/upload-files.js';
import { inspectUpload } from '../images/upload.js';

export interface Lease {
  job: Job;
  submission: BoothSubmission;
  leaseId: string;
  expiresAt: Date;
  content: Readable;
}

/** How many of the oldest waiting jobs one lease request tries to claim, per round. */
const CANDIDATES = 20;

/**
 * External workers over HTTP, on the same guarded claim and complete as the internal workers: a lease is a claim
 * whose owner names the worker and the lease (`lease:{userId}:{leaseId}`), heartbeats renew it while it is live, and
 * the options are the attempt's artifacts, completed by the guarded complete. A job is completed at most once, by
 * whichever holder of a current attempt gets there first.
 */
@Injectable()
export class BoothLeaseService {
  constructor(
    private readonly em: EntityManager,
    private readonly lifecycle: JobLifecycle,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  private get leaseMs(): number {
    return this.config.booth.leaseSeconds * 1000;
  }

  private static owner(p: Principal, leaseId: string): string {
    return `lease:${p.userId}:${leaseId}`;
  }

  /**
   * A booth worker: the role booth-worker (or admin), or an API key with the booth-worker scope (which only such
   * users may grant; the route itself requires that scope of every key).
   */
  private static requireWorker(p: Principal): void {
    if (p.role === 'booth-worker' || p.role === 'admin' || p.scopes?.includes('booth-worker')) return;
    throw forbidden('Only booth workers (role booth-worker) may lease booth jobs.');
  }

  /** Claims the oldest waiting booth job (queued, or running under an expired lease); null when none is waiting. */
  async lease(p: Principal): Promise<Lease | null> {
    BoothLeaseService.requireWorker(p);
    if (this.config.booth.processing === 'internal') return null; // the worker's model makes every option
    const em = this.em.fork();
    for (let round = 0; round < 3; round++) {
      const now = new Date();
      const candidates = await em.find(
        Job,
        { type: 'booth.xray', $or: [{ status: 'queued' }, { status: 'running', leaseExpiresAt: { $lt: now } }] },
        { orderBy: { queuedAt: 'asc', id: 'asc' }, limit: CANDIDATES, fields: ['id'] },
      );
      if (candidates.length === 0) return null;
      for (const c of candidates) {
        const leaseId = randomUUID();
        const r = await this.lifecycle.claim(em, c.id, { owner: BoothLeaseService.owner(p, leaseId), leaseMs: this.leaseMs });
        if (r.kind !== 'claimed') continue;
        const submission = await em.findOne(BoothSubmission, { job: c.id });
        if (!submission) {
          await this.lifecycle.fail(r.attempt, 'The booth submission of this job no longer exists', true);
          continue;
        }
        return {
          job: r.job,
          submission,
          leaseId,
          expiresAt: r.job.leaseExpiresAt ?? new Date(Date.now() + this.leaseMs),
          content: await this.storage.read(submission.originalKey),
        };
      }
    }
    return null;
  }

  /** The caller's current attempt of a booth job under leaseId, or the 404 (no such booth job) / 409 (lease lost). */
  private async attempt(jobId: string, leaseId: string | undefined, p: Principal): Promise<JobAttempt> {
    BoothLeaseService.requireWorker(p);
    if (!leaseId || !isUuid(leaseId)) {
      throw badRequest('Send the lease id (the lease-id header of POST /api/v1/jobs/lease) as lease_id or the lease-id header.', {
        errors: [{ field: 'lease_id', messages: ['the lease-id of your lease is required'] }],
      });
    }
    const job = isUuid(jobId) ? await this.em.fork().findOne(Job, { id: jobId, type: 'booth.xray' }, { fields: ['id'] }) : null;
    if (!job) throw missing('Job', jobId, { code: 'JOB_NOT_FOUND' });
    const a = await this.lifecycle.attemptOf(jobId, BoothLeaseService.owner(p, leaseId), this.leaseMs);
    if (!a) throw this.lost(jobId, leaseId);
    return a;
  }

  private lost(jobId: string, leaseId: string): ProblemException {
    return conflict(`Lease ${leaseId} of job ${jobId} expired or was taken over; nothing was stored. Lease a job again.`);
  }

  /** Extends a live lease by BOOTH_LEASE_SECONDS; an expired one is a 409 even if nobody took the job yet. */
  async heartbeat(jobId: string, leaseId: string | undefined, p: Principal): Promise<Date> {
    const a = await this.attempt(jobId, leaseId, p);
    if (!(await this.lifecycle.renewLive(a))) throw this.lost(jobId, leaseId!);
    return new Date(Date.now() + a.leaseMs);
  }

  /**
   * Checks every file first (1..BOOTH_RESULTS_PER_IMAGE images, by content), then stores them as the attempt's
   * artifacts and completes the job, all under the lease's guard: a lease that expired or was taken over stores nothing.
   */
  async submitOptions(jobId: string, leaseId: string | undefined, files: UploadedImage[], p: Principal): Promise<number> {
    const max = this.config.booth.resultsPerImage;
    if (files.length === 0 || files.length > max) {
      throw badRequest(`Send 1 to ${max} result images as the multipart field "files"; got ${files.length}.`, {
        errors: [{ field: 'files', messages: [`1 to ${max} images`] }],
      });
    }
    const a = await this.attempt(jobId, leaseId, p);
    const checked: InspectedImage[] = [];
    for (const f of files) checked.push(await inspectUpload(f, this.config.images.maxSide));
    if (!(await this.lifecycle.renewLive(a))) throw this.lost(jobId, leaseId!);
    const em = this.em.fork();
    const job = em.getReference(Job, jobId);
    const options: BoothOption[] = [];
    try {
      for (const [i, f] of files.entries()) {
        const mime = checked[i]!.mime;
        const artifact = await this.lifecycle.saveArtifact(em, a, job, boothOptionName(i), mime, uploadContent(f));
        options.push({ index: i, artifact_id: artifact.id, style: `external-${i + 1}`, content_type: mime });
      }
    } catch (e) {
      await this.lifecycle.abandon(a); // all or nothing: the lease (if still held) may send them again
      if (e instanceof JobLeaseLostError) throw this.lost(jobId, leaseId!);
      throw e;
    }
    const result: BoothXrayResult = { source: 'external', model: null, options };
    if (!(await this.lifecycle.complete(a, result))) throw this.lost(jobId, leaseId!);
    return options.length;
  }
}
