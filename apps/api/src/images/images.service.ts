import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { EntityManager, type FilterQuery } from '@mikro-orm/core';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { pageOptions } from '@aperture/common/pagination.js';
import { conflict } from '@aperture/common/problem.js';
import { Image } from '@aperture/database/entities/image.entity.js';
import { Project } from '@aperture/database/entities/project.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobLifecycle } from '@aperture/queue/job-lifecycle.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ImageRejectedError, inspectImage } from '@aperture/imaging/inspect.js';
import { storeUpload, type UploadedFile } from '../uploads/upload-files.js';

/** An uploaded image: a multipart file streamed to a temporary file. */
export type UploadedImage = UploadedFile;

export interface StoreReport {
  stored: Image[];
  bad: { name: string; reason: string }[];
}

/** Multer reads header parameters as latin1; browsers and curl send UTF-8. Also drops any path a client sent. */
export function uploadName(raw: string): string {
  let name = raw;
  const utf8 = Buffer.from(raw, 'latin1').toString('utf8');
  if (!utf8.includes('\uFFFD')) name = utf8;
  name = name.split(/[\\/]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  name = name.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return (name || 'image').slice(0, 255);
}

/** Images: validated by content, stored under `images/{id}/original`, owned by one user, optionally in a project. */
@Injectable()
export class ImagesService {
  private readonly logger = new Logger(ImagesService.name);

  constructor(
    private readonly em: EntityManager,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
    private readonly lifecycle: JobLifecycle,
  ) {}

  /**
   * Validates each file and stores the good ones (files first, moved into storage, then the rows in one INSERT; a
   * failed insert removes the files again). A bad file does not stop the others: it is reported with the reason.
   */
  async store(files: UploadedImage[], ownerId: string, project: Project | null = null): Promise<StoreReport> {
    const em = this.em.fork();
    const owner = em.getReference(User, ownerId);
    const stored: Image[] = [];
    const bad: StoreReport['bad'] = [];
    for (const f of files) {
      const name = uploadName(f.originalname);
      try {
        const info = await inspectImage(f.path, this.config.images.maxSide);
        const id = randomUUID();
        const image = em.create(Image, {
          id,
          owner,
          project: project ? em.getReference(Project, project.id) : null,
          storageKey: StorageKeys.imageOriginal(id),
          originalName: name,
          format: info.format,
          mime: info.mime,
          sizeBytes: f.size,
          width: info.width,
          height: info.height,
          sha256: info.sha256,
        });
        await storeUpload(this.storage, image.storageKey, f);
        stored.push(image);
      } catch (e) {
        if (!(e instanceof ImageRejectedError)) {
          await this.removeFiles(stored);
          throw e;
        }
        bad.push({ name, reason: e.message });
      }
    }
    try {
      // One multi-row INSERT (atomic on its own), without a transaction around it.
      if (stored.length) await em.insertMany(stored);
    } catch (e) {
      await this.removeFiles(stored);
      throw e;
    }
    return { stored, bad };
  }

  private async removeFiles(images: Image[]): Promise<void> {
    await Promise.all(images.map((i) => this.storage.deletePrefix(StorageKeys.imagePrefix(i.id)).catch(() => undefined)));
  }

  /** One of the caller's images; any other id (another user's, malformed, missing) is the same 404. */
  async findOwn(id: string, p: Principal, em: EntityManager = this.em): Promise<Image> {
    return findOwned(em, Image, id, p.userId, 'Image');
  }

  list(p: Principal, q: { page: number; page_size: number; project_id?: string | undefined }): Promise<[Image[], number]> {
    const where: FilterQuery<Image> = { owner: p.userId };
    if (q.project_id) where.project = q.project_id;
    return this.em.findAndCount(Image, where, { orderBy: { createdAt: 'desc', id: 'asc' }, ...pageOptions(q) });
  }

  findByName(name: string, p: Principal): Promise<Image | null> {
    return this.em.findOne(Image, { owner: p.userId, originalName: name }, { orderBy: { createdAt: 'desc' } });
  }

  /**
   * Deletes an image and its file. Refused with 409 while a queued or running job still needs it (cancel or delete
   * those first). Its project results go with it; finished tasks keep their results and artifacts (their input
   * route then answers 404). Its stored SAM embeddings go too unless another image has the same bytes.
   */
  async delete(image: Image): Promise<void> {
    const em = this.em.fork();
    const active = await this.lifecycle.activeJobs(em, { image: image.id });
    if (active.length > 0) {
      throw conflict(`Image ${image.id} is still needed by ${active.length} queued or running job(s); cancel or delete them first.`, {
        jobs: active.map((j) => ({ id: j.id, type: j.type, status: j.status })),
      });
    }
    await this.lifecycle.deleteJobs(em, { image: image.id, type: 'project.detect' });
    await em.nativeDelete(Image, { id: image.id });
    await this.removeStoredFiles(em, [image]);
  }

  /**
   * The stored files of images whose rows are already deleted: each image's file, and the SAM embeddings of its bytes
   * once no image has them any more. A file that cannot be removed now is logged and left to the storage sweep.
   */
  async removeStoredFiles(em: EntityManager, images: readonly Pick<Image, 'id' | 'sha256'>[]): Promise<void> {
    const remove = (prefix: string): Promise<void> =>
      this.storage.deletePrefix(prefix).catch((e: unknown) => this.logger.warn(`Could not remove ${prefix}: ${String(e)}`));
    for (const image of images) await remove(StorageKeys.imagePrefix(image.id));
    for (const sha of new Set(images.map((i) => i.sha256))) {
      if ((await em.count(Image, { sha256: sha })) === 0) await remove(StorageKeys.embeddingPrefix(sha));
    }
  }
}
