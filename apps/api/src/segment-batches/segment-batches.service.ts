import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { pageOptions } from '@aperture/common/pagination.js';
import { badRequest, type FieldError, ProblemException } from '@aperture/common/problem.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { Batch } from '@aperture/database/entities/batch.entity.js';
import { Job, type JobStatus } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { SegmentAutoOptions } from '@aperture/queue/segment-auto.types.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { uploadName, type UploadedImage } from '../images/images.service.js';
import { inspectUpload } from '../images/upload.js';
import { uploadContent } from '../uploads/upload-files.js';
import { UploadQuota } from '../uploads/uploads.module.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import { autoMaskOptions } from '../segment-auto/segment-auto.service.js';
import { boxCorners, promptSets, withLabels } from '../segment/coords.js';
import {
  type BatchDto,
  type BatchJobDto,
  type BatchStatus,
  type BatchSummaryDto,
  MAX_BATCH_IMAGES,
  type SegmentBatchFormDto,
  type SegmentBatchJsonDto,
  type SegmentBatchParametersDto,
  type SegmentBatchPromptsDto,
  SegmentBatchParametersDto as ParametersClass,
} from './segment-batches.dto.js';

/** One image of a batch request, whichever form it came in: an upload's temporary file, or bytes decoded from JSON. */
export interface BatchImage {
  name: string;
  content: Pick<UploadedImage, 'path'> | Buffer;
  size: number;
}

