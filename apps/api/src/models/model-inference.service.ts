import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest } from '@aperture/common/problem.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { InferOptions } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { inspectUpload } from '../images/upload.js';
import type { UploadedImage } from '../images/images.service.js';
import { storeUpload } from '../uploads/upload-files.js';
import { ModelCatalogueService } from './model-catalogue.service.js';
import type { ModelInferAcceptedDto, ModelInferFormDto } from './models.dto.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';

/** The intake of POST /models/{name}/infer: checks the model, the image and the options, then queues a model.infer job. */
@Injectable()
export class ModelInferenceService {
  constructor(
    private readonly catalogue: ModelCatalogueService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  /**
   * Queues one model run on an uploaded image (its header and structure checked here, its pixels decoded only by the
   * worker, where a file that does not decode fails the job). The image is moved under the job's input prefix and
   * deleted with the job. The form is already validated (SAM prompts included); what depends on the model's kind is
   * checked here.
   */
  async infer(name: string, file: UploadedImage | undefined, form: ModelInferFormDto, p: Principal): Promise<ModelInferAcceptedDto> {
    const m = this.catalogue.entry(name);
    if (m.kind === 'classifier' && m.contract !== 'ultralytics-classify') {
      throw badRequest(`Model ${name} classifies detected primitives, not images: create a prediction task with it instead.`);
    }
    if (!file) {
      throw badRequest('Send the image as the multipart field "image".', { errors: [{ field: 'image', messages: ['image is required'] }] });
    }
    await inspectUpload(file, this.config.images.maxSide, { hash: false });
    const options: InferOptions = {};
    if (form.conf !== undefined) options.conf = form.conf;
    if (form.iou !== undefined) options.iou = form.iou;
    if (form.max_det !== undefined) options.max_det = form.max_det;
    if (m.kind === 'sam') {
      if (form.points !== undefined) options.points = form.points.map(({ x, y, label }) => ({ x, y, label }));
      if (form.box !== undefined) options.box = { x1: form.box.x1, y1: form.box.y1, x2: form.box.x2, y2: form.box.y2 };
      if (!options.points?.length && !options.box) {
        throw badRequest('A SAM model needs a prompt: "points" (JSON array of {x, y, label}) and/or "box" (JSON {x1, y1, x2, y2}).');
      }
    }
    const em = this.em.fork();
    const owner = p.userId ? em.getReference(User, p.userId) : null;
    const id = randomUUID();
    const imageKey = StorageKeys.input(id, 'image');
    const job = this.jobs.build(em, 'model.infer', owner, { model: name, imageKey, options }, id);
    await storeUpload(this.storage, imageKey, file);
    job.inputBytes = file.size;
    try {
      await em.insert(job); // one INSERT, no transaction around it
    } catch (e) {
      await this.storage.deletePrefix(StorageKeys.inputPrefix(job.id)).catch(() => undefined);
      throw e;
    }
    await this.jobs.enqueue(job);
    return { job_id: job.id, status: job.status, job_url: `/api/v1/jobs/${job.id}`, result_url: `/api/v1/jobs/${job.id}/result` };
  }
}
