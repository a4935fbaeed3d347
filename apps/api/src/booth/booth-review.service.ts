import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import sharp from 'sharp';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { isUuid } from '@aperture/common/ids.js';
import { pageOptions, type PageQueryDto } from '@aperture/common/pagination.js';
import { badRequest, conflict, notFound, ProblemException } from '@aperture/common/problem.js';
import { BoothSubmission, CarouselEntry } from '@aperture/database/entities/booth.entity.js';
import { Job, JobArtifact } from '@aperture/database/entities/job.entity.js';
import { missing } from '@aperture/database/owned.js';
import { decodeImage } from '@aperture/imaging/decode.js';
import { JobLifecycle } from '@aperture/queue/job-lifecycle.js';
import { boothOptionName } from '@aperture/queue/job-registry.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { zipStream } from '@aperture/storage/zip-stream.js';
import type { ReviewDto, ReviewListDto, ReviewResultDto } from './booth.dto.js';

/** A stored image as PNG: PNG files as they are, anything else decoded (EXIF-oriented, BMP too) and re-encoded. */
async function asPng(bytes: Buffer, contentType: string): Promise<Buffer> {
  if (contentType === 'image/png') return bytes;
  const img = await decodeImage(bytes);
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toBuffer();
}

/** Thrown inside a decision's transaction when a guard affected no row: the transaction rolls back, the caller gets 409. */
class DecisionRaced extends Error {}

/**
 * The review queue (completed booth jobs without a decision), the options and the original, the decisions
 * (confirm, retry, cancel) and the public carousel. Every decision is one transaction of guarded writes on the
 * submission (no decision yet, same review round) and the job (still completed): of two reviewers, one wins.
 */
@Injectable()
export class BoothReviewService {
  private readonly logger = new Logger('Booth');

