import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest, conflict, notFound } from '@aperture/common/problem.js';
import { BoothSubmission } from '@aperture/database/entities/booth.entity.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { QrCode } from '@aperture/database/entities/qr.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { BoothXrayParams } from '@aperture/queue/job-registry.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { zipStream } from '@aperture/storage/zip-stream.js';
import type { UploadedImage } from '../images/images.service.js';
import { uploadContent } from '../uploads/upload-files.js';
import { inspectUpload } from '../images/upload.js';
import type { BoothSubmissionFormDto, OwnerResultDto } from './booth.dto.js';

/** The image-to-image model that makes the booth's options in the worker. */
export const BOOTH_XRAY_MODEL = 'xray';

/** Job states in which a booth job is still ahead in the queue. */
const WAITING = ['queued', 'running'] as const;

/** Submissions (the photo, the owner's and animal's names, a QR code) and the owner's result page. */
@Injectable()
export class BoothService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  animalTypes(): string[] {
    return this.config.booth.animalTypes;
  }

  /**
   * Checks everything (photo, animal type, QR code) before anything is stored; then the photo, the submission and
   * its job in one commit, then the job is queued (or left for external workers).
   */
  async submit(
    form: BoothSubmissionFormDto,
    file: UploadedImage | undefined,
    p: Principal,
  ): Promise<{ submission: BoothSubmission; job: Job; currentJobs: number }> {
    if (!file) {
      throw badRequest('Send the photo as the multipart field "file".', { errors: [{ field: 'file', messages: ['a photo is required'] }] });
    }
    const types = this.animalTypes();
    if (!types.includes(form.animal_type)) {
      throw badRequest(`animal_type must be one of ${types.join(', ')} (GET /api/v1/animal-types), got "${form.animal_type}".`, {
        errors: [{ field: 'animal_type', messages: [`one of ${types.join(', ')}`] }],
      });
    }
    const info = await inspectUpload(file, this.config.images.maxSide);
    const em = this.em.fork();
    const code = await em.findOne(QrCode, {
      $or: [{ code: form.qr_content.toUpperCase() }, { value: form.qr_content }],
      batch: { owner: p.userId },
    });
    if (!code) {
      throw badRequest('qr_content must be a code issued by one of your QR batches (POST /api/v1/qr/batches).', {
        errors: [{ field: 'qr_content', messages: ['not a code of your QR batches'] }],
      });
    }
    const taken = (): ReturnType<typeof conflict> =>
      conflict(`QR code ${code.code} is already tied to an open submission; hand out another code.`);
    if ((await em.count(BoothSubmission, { openQrCode: code.id })) > 0) throw taken();

    const id = randomUUID();
    const imageKey = StorageKeys.boothOriginal(id);
    const params: BoothXrayParams = { submissionId: id, imageKey, model: BOOTH_XRAY_MODEL, options: this.config.booth.resultsPerImage };
    const owner = em.getReference(User, p.userId);
    const job = this.jobs.build(em, 'booth.xray', owner, params);
    job.inputBytes = file.size;
    const submission = em.create(BoothSubmission, {
      id,
      owner,
      job,
      qrCode: code,
      openQrCode: code.id,
      firstName: form.first_name,
      lastName: form.last_name,
      animalName: form.animal_name,
      animalType: form.animal_type,
      brokenBone: form.broken_bone,
      originalKey: imageKey,
      originalContentType: info.mime,
      width: info.width,
      height: info.height,
    });
    await this.storage.put(imageKey, uploadContent(file));
    try {
      await em.flush();
    } catch (e) {
      await this.storage.deletePrefix(StorageKeys.boothPrefix(id)).catch(() => undefined);
      if (e instanceof UniqueConstraintViolationException) throw taken();
      throw e;
    }
    await this.jobs.enqueue(job);
    const currentJobs = await em.count(Job, { type: 'booth.xray', status: { $in: [...WAITING] }, createdAt: { $lt: job.createdAt } });
    return { submission, job, currentJobs };
  }

  /** The confirmed submission of a QR code; the same 404 for an unknown code and one not confirmed yet. */
  private async confirmed(qr: string): Promise<BoothSubmission> {
    const none = notFound('There is no confirmed X-ray for this code (yet).');
    if (!/^[0-9A-Za-z]{1,64}$/.test(qr)) throw none;
    const em = this.em.fork();
    const code = await em.findOne(QrCode, { code: qr.toUpperCase() });
    if (!code) throw none;
    const sub = await em.findOne(BoothSubmission, { qrCode: code.id, decision: 'confirmed' }, { orderBy: { reviewedAt: 'desc' } });
    if (!sub?.xrayKey || !sub.originalPngKey) throw none;
    return sub;
  }

  async ownerResult(qr: string): Promise<OwnerResultDto> {
    const sub = await this.confirmed(qr);
    const base = `/api/v1/booth/results/${encodeURIComponent(qr)}`;
    return {
      animal_name: sub.animalName,
      animal_type: sub.animalType,
      first_name: sub.firstName,
      confirmed_at: (sub.reviewedAt ?? sub.createdAt).toISOString(),
      xray_url: `${base}/xray.png`,
      original_url: `${base}/original.png`,
      download_url: `${base}?download=1`,
    };
  }

  async ownerFile(qr: string, file: string): Promise<Readable> {
    if (file !== 'xray.png' && file !== 'original.png') throw notFound(`There is no file ${file}: ask for xray.png or original.png.`);
    const sub = await this.confirmed(qr);
    return this.storage.read(file === 'xray.png' ? sub.xrayKey! : sub.originalPngKey!);
  }

  async ownerZip(qr: string): Promise<Readable> {
    const sub = await this.confirmed(qr);
    return zipStream([
      { name: 'xray.png', open: () => this.storage.read(sub.xrayKey!), compress: false },
      { name: 'original.png', open: () => this.storage.read(sub.originalPngKey!), compress: false },
    ]);
  }
}
