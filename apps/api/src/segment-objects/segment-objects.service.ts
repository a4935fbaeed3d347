import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest, ProblemException } from '@aperture/common/problem.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { SegmentObjectsParams, SegmentObjectsResult, SegmentObjectsSource } from '@aperture/queue/segment-objects.types.js';
import { DriveStorage } from '@aperture/storage/drive.storage.js';
import { ImageJobIntake } from '../images/image-job-intake.js';
import type { UploadedImage } from '../images/images.service.js';
import { completedJob } from '../jobs/job-answers.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import { boxCorners, promptSets, withLabels } from '../segment/coords.js';
import { autoMaskOptions, OPTION_KEYS } from '../segment-auto/segment-auto.service.js';
import { DEFAULT_CLEAN_AREA, DEFAULT_MIN_PIXELS, type SegmentObjectsFormDto, type SegmentObjectsResultDto } from './segment-objects.dto.js';

/** The generator's parameters (min_mask_region_area also sets the cleaning, so it applies to prompts as well). */
const AUTO_ONLY = OPTION_KEYS.filter((k) => k !== 'min_mask_region_area' && k !== 'output_mode');

/**
 * The intake of POST /segment/objects: checks the model, the masks' source, the image, the prompts against its size
 * and Drive (when asked), then stores the upload and queues one segment.objects job. The worker does the rest.
 */
@Injectable()
export class SegmentObjectsService {
  constructor(
    private readonly catalogue: ModelCatalogueService,
    private readonly intake: ImageJobIntake,
    private readonly jobs: JobsService,
    private readonly waiter: JobWaiter,
    private readonly drive: DriveStorage,
    private readonly em: EntityManager,
  ) {}

  async submit(form: SegmentObjectsFormDto, file: UploadedImage | undefined, p: Principal): Promise<Job> {
    const model = this.catalogue.resolveAliased(form.model, form.model_type, ['sam']);
    const prompted = form.points !== undefined || form.box !== undefined;
    if (prompted) {
      const auto = AUTO_ONLY.filter((k) => form[k] !== undefined);
      if (auto.length > 0) {
        throw badRequest(
          `${auto.join(', ')} ${auto.length > 1 ? 'apply' : 'applies'} to the automatic generator only: send no points or box.`,
          {
            errors: auto.map((field) => ({ field, messages: ['not with points or box'] })),
          },
        );
      }
      if (form.points?.length === 0 && !form.box?.length) {
        throw badRequest('points must hold at least one point.', { errors: [{ field: 'points', messages: ['at least one point'] }] });
      }
      if (form.box?.length === 0) {
        throw badRequest('box must hold at least one box.', { errors: [{ field: 'box', messages: ['at least one box'] }] });
      }
    }
    const options = prompted ? null : autoMaskOptions(form);
    const boxes = (form.box ?? []).map(boxCorners);
    if (form.save_to_drive && !this.drive.enabled) {
      throw new ProblemException(503, 'DRIVE_ERROR', 'Google Drive is not enabled on this server (GOOGLE_DRIVE_ENABLED is false).');
    }
    const em = this.em.fork();
    const src = await this.intake.source(em, file, form.image_id, p);
    const id = randomUUID();
    const source: SegmentObjectsSource = options
      ? { mode: 'auto', options }
      : { mode: 'prompts', prompts: promptSets(withLabels(form.points ?? []), boxes, form.coords, src.width, src.height) };
    const params: SegmentObjectsParams = {
      model: model.name,
      imageKey: this.intake.imageKey(id, src),
      imageId: src.image?.id ?? null,
      source,
      minPixels: form.min_pixels ?? DEFAULT_MIN_PIXELS,
      cleanArea: form.min_mask_region_area ?? DEFAULT_CLEAN_AREA,
      feather: form.feather ?? 0,
      drive: form.save_to_drive ? { folderId: form.drive_folder_id ?? null } : null,
    };
    return this.intake.queue(em, this.jobs.build(em, 'segment.objects', em.getReference(User, p.userId), params, id), src);
  }

  /**
   * The job's answer once it completed within waitMs; null while it is still queued or running (422 if it failed).
   * A Drive upload that failed is the 503 DRIVE_ERROR problem, carrying the job's id and result URL: the files are kept.
   */
  async answer(job: Job, waitMs: number): Promise<SegmentObjectsResultDto | null> {
    const j = await completedJob(this.waiter, this.em, job, waitMs);
    if (!j) return null;
    const result = j.result as SegmentObjectsResult;
    if (result.drive_error) {
      throw new ProblemException(503, 'DRIVE_ERROR', `${result.drive_error} The objects were saved: see the job's result.`, {
        job_id: j.id,
        result_url: `/api/v1/jobs/${j.id}/result`,
      });
    }
    return result;
  }
}
