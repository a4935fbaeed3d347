import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Image } from '@aperture/database/entities/image.entity.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ImagesService, type UploadedImage } from './images.service.js';
import { inspectUpload, requireOneImageSource } from './upload.js';
import { storeUpload } from '../uploads/upload-files.js';

/** The image a request names: an upload (checked by its content) or one of the caller's stored images. */
export interface ImageSource {
  image: Image | null;
  upload: UploadedImage | null;
  width: number;
  height: number;
}

/**
 * The intake every single-image job route shares: resolve the image (an upload or `image_id`), then store the upload
 * under the job's inputs, save the job and queue it, removing the stored upload again if the save fails. Every check
 * of the route runs before `queue`, so a refused request stores nothing.
 */
@Injectable()
export class ImageJobIntake {
  constructor(
    private readonly images: ImagesService,
    private readonly jobs: JobsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  /** Exactly one of an upload and an image id; the upload checked by content, the id one of the caller's images (404). */
  async source(em: EntityManager, upload: UploadedImage | undefined, imageId: string | undefined, p: Principal): Promise<ImageSource> {
    requireOneImageSource(upload, imageId);
    if (upload) {
      const { width, height } = await inspectUpload(upload, this.config.images.maxSide, { hash: false });
      return { image: null, upload, width, height };
    }
    const image = await this.images.findOwn(imageId!, p, em);
    return { image, upload: null, width: image.width, height: image.height };
  }

  /** Where the job reads its image: the stored image's file, or the upload kept under the job's inputs. */
  imageKey(jobId: string, src: ImageSource): string {
    return src.image ? src.image.storageKey : StorageKeys.input(jobId, 'image');
  }

  /** Stores the upload (if any), saves the job built with `imageKey(job.id, src)`, and queues it. */
  async queue(em: EntityManager, job: Job, src: ImageSource): Promise<Job> {
    if (src.image) job.image = src.image;
    else {
      await storeUpload(this.storage, this.imageKey(job.id, src), src.upload!);
      job.inputBytes = src.upload!.size;
    }
    try {
      await em.persist(job).flush();
    } catch (e) {
      if (!src.image) await this.storage.deletePrefix(StorageKeys.inputPrefix(job.id)).catch(() => undefined);
      throw e;
    }
    await this.jobs.enqueue(job);
    return job;
  }
}
