import type { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from '@mikro-orm/core';
import { Image } from '@aperture/database/entities/image.entity.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import { decodeImage, type RgbImage } from '@aperture/imaging/decode.js';
import { PermanentJobError } from '@aperture/queue/job-handler.js';
import { STORAGE, type StoragePort, StorageNotFoundError } from '@aperture/storage/storage.port.js';

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** How long the job waited in the queue before this attempt started (the statistics' queue phase). */
export const queueMs = (job: Job): number | undefined =>
  job.startedAt ? Math.max(0, job.startedAt.getTime() - job.queuedAt.getTime()) : undefined;

/** What the image jobs (tasks, project images) share: the input image. The models and their statistics are the pipelines'. */
@Injectable()
export class ImageJobSupport {
  constructor(@Inject(STORAGE) private readonly storage: StoragePort) {}

  /** The job's uploaded image, decoded (EXIF-oriented RGB). A deleted image fails the job for good. */
  async image(em: EntityManager, imageId: string): Promise<{ image: Image; img: RgbImage; decodeMs: number }> {
    const image = await em.findOne(Image, { id: imageId });
    if (!image) throw new PermanentJobError(`Image ${imageId} was deleted before the job ran`);
    const t0 = performance.now();
    let bytes: Buffer;
    try {
      bytes = await readAll(await this.storage.read(image.storageKey));
    } catch (e) {
      if (e instanceof StorageNotFoundError) throw new PermanentJobError(`The file of image ${imageId} is missing from storage`);
      throw e;
    }
    const img = await decodeImage(bytes);
    return { image, img, decodeMs: performance.now() - t0 };
  }
}

export const json = (v: unknown): Buffer => Buffer.from(`${JSON.stringify(v, null, 2)}\n`);