/** A batch request in one shape: the multipart form and the JSON body both become this. */
export interface BatchRequest extends SegmentBatchPromptsDto {
  images: BatchImage[];
  points?: SegmentBatchFormDto['points'];
  boxes?: SegmentBatchFormDto['boxes'];
  parameters: SegmentBatchParametersDto;
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const DATA_URL = /^data:[\w.+-]+\/[\w.+-]+;base64,/i;

/** The status and counts of a batch from its jobs' statuses (a deleted job counts as cancelled). */
export function batchProgress(statuses: readonly JobStatus[]): { status: BatchStatus; completed: number; failed: number } {
  const completed = statuses.filter((s) => s === 'completed').length;
  const failed = statuses.filter((s) => s === 'failed' || s === 'cancelled').length;
  const waiting = statuses.filter((s) => s === 'queued').length;
  let status: BatchStatus;
  if (completed + failed < statuses.length) status = waiting === statuses.length ? 'queued' : 'running';
  else if (failed === 0) status = 'completed';
  else status = completed === 0 ? 'failed' : 'partial';
  return { status, completed, failed };
}

/** Masks a segmentation job found, from its result. */
function totalMasks(job: Job): number | null {
  const r = job.result;
  if (!r || job.status !== 'completed') return null;
  if (typeof r['count'] === 'number') return r['count'];
  const results = r['results'];
  if (!Array.isArray(results)) return null;
  return results.reduce<number>(
    (n, x) => n + (Array.isArray((x as { masks?: unknown }).masks) ? (x as { masks: unknown[] }).masks.length : 0),
    0,
  );
}

/** An error about one image, naming it: "Image 2 (b.png): …", with its fields under images[2]. */
function aboutImage(e: unknown, index: number, name: string): unknown {
  if (!(e instanceof ProblemException)) return e;
  const errors: FieldError[] = (e.extras.errors ?? []).map((f) => ({ field: `images[${index}].${f.field}`, messages: f.messages }));
  if (errors.length === 0) errors.push({ field: `images[${index}]`, messages: [e.detail] });
  return new ProblemException(e.getStatus(), e.code, `Image ${index} (${name}): ${e.detail}`, {
    ...e.extras,
    errors,
    image_index: index,
    file_name: name,
  });
}

/**
 * Segmentation batches: many images in one request, one segment.prompt or segment.auto job each under one batch id.
 * Every image and every prompt is checked (as the single-image routes check them) before anything is stored; the
 * batch's status and counts are derived from its jobs.
 */
@Injectable()
export class SegmentBatchesService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    private readonly catalogue: ModelCatalogueService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
    private readonly quota: UploadQuota,
  ) {}

  /** The multipart form as a batch request. */
  fromForm(form: SegmentBatchFormDto, files: UploadedImage[]): BatchRequest {
    const { images: _files, points, boxes, model, model_type, mode, ...rest } = form;
    const parameters = Object.assign(new ParametersClass(), rest);
    return {
      images: files.map((f) => ({ name: uploadName(f.originalname), content: f, size: f.size })),
      points,
      boxes,
      model,
      model_type,
      mode,
      parameters,
    };
  }

  /** The JSON body as a batch request: each image decoded from base64 (a malformed one is a 400 naming its index). */
  fromJson(body: SegmentBatchJsonDto): BatchRequest {
    const images = body.images.map((text, i) => {
      const name = uploadName(body.names?.[i] ?? `image-${i}`);
      const b64 = text.replace(DATA_URL, '').replace(/\s+/g, '');
      if (b64.length === 0 || b64.length % 4 === 1 || !BASE64.test(b64)) {
        throw badRequest(`images[${i}] is not valid base64: send each image file base64-encoded (optionally as a data: URL).`, {
          errors: [{ field: `images[${i}]`, messages: ['not valid base64'] }],
          image_index: i,
        });
      }
      const buffer = Buffer.from(b64, 'base64');
      if (buffer.length > this.config.images.maxBytes) {
        throw new ProblemException(
          413,
          'PAYLOAD_TOO_LARGE',
          `images[${i}] is ${buffer.length} bytes; at most ${this.config.images.maxBytes}.`,
          {
            image_index: i,
          },
        );
      }
      return { name, content: buffer, size: buffer.length };
    });
    const { points, boxes, model, model_type, mode } = body;
    return { images, points, boxes, model, model_type, mode, parameters: body.parameters ?? new ParametersClass() };
  }

  /** Checks everything, then stores the images, the jobs and the batch in one commit and queues the jobs. */
  async create(req: BatchRequest, p: Principal): Promise<{ batch: Batch; jobs: Job[] }> {
    const n = req.images.length;
    if (n === 0) {
      throw badRequest('Send at least one image ("images").', { errors: [{ field: 'images', messages: ['at least one image'] }] });
    }
    if (n > MAX_BATCH_IMAGES) throw tooMany(n);
    for (const [field, lists] of [
      ['points', req.points],
      ['boxes', req.boxes],
    ] as const) {
      if (lists && lists.length > n) {
        throw badRequest(`${field} has ${lists.length} lists but the batch has ${n} images: one list per image.`, {
          errors: [{ field, messages: [`at most ${n} lists`] }],
        });
      }
    }
    const model = this.catalogue.resolveAliased(req.model, req.model_type, ['sam']);
    const params = req.parameters;
    const options: SegmentAutoOptions = autoMaskOptions(params);

    const em = this.em.fork();
    const owner = em.getReference(User, p.userId);
    const batchId = randomUUID();
    const jobs: Job[] = [];
    for (const [i, image] of req.images.entries()) {
      try {
        const size = await inspectUpload(image.content, this.config.images.maxSide);
        const points = withLabels(req.points?.[i] ?? []);
        const boxes = (req.boxes?.[i] ?? []).map(boxCorners);
        const prompted = points.length > 0 || boxes.length > 0;
        if (req.mode === 'auto' && prompted) {
          throw badRequest('mode auto takes no points or boxes: leave mode out to mix prompted and automatic images.', {
            errors: [{ field: 'mode', messages: ['no prompts with mode auto'] }],
          });
        }
        if (req.mode === 'prompt' && !prompted) {
          throw badRequest('mode prompt needs points or boxes for every image.', {
            errors: [{ field: 'points', messages: ['no points or boxes for this image'] }],
          });
        }
        const id = randomUUID();
        const imageKey = StorageKeys.input(id, 'image');
        const job = prompted
          ? this.jobs.build(
              em,
              'segment.prompt',
              owner,
              {
                model: model.name,
                imageKey,
                prompts: promptSets(points, boxes, params.coords, size.width, size.height),
                multimask: params.multimask_output,
                output: params.output,
              },
              id,
            )
          : this.jobs.build(em, 'segment.auto', owner, { model: model.name, imageKey, imageId: null, options }, id);
        job.batchId = batchId;
        job.inputBytes = image.size;
        jobs.push(job);
      } catch (e) {
        throw aboutImage(e, i, image.name);
      }
    }
    // Multipart files were counted against the quota while they streamed; base64 images from JSON are counted here.
    const decoded = req.images.reduce((n, im) => n + (Buffer.isBuffer(im.content) ? im.size : 0), 0);
    if (decoded > 0) await this.quota.assertRoom(p.userId, decoded);
    const batch = em.create(Batch, {
      id: batchId,
      owner,
      kind: 'segment',
      model: model.name,
      totalImages: n,
      items: jobs.map((j, i) => ({ index: i, job_id: j.id, job_type: j.type, file_name: req.images[i]!.name })),
    });
    try {
      for (const [i, j] of jobs.entries()) {
        const content = req.images[i]!.content;
        await this.storage.put(String(j.params['imageKey']), Buffer.isBuffer(content) ? content : uploadContent(content));
      }
      await em.persist([batch, ...jobs]).flush();
    } catch (e) {
      for (const j of jobs) await this.storage.deletePrefix(StorageKeys.inputPrefix(j.id)).catch(() => undefined);
      throw e;
    }
    for (const j of jobs) await this.jobs.enqueue(j);
    return { batch, jobs };
  }

  /** One of the caller's batches with its jobs; anything else is the same 404. */
  async find(id: string, p: Principal): Promise<BatchDto> {
    const batch = await findOwned(this.em, Batch, id, p.role === 'admin' ? null : p.userId, 'Batch', { where: { kind: 'segment' } });
    const jobs = await this.em.find(Job, { batchId: batch.id }, { refresh: true });
    return this.describe(batch, jobs, true) as BatchDto;
  }

  /** The caller's batches, newest first, with their status and counts. */
  async list(p: Principal, q: { page: number; page_size: number }): Promise<[BatchSummaryDto[], number]> {
    const [batches, total] = await this.em.findAndCount(
      Batch,
      { owner: p.userId, kind: 'segment' },
      { orderBy: { createdAt: 'desc', id: 'asc' }, ...pageOptions(q) },
    );
    const ids = batches.map((b) => b.id);
    const jobs = ids.length
      ? await this.em.find(Job, { batchId: { $in: ids } }, { fields: ['id', 'batchId', 'status', 'progress', 'updatedAt'], refresh: true })
      : [];
    return [batches.map((b) => this.describe(b, jobs.filter((j) => j.batchId === b.id) as Job[], false)), total];
  }

  private describe(batch: Batch, jobs: Job[], withJobs: boolean): BatchSummaryDto | BatchDto {
    const byId = new Map(jobs.map((j) => [j.id, j]));
    const statuses = batch.items.map((it) => byId.get(it.job_id)?.status ?? 'cancelled');
    const { status, completed, failed } = batchProgress(statuses);
    const progress = batch.items.reduce((s, it) => {
      const j = byId.get(it.job_id);
      return s + (!j ? 1 : j.status === 'completed' ? 1 : j.progress);
    }, 0);
    const updated = jobs.reduce((t, j) => Math.max(t, j.updatedAt.getTime()), batch.createdAt.getTime());
    const summary: BatchSummaryDto = {
      batch_id: batch.id,
      batch_job_id: batch.id,
      url: `/api/v1/segment/batches/${batch.id}`,
      model: batch.model,
      status,
      progress: batch.totalImages ? Math.round((progress / batch.totalImages) * 1e4) / 1e4 : 1,
      total_images: batch.totalImages,
      completed_images: completed,
      failed_images: failed,
      created_at: batch.createdAt.toISOString(),
      updated_at: new Date(updated).toISOString(),
    };
    if (!withJobs) return summary;
    const items: BatchJobDto[] = batch.items.map((it) => {
      const j = byId.get(it.job_id);
      return {
        index: it.index,
        file_name: it.file_name,
        job_id: it.job_id,
        type: it.job_type,
        status: j?.status ?? 'cancelled',
        progress: j?.progress ?? 0,
        error: j ? j.error : 'The job was deleted.',
        total_masks: j ? totalMasks(j) : null,
        status_url: `/api/v1/jobs/${it.job_id}/status`,
        result_url: `/api/v1/jobs/${it.job_id}/result`,
      };
    });
    return { ...summary, jobs: items };
  }
}

/** The 400 of a batch with too many images. */
export function tooMany(n?: number): ProblemException {
  const got = n === undefined ? '' : ` (got ${n})`;
  return badRequest(`A batch holds at most ${MAX_BATCH_IMAGES} images${got}: send the others in another batch.`, {
    errors: [{ field: 'images', messages: [`at most ${MAX_BATCH_IMAGES} images`] }],
  });
}
