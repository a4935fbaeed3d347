import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest } from '@aperture/common/problem.js';
import { Image } from '@aperture/database/entities/image.entity.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { SegmentPromptParams } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { ImagesService, type UploadedImage } from '../images/images.service.js';
import { inspectUpload, requireOneImageSource } from '../images/upload.js';
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
    private readonly images: ImagesService,
    private readonly catalogue: ModelCatalogueService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
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
    requireOneImageSource(file, form.image_id);
    const em = this.em.fork();
    let size: { width: number; height: number };
    let image: Image | null = null;
    if (file) {
      size = await inspectUpload(file.buffer, this.config.images.maxSide);
    } else {
      image = await this.images.findOwn(form.image_id!, p, em);
      size = { width: image.width, height: image.height };
    }
    const prompts = promptSets(pts, boxes, form.coords, size.width, size.height);
    const id = randomUUID();
    const imageKey = image ? image.storageKey : StorageKeys.input(id, 'image');
    const params: SegmentPromptParams = { model: model.name, imageKey, prompts, multimask: form.multimask_output, output: form.output };
    const job = this.jobs.build(em, 'segment.prompt', em.getReference(User, p.userId), params, id);
    if (image) job.image = image;
    else await this.storage.put(imageKey, file!.buffer);
    try {
      await em.persist(job).flush();
    } catch (e) {
      if (!image) await this.storage.deletePrefix(StorageKeys.inputPrefix(job.id)).catch(() => undefined);
      throw e;
    }
    await this.jobs.enqueue(job);
    return job;
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
