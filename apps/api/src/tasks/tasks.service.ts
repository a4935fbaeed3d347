import { Injectable } from '@nestjs/common';
import { EntityManager, type FilterQuery } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { pageOptions } from '@aperture/common/pagination.js';
import { badRequest, conflict, ProblemException } from '@aperture/common/problem.js';
import { Image } from '@aperture/database/entities/image.entity.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import type { ModelEntry } from '@aperture/models/manifest.js';
import type { FragmentsTaskParams, PredictTaskParams } from '@aperture/queue/job-registry.js';
import { TASK_JOB_TYPES } from '@aperture/queue/job-registry.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { ImagesService, type UploadedImage } from '../images/images.service.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import {
  JOB_TYPE_OF,
  type TaskCreateFormDto,
  type TaskListQueryDto,
  type TaskModelIdsDto,
  type TaskParamsDto,
  type TaskType,
} from './tasks.dto.js';

type ParamsInput = TaskParamsDto & TaskModelIdsDto;

/** The older clients' integer model ids from the query string and the body, as one; the same field twice must agree. */
function mergeModelIds(body: TaskModelIdsDto, query: TaskModelIdsDto): TaskModelIdsDto {
  const out: TaskModelIdsDto = {};
  for (const k of ['detection_model_id', 'classification_model_id'] as const) {
    const [b, q] = [body[k], query[k]];
    if (b !== undefined && q !== undefined && b !== q)
      throw badRequest(`${k} is ${q} in the query string but ${b} in the body: send it once.`, {
        errors: [{ field: k, messages: ['query and body differ'] }],
      });
    out[k] = b ?? q;
  }
  return out;
}

export const DEFAULT_CONF = 0.25;
export const DEFAULT_IOU = 0.7;

/** Rows of a sequence classifier: class one-hot (nc) + 4 corners (8). */
function classifierClasses(m: ModelEntry): number | null {
  const d = m.files[0]?.inputs[0]?.shape[2];
  return typeof d === 'number' ? d - 8 : null;
}

/**
 * Prediction tasks (primitives and scene) and fragment analyses (fragment sizes), each one Job record on the
 * inference queue. Only the owner sees a task: any other id answers "Task with id {id} does not exist.".
 */
