import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest } from '@aperture/common/problem.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { SegmentAutoOptions } from '@aperture/queue/segment-auto.types.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ImagesService, type UploadedImage } from '../images/images.service.js';
import { inspectUpload, requireOneImageSource } from '../images/upload.js';
import { completedJob } from '../jobs/job-answers.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import type { AutoMaskOptionsDto, SegmentAutoFormDto } from './segment-auto.dto.js';

export const OPTION_KEYS = [
  'points_per_side',
  'points_per_batch',
  'pred_iou_thresh',
  'stability_score_thresh',
  'stability_score_offset',
  'box_nms_thresh',
  'crop_n_layers',
  'crop_nms_thresh',
  'crop_overlap_ratio',
  'crop_n_points_downscale_factor',
  'min_mask_region_area',
  'output_mode',
] as const satisfies readonly (keyof SegmentAutoOptions)[];

/** SAM's default points_per_side and crop_n_layers (for the cross-field check only; the worker applies the defaults). */
const DEFAULT_POINTS_PER_SIDE = 32;

/** The intake of POST /segment/auto: checks the model, the image and the options, then queues a segment.auto job. */
@Injectable()
export class SegmentAutoService {
  constructor(
    private readonly catalogue: ModelCatalogueService,
    private readonly images: ImagesService,
    private readonly jobs: JobsService,
    private readonly waiter: JobWaiter,
    private readonly em: EntityManager,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  /** Every check first; then the upload (if any) is stored under the job's inputs and the job is queued. */
  async submit(form: SegmentAutoFormDto, file: UploadedImage | undefined, p: Principal): Promise<Job> {
    const model = this.catalogue.resolveAliased(form.model, form.model_type, ['sam']);
    const options = autoMaskOptions(form);
    requireOneImageSource(file, form.image_id);
    const em = this.em.fork();
    const id = randomUUID();
    let imageKey: string;
    let imageId: string | null = null;
    if (file) {
      await inspectUpload(file.buffer, this.config.images.maxSide);
      imageKey = StorageKeys.input(id, 'image');
    } else {
      const image = await this.images.findOwn(form.image_id!, p, em);
      imageKey = image.storageKey;
      imageId = image.id;
    }
    const owner = p.userId ? em.getReference(User, p.userId) : null;
    const job = this.jobs.build(em, 'segment.auto', owner, { model: model.name, imageKey, imageId, options }, id);
    if (file) await this.storage.put(imageKey, file.buffer);
    try {
      await em.persist(job).flush();
    } catch (e) {
      if (file) await this.storage.deletePrefix(StorageKeys.inputPrefix(job.id)).catch(() => undefined);
      throw e;
    }
    await this.jobs.enqueue(job);
    return job;
  }

  /** The completed job within waitMs, or null while it is still queued or running (422 if it failed). */
  waitFor(job: Job, waitMs: number): Promise<Job | null> {
    return completedJob(this.waiter, this.em, job, waitMs);
  }
}

/** The generator options a request set (the others take SAM's defaults), checked across fields; a bad combination is a 400. */
export function autoMaskOptions(form: Partial<Pick<AutoMaskOptionsDto, (typeof OPTION_KEYS)[number]>>): SegmentAutoOptions {
  const options: Record<string, unknown> = {};
  for (const k of OPTION_KEYS) if (form[k] !== undefined) options[k] = form[k];
  // The one rule that spans fields: the last crop layer needs at least one point a side.
  const pps = form.points_per_side ?? DEFAULT_POINTS_PER_SIDE;
  const factor = form.crop_n_points_downscale_factor ?? 1;
  const layers = form.crop_n_layers ?? 0;
  if (Math.trunc(pps / factor ** layers) < 1) {
    throw badRequest(`crop layer ${layers} would have no points: points_per_side / crop_n_points_downscale_factor^crop_n_layers < 1`, {
      errors: [{ field: 'crop_n_points_downscale_factor', messages: ['too large for points_per_side and crop_n_layers'] }],
    });
  }
  return options as SegmentAutoOptions;
}
