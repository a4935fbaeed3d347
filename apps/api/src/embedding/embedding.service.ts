import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { ACTIVE_JOB_STATUSES } from '@aperture/queue/job-lifecycle.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import type { ImageEmbeddingParams, ImageEmbeddingResult } from '@aperture/queue/job-registry.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ImagesService } from '../images/images.service.js';
import { completedJob } from '../jobs/job-answers.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import type { EmbeddingQueryDto } from './embedding.dto.js';

/** The stored embedding (its description; the bytes are at data_key), or the job still computing it. */
export type EmbeddingAnswer = { meta: ImageEmbeddingResult; job?: undefined } | { meta?: undefined; job: Job };

/**
 * SAM image embeddings of a user's images for decoding on the client. The API never runs a model: an embedding that
 * is not stored yet is computed by an image.embedding job (which goes through the worker's embedding cache) and
 * stored under a key derived from the image file's sha256, the model and its version, so later requests read it.
 */
@Injectable()
export class EmbeddingService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    private readonly waiter: JobWaiter,
    private readonly images: ImagesService,
    private readonly catalogue: ModelCatalogueService,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async embedding(imageId: string, q: EmbeddingQueryDto, p: Principal): Promise<EmbeddingAnswer> {
    const model = this.catalogue.resolve(q.model, ['sam'], 'model');
    const em = this.em.fork();
    const image = await this.images.findOwn(imageId, p, em);
    const stored = await this.stored(StorageKeys.embedding(image.sha256, model.name, model.version).meta);
    if (stored) return { meta: stored };
    // A request for the same embedding that is still being computed: wait for that job instead of queueing another.
    const active = await em.find(Job, {
      type: 'image.embedding',
      owner: p.userId,
      image: image.id,
      status: { $in: [...ACTIVE_JOB_STATUSES] },
    });
    let job = active.find((j) => j.params['model'] === model.name);
    if (!job) {
      const params: ImageEmbeddingParams = { model: model.name, imageId: image.id, imageKey: image.storageKey };
      job = this.jobs.build(em, 'image.embedding', em.getReference(User, p.userId), params);
      job.image = image;
      await em.persist(job).flush();
      await this.jobs.enqueue(job);
    }
    const done = await completedJob(this.waiter, this.em, job, q.wait_ms);
    return done ? { meta: done.result as unknown as ImageEmbeddingResult } : { job };
  }

  /** The embedding's bytes. */
  read(meta: ImageEmbeddingResult) {
    return this.storage.read(meta.data_key);
  }

  /** A stored embedding's description when both its files are there. */
  private async stored(metaKey: string): Promise<ImageEmbeddingResult | null> {
    if (!(await this.storage.exists(metaKey))) return null;
    const chunks: Buffer[] = [];
    for await (const c of await this.storage.read(metaKey)) chunks.push(c as Buffer);
    const meta = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ImageEmbeddingResult;
    return (await this.storage.exists(meta.data_key)) ? meta : null;
  }
}