@Injectable()
export class TasksService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    private readonly images: ImagesService,
    private readonly models: ModelCatalogueService,
  ) {}

  /** Checks every parameter (models included) before anything is stored; then stores the upload, if any, and queues. */
  async create(form: TaskCreateFormDto, file: UploadedImage | undefined, p: Principal, query: TaskModelIdsDto = {}): Promise<Job> {
    const type: TaskType = form.type ?? 'prediction';
    if (file && form.image_id)
      throw badRequest('Send either an image file or image_id, not both.', {
        errors: [{ field: 'image_id', messages: ['not with a file'] }],
      });
    if (!file && !form.image_id)
      throw badRequest('Send the image as the multipart field "image", or the id of one of your images as image_id.', {
        errors: [{ field: 'image', messages: ['image or image_id is required'] }],
      });
    const params = this.params(type, { ...form, ...mergeModelIds(form, query) }, null);
    const em = this.em.fork();
    let image: Image;
    if (file) {
      const report = await this.images.store([file], p.userId);
      if (report.stored.length === 0) throw new ProblemException(400, 'IMAGE_VALIDATION_ERROR', report.bad[0]!.reason);
      image = report.stored[0]!;
    } else {
      image = await this.images.findOwn(form.image_id!, p, em);
    }
    return this.enqueue(em, type, { ...params, imageId: image.id } as PredictTaskParams | FragmentsTaskParams, p);
  }

  /** Re-predict: a new task on the same image, with the old parameters overridden by the given ones. */
  async rerun(task: Job, changes: TaskParamsDto, p: Principal): Promise<Job> {
    const type: TaskType = task.type === 'task.fragments' ? 'fragments' : 'prediction';
    if (!task.image) throw conflict(`The input image of task ${task.id} was deleted; upload it again and create a new task.`);
    const params = this.params(type, changes, task.params as unknown as PredictTaskParams | FragmentsTaskParams);
    return this.enqueue(this.em.fork(), type, { ...params, imageId: task.image.id } as PredictTaskParams | FragmentsTaskParams, p);
  }

  private async enqueue(em: EntityManager, type: TaskType, params: PredictTaskParams | FragmentsTaskParams, p: Principal): Promise<Job> {
    const owner = em.getReference(User, p.userId);
    const job =
      type === 'fragments'
        ? this.jobs.build(em, 'task.fragments', owner, params as FragmentsTaskParams)
        : this.jobs.build(em, 'task.predict', owner, params as PredictTaskParams);
    job.image = em.getReference(Image, params.imageId);
    await em.persist(job).flush();
    await this.jobs.enqueue(job);
    return job;
  }

  /** The task's parameters without the image: given values, else the previous task's, else the defaults. */
  private params(
    type: TaskType,
    f: ParamsInput,
    prev: PredictTaskParams | FragmentsTaskParams | null,
  ): Omit<PredictTaskParams, 'imageId'> | Omit<FragmentsTaskParams, 'imageId'> {
    const conf = f.conf ?? prev?.conf ?? DEFAULT_CONF;
    const iou = f.iou ?? prev?.iou ?? DEFAULT_IOU;
    if (type === 'fragments') {
      const old = prev as FragmentsTaskParams | null;
      for (const k of ['detection_model', 'classification_model', 'detection_model_id', 'classification_model_id'] as const) {
        if (f[k] !== undefined)
          throw badRequest(`${k} applies to prediction tasks; a fragments task takes "model".`, {
            errors: [{ field: k, messages: ['not for fragments'] }],
          });
      }
      const model = this.models.resolve(f.model ?? old?.model, ['segmenter'], 'model');
      const unit = f.unit ?? old?.unit ?? 'mm';
      const realRadius = unit === 'px' ? null : (f.real_radius ?? old?.realRadius ?? null);
      return { model: model.name, realRadius, unit: realRadius === null ? 'px' : unit, conf, iou };
    }
    for (const k of ['model', 'real_radius', 'unit'] as const) {
      if (f[k] !== undefined)
        throw badRequest(`${k} applies to fragments tasks; a prediction task takes detection_model and classification_model.`, {
          errors: [{ field: k, messages: ['not for prediction'] }],
        });
    }
    const old = prev as PredictTaskParams | null;
    const detector = this.models.resolveFields(
      [
        { field: 'detection_model', ref: f.detection_model },
        { field: 'detection_model_id', ref: f.detection_model_id },
      ],
      ['detector'],
      { fallback: old?.detectionModel },
    );
    const nc = detector.labels?.length ?? 0;
    const classifier = this.models.resolveFields(
      [
        { field: 'classification_model', ref: f.classification_model },
        { field: 'classification_model_id', ref: f.classification_model_id },
      ],
      ['classifier'],
      { fallback: old?.classificationModel, accept: (m) => classifierClasses(m) === nc },
    );
    return { detectionModel: detector.name, classificationModel: classifier.name, conf, iou };
  }

  /** The caller's task (with its image and artifacts), or a 404. */
  async findOwn(id: string, p: Principal, refresh = false): Promise<Job> {
    const where = { type: { $in: [...TASK_JOB_TYPES] } };
    return findOwned(this.em, Job, id, p.userId, 'Task', { where, populate: ['artifacts', 'image'], refresh });
  }

  list(p: Principal, q: TaskListQueryDto): Promise<[Job[], number]> {
    const where: FilterQuery<Job> = { owner: p.userId, type: q.type ? JOB_TYPE_OF[q.type] : { $in: [...TASK_JOB_TYPES] } };
    if (q.status) where.status = q.status;
    return this.em.findAndCount(Job, where, {
      orderBy: { createdAt: 'desc', id: 'asc' },
      ...pageOptions(q),
      populate: ['artifacts', 'image'],
    });
  }

  /** Cancels queued or running work, removes the artifacts and the record. The input image stays (it is yours). */
  async delete(task: Job): Promise<void> {
    await this.jobs.delete(this.em.fork(), task);
  }
}
