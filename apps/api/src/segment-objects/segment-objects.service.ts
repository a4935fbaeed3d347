import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest, ProblemException } from '@aperture/common/problem.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Image } from '@aperture/database/entities/image.entity.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { SegmentObjectsParams, SegmentObjectsResult, SegmentObjectsSource } from '@aperture/queue/segment-objects.types.js';
import { DriveStorage } from '@aperture/storage/drive.storage.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ImagesService, type UploadedImage } from '../images/images.service.js';
import { inspectUpload, requireOneImageSource } from '../images/upload.js';
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
    private readonly images: ImagesService,
    private readonly jobs: JobsService,
    private readonly waiter: JobWaiter,
    private readonly drive: DriveStorage,
    private readonly em: EntityManager,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
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
    requireOneImageSource(file, form.image_id);
    if (form.save_to_drive && !this.drive.enabled) {
      throw new ProblemException(503, 'DRIVE_ERROR', 'Google Drive is not enabled on this server (GOOGLE_DRIVE_ENABLED is false).');
    }

    const em = this.em.fork();
    const id = randomUUID();
    let image: Image | null = null;
    let size: { width: number; height: number };
    if (file) {
      size = await inspectUpload(file.buffer, this.config.images.maxSide);
    } else {
      image = await this.images.findOwn(form.image_id!, p, em);
      size = { width: image.width, height: image.height };
    }
    const source: SegmentObjectsSource = options
      ? { mode: 'auto', options }
      : { mode: 'prompts', prompts: promptSets(withLabels(form.points ?? []), boxes, form.coords, size.width, size.height) };
    const imageKey = image ? image.storageKey : StorageKeys.input(id, 'image');
    const params: SegmentObjectsParams = {
      model: model.name,
      imageKey,
      imageId: image?.id ?? null,
      source,
      minPixels: form.min_pixels ?? DEFAULT_MIN_PIXELS,
      cleanArea: form.min_mask_region_area ?? DEFAULT_CLEAN_AREA,
      feather: form.feather ?? 0,
      drive: form.save_to_drive ? { folderId: form.drive_folder_id ?? null } : null,
    };
    const job = this.jobs.build(em, 'segment.objects', em.getReference(User, p.userId), params, id);
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