  constructor(
    private readonly em: EntityManager,
    private readonly lifecycle: JobLifecycle,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  /** The caller's submissions (an admin's: every one). */
  private visible(p: Principal): { owner?: string } {
    return p.role === 'admin' ? {} : { owner: p.userId };
  }

  /** The booth submission of a job the caller may see, with its job; the jobs' 404 otherwise. */
  async submissionOf(jobId: string, p: Principal, em: EntityManager = this.em.fork()): Promise<BoothSubmission> {
    const sub = isUuid(jobId) ? await em.findOne(BoothSubmission, { ...this.visible(p), job: jobId }, { populate: ['job'] }) : null;
    if (!sub) throw missing('Job', jobId, { code: 'JOB_NOT_FOUND' });
    return sub;
  }

  /** The job's stored options, in index order. */
  private async options(em: EntityManager, jobIds: string[]): Promise<Map<string, JobArtifact[]>> {
    const out = new Map<string, JobArtifact[]>();
    if (jobIds.length === 0) return out;
    const rows = await em.find(JobArtifact, { job: { $in: jobIds }, name: { $like: 'option-%' } });
    for (const a of rows) {
      const list = out.get(a.job.id) ?? [];
      list.push(a);
      out.set(a.job.id, list);
    }
    const index = (a: JobArtifact): number => Number(a.name.slice('option-'.length));
    for (const list of out.values()) list.sort((a, b) => index(a) - index(b));
    return out;
  }

  /** Completed booth jobs awaiting a decision, oldest first, in the source's shape. */
  async list(q: PageQueryDto, p: Principal): Promise<ReviewListDto> {
    const em = this.em.fork();
    const [subs, total] = await em.findAndCount(
      BoothSubmission,
      { ...this.visible(p), decision: null, job: { status: 'completed' } },
      { populate: ['job'], orderBy: { job: { finishedAt: 'asc' }, id: 'asc' }, ...pageOptions(q) },
    );
    const options = await this.options(
      em,
      subs.map((s) => s.job.id),
    );
    const out: ReviewListDto = {
      metadata: {},
      results: {},
      originals: {},
      results_per_image: this.config.booth.resultsPerImage,
      total,
      page: q.page,
      page_size: q.page_size,
      total_pages: Math.ceil(total / q.page_size),
    };
    for (const s of subs) {
      const id = s.job.id;
      out.metadata[id] = {
        submission_id: s.id,
        first_name: s.firstName,
        last_name: s.lastName,
        animal_name: s.animalName,
        animal_type: s.animalType,
        broken_bone: s.brokenBone,
        submitted_at: s.createdAt.toISOString(),
      };
      out.results[id] = (options.get(id) ?? []).map((_a, n) => `/api/v1/jobs/${id}/options/${n}`);
      out.originals[id] = `/api/v1/jobs/${id}/original`;
    }
    return out;
  }

  /** Option n of a booth job. */
  async option(jobId: string, n: string, p: Principal): Promise<{ artifact: JobArtifact; content: Readable }> {
    const em = this.em.fork();
    const sub = await this.submissionOf(jobId, p, em);
    const artifact = /^\d{1,3}$/.test(n) ? await em.findOne(JobArtifact, { job: sub.job.id, name: boothOptionName(Number(n)) }) : null;
    if (!artifact) throw notFound(`Job ${jobId} has no option ${n}${sub.job.status === 'completed' ? '' : ` (it is ${sub.job.status})`}.`);
    return { artifact, content: await this.storage.read(artifact.storageKey) };
  }

  /** The submitted photo of a booth job. */
  async original(jobId: string, p: Principal): Promise<{ sub: BoothSubmission; content: Readable; size: number }> {
    const sub = await this.submissionOf(jobId, p);
    return { sub, content: await this.storage.read(sub.originalKey), size: await this.storage.size(sub.originalKey) };
  }

  async decide(jobId: string, dto: ReviewDto, p: Principal): Promise<ReviewResultDto> {
    const em = this.em.fork();
    const sub = await this.submissionOf(jobId, p, em);
    const job = sub.job;
    if (sub.decision !== null || job.status !== 'completed') {
      const state = sub.decision ?? (job.status === 'completed' ? 'awaiting review' : job.status);
      throw conflict(`Job ${jobId} is not awaiting review: it is ${state}.`);
    }
    if (dto.decision === 'confirm') return this.confirm(em, sub, dto.choice);
    const now = new Date();
    const guard = { id: sub.id, decision: null, reviewRound: sub.reviewRound };
    try {
      await em.transactional(async (tem) => {
        if (dto.decision === 'retry') {
          const a = await tem.nativeUpdate(BoothSubmission, guard, { reviewRound: sub.reviewRound + 1, reviewedAt: now });
          if (a !== 1 || !(await this.lifecycle.reopen(tem, job))) throw new DecisionRaced();
        } else {
          const a = await tem.nativeUpdate(BoothSubmission, guard, { decision: 'cancelled', openQrCode: null, reviewedAt: now });
          if (a !== 1 || (await this.stillCompleted(tem, job)) !== 1) throw new DecisionRaced();
        }
      });
    } catch (e) {
      if (e instanceof DecisionRaced) throw conflict(`Job ${jobId} is not awaiting review: another decision came first.`);
      throw e;
    }
    if (dto.decision === 'retry') {
      await this.lifecycle.afterReopen(job);
      return { status: 'success', state: 'queued', carousel_index: null };
    }
    for (let n = 1; n <= job.attempts; n++) await this.lifecycle.discardAttempt(job.id, n);
    return { status: 'success', state: 'cancelled', carousel_index: null };
  }

  /** Holds the job row for the decision's transaction, and checks it is still the completed round that was reviewed. */
  private stillCompleted(tem: EntityManager, job: Job): Promise<number> {
    return tem.nativeUpdate(Job, { id: job.id, status: 'completed', attempts: job.attempts }, { updatedAt: new Date() });
  }

  /**
   * Keeps the chosen option: the pair (as PNG) for the owner's page and a copy for the carousel are stored first,
   * then the decision and the carousel entry commit together; the carousel is then cut back to CAROUSEL_SIZE.
   */
  private async confirm(em: EntityManager, sub: BoothSubmission, choice: number | undefined): Promise<ReviewResultDto> {
    const job = sub.job;
    const options = (await this.options(em, [job.id])).get(job.id) ?? [];
    if (choice === undefined) {
      throw badRequest('choice is required to confirm: the index of the option to keep.', {
        errors: [{ field: 'choice', messages: ['required to confirm'] }],
      });
    }
    if (choice >= options.length) {
      throw badRequest(`choice must be between 0 and ${options.length - 1}: job ${job.id} has ${options.length} option(s).`, {
        errors: [{ field: 'choice', messages: [`between 0 and ${options.length - 1}`] }],
      });
    }
    const chosen = options[choice]!;
    const xray = await asPng(await buffer(await this.storage.read(chosen.storageKey)), chosen.contentType);
    const original = await asPng(await buffer(await this.storage.read(sub.originalKey)), sub.originalContentType);
    const entryId = randomUUID();
    const keys = {
      xray: StorageKeys.boothResult(sub.id, 'xray.png'),
      original: StorageKeys.boothResult(sub.id, 'original.png'),
      carouselXray: StorageKeys.carousel(entryId, 'xray.png'),
      carouselOriginal: StorageKeys.carousel(entryId, 'original.png'),
    };
    const stored: string[] = [];
    const now = new Date();
    try {
      for (const [key, data] of [
        [keys.xray, xray],
        [keys.original, original],
        [keys.carouselXray, xray],
        [keys.carouselOriginal, original],
      ] as const) {
        await this.storage.put(key, data);
        stored.push(key);
      }
      await em.transactional(async (tem) => {
        const a = await tem.nativeUpdate(
          BoothSubmission,
          { id: sub.id, decision: null, reviewRound: sub.reviewRound },
          { decision: 'confirmed', choice, reviewedAt: now, xrayKey: keys.xray, originalPngKey: keys.original },
        );
        if (a !== 1 || (await this.stillCompleted(tem, job)) !== 1) throw new DecisionRaced();
        tem.create(CarouselEntry, {
          id: entryId,
          submission: tem.getReference(BoothSubmission, sub.id),
          xrayKey: keys.carouselXray,
          originalKey: keys.carouselOriginal,
          createdAt: now,
        });
      });
    } catch (e) {
      for (const key of stored) await this.storage.delete(key).catch(() => undefined);
      if (e instanceof DecisionRaced) throw conflict(`Job ${job.id} is not awaiting review: another decision came first.`);
      throw e;
    }
    await this.trimCarousel();
    return { status: 'success', state: 'confirmed', carousel_index: await this.carouselIndex(entryId) };
  }

  // ---------------------------------------------------------------- carousel

  private newestFirst = { orderBy: { createdAt: 'desc', id: 'desc' } } as const;

  /** Drops the entries past CAROUSEL_SIZE (the oldest), rows first, then their files. */
  async trimCarousel(): Promise<void> {
    const em = this.em.fork();
    const old = await em.find(CarouselEntry, {}, { ...this.newestFirst, offset: this.config.booth.carouselSize, limit: 1000 });
    if (old.length === 0) return;
    await em.nativeDelete(CarouselEntry, { id: { $in: old.map((e) => e.id) } });
    for (const e of old) await this.storage.deletePrefix(StorageKeys.carouselPrefix(e.id)).catch(() => undefined);
    this.logger.log(`Carousel: dropped ${old.length} oldest entr${old.length === 1 ? 'y' : 'ies'}`);
  }

  private async carouselIndex(entryId: string): Promise<number | null> {
    const ids = await this.em
      .fork()
      .find(CarouselEntry, {}, { ...this.newestFirst, limit: this.config.booth.carouselSize, fields: ['id'] });
    const i = ids.findIndex((e) => e.id === entryId);
    return i < 0 ? null : i;
  }

  async carousel(): Promise<string[]> {
    const n = await this.em.fork().count(CarouselEntry, {});
    return Array.from({ length: Math.min(n, this.config.booth.carouselSize) }, (_x, i) => `/api/v1/carousel/${i}`);
  }

  /** Entry `index` (0 = newest) as a ZIP with xray.png and original.png. */
  async carouselZip(index: string): Promise<Readable> {
    const bad = (): ProblemException => notFound(`There is no carousel entry ${index}.`);
    if (!/^\d{1,4}$/.test(index) || Number(index) >= this.config.booth.carouselSize) throw bad();
    const [entry] = await this.em.fork().find(CarouselEntry, {}, { ...this.newestFirst, offset: Number(index), limit: 1 });
    if (!entry) throw bad();
    // Both files are checked before the first byte goes out, so a dropped entry is a 404, not a broken ZIP.
    if (!(await this.storage.exists(entry.xrayKey)) || !(await this.storage.exists(entry.originalKey))) throw bad();
    return zipStream([
      { name: 'xray.png', open: () => this.storage.read(entry.xrayKey), compress: false },
      { name: 'original.png', open: () => this.storage.read(entry.originalKey), compress: false },
    ]);
  }
}
