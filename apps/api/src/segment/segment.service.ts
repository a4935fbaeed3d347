import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest } from '@aperture/common/problem.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { SegmentPromptParams } from '@aperture/queue/job-registry.js';
import { ImageJobIntake } from '../images/image-job-intake.js';
import type { UploadedImage } from '../images/images.service.js';
import { completedJob } from '../jobs/job-answers.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import { boxCorners, type PromptBox, type PromptPoint, promptSets, withLabels } from './coords.js';
import type { SegmentBoxFormDto, SegmentCommonFormDto, SegmentPointsFormDto, SegmentResponseDto } from './segment.dto.js';

/** How long a synchronous prompt route waits for its job before answering 202. */
export const SEGMENT_SYNC_WAIT_MS = 60_000;

/**
 * Prompt segmentation (SAM): checks everything (model, image, prompts against the image's size) before anything is
 * stored, then queues one segment.prompt job. The worker runs the model; the API only waits for the job.
 */
@Injectable()
export class SegmentService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    private readonly waiter: JobWaiter,
    private readonly intake: ImageJobIntake,
    private readonly catalogue: ModelCatalogueService,
  ) {}

  points(form: SegmentPointsFormDto, file: UploadedImage | undefined, p: Principal): Promise<Job> {
    if (form.points.length === 0) {
      throw badRequest('points must hold at least one point.', { errors: [{ field: 'points', messages: ['at least one point'] }] });
    }
    return this.create(form, file, p, withLabels(form.points), []);
  }

  box(form: SegmentBoxFormDto, file: UploadedImage | undefined, p: Principal): Promise<Job> {
    if (form.box.length === 0)
      throw badRequest('box must hold at least one box.', { errors: [{ field: 'box', messages: ['at least one box'] }] });
    return this.create(form, file, p, withLabels(form.points ?? []), form.box.map(boxCorners));
  }

  private async create(
    form: SegmentCommonFormDto,
    file: UploadedImage | undefined,
    p: Principal,
    pts: PromptPoint[],
    boxes: PromptBox[],
  ): Promise<Job> {
    const model = this.catalogue.resolveAliased(form.model, form.model_type, ['sam']);
    const em = this.em.fork();
    const src = await this.intake.source(em, file, form.image_id, p);
    const prompts = promptSets(pts, boxes, form.coords, src.width, src.height);
    const id = randomUUID();
    const params: SegmentPromptParams = {
      model: model.name,
      imageKey: this.intake.imageKey(id, src),
      prompts,
      multimask: form.multimask_output,
      output: form.output,
    };
    return this.intake.queue(em, this.jobs.build(em, 'segment.prompt', em.getReference(User, p.userId), params, id), src);
  }

  /** The job's answer once it completed within waitMs; null while it is still queued or running (422 if it failed). */
  async answer(job: Job, waitMs: number): Promise<SegmentResponseDto | null> {
    const j = await completedJob(this.waiter, this.em, job, waitMs);
    if (!j) return null;
    const r = j.result!;
    return {
      job_id: j.id,
      model: String(r['model']),
      width: Number(r['width']),
      height: Number(r['height']),
      results: r['results'] as unknown as SegmentResponseDto['results'],
      visualization_url: `/api/v1/jobs/${j.id}/visualization.svg`,
    };
  }
}
