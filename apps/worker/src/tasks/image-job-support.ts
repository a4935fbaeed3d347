import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from '@mikro-orm/core';
import { Image } from '@aperture/database/entities/image.entity.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import { ImageSource, type RgbImage } from '@aperture/imaging/decode.js';
import { PermanentJobError } from '@aperture/queue/job-handler.js';
import { STORAGE, type StoragePort, StorageNotFoundError } from '@aperture/storage/storage.port.js';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A stored input image, read once, its header read (size after EXIF orientation), no pixels decoded: for a job whose
 * outputs do not need the full-size pixels. The pipelines resize it while decoding, at their model's input size;
 * decodeMs covers the read and the header only (the decoding is in the pipeline's pre-processing).
 */
export async function readStoredSource(storage: StoragePort, key: string): Promise<{ bytes: Buffer; src: ImageSource; decodeMs: number }> {
  const t0 = performance.now();
  const bytes = await readAll(await storage.read(key));
  const src = await ImageSource.open(bytes);
  return { bytes, src, decodeMs: performance.now() - t0 };
}

/**
 * A stored input image, read once and decoded once at full size (EXIF-oriented RGB), for a job with a full-size
 * output (masks cut from the pixels, overlays, the X-ray effect); decodeMs covers both. `src` shares the decoded
 * pixels: the pipelines given it resize from them rather than decode again.
 */
export async function readStoredImage(
  storage: StoragePort,
  key: string,
): Promise<{ bytes: Buffer; src: ImageSource; img: RgbImage; decodeMs: number }> {
  const t0 = performance.now();
  const { bytes, src } = await readStoredSource(storage, key);
  const img = await src.rgb();
  return { bytes, src, img, decodeMs: performance.now() - t0 };
}

/** The SAM embedding cache's key for an image: the sha256 of its file (hashing costs far less than the encoder). */
export const contentSha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

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
    try {
      const { img, decodeMs } = await readStoredImage(this.storage, image.storageKey);
      return { image, img, decodeMs };
    } catch (e) {
      if (e instanceof StorageNotFoundError) throw new PermanentJobError(`The file of image ${imageId} is missing from storage`);
      throw e;
    }
  }
}

export const json = (v: unknown): Buffer => Buffer.from(`${JSON.stringify(v, null, 2)}\n`);
