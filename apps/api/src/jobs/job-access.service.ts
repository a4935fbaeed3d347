import type { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager, type FilterQuery } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { isUuid } from '@aperture/common/ids.js';
import { pageOptions } from '@aperture/common/pagination.js';
import { conflict, forbidden, notFound } from '@aperture/common/problem.js';
import { Job, type JobArtifact } from '@aperture/database/entities/job.entity.js';
import { findOwned, missing } from '@aperture/database/owned.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { MODEL_KINDS } from '@aperture/models/manifest.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import type { JobListQueryDto } from './jobs.dto.js';

/** Job types whose result has a picture (segment.auto is another module's, known here by name only). */
const SEGMENTATION_JOB_TYPES: readonly string[] = ['segment.prompt', 'segment.auto', 'segment.objects'];
const VISUALIZATION = 'visualization.svg';
export type JobView = 'status' | 'result';
/** What the status and result answers read of a job (its params, result or artifacts only where they are shown). */
const VIEW_FIELDS: Record<JobView, readonly (keyof Job & string)[]> = {
  status: ['id', 'type', 'status', 'progress', 'error'],
  result: ['id', 'type', 'status', 'result'],
};
/** A job as its status or result answer reads it: only the view's columns. */
export interface JobViewRows {
  status: Pick<Job, 'id' | 'type' | 'status' | 'progress' | 'error'>;
  result: Pick<Job, 'id' | 'type' | 'status' | 'result'>;
}
type JobViewRow = JobViewRows[JobView];

/** The jobs as the API's callers see them: their own, or any for an admin. Anything else is the same 404. */
@Injectable()
export class JobAccessService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    private readonly waiter: JobWaiter,
    private readonly catalogue: ModelCatalogueService,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  find(id: string, p: Principal, populate = false, refresh = false): Promise<Job> {
    const owner = p.role === 'admin' ? null : p.userId;
    return findOwned(this.em, Job, id, owner, 'Job', { code: 'JOB_NOT_FOUND', refresh, ...(populate ? { populate: ['artifacts'] } : {}) });
  }

  /**
   * The job as its status or result answer shows it (only those columns are read), once final or after waitMs (a
   * deleted job is then a 404 like any other).
   */
  async findWaiting<V extends JobView>(id: string, p: Principal, waitMs: number, view: V): Promise<JobViewRows[V]> {
    const read = async (): Promise<JobViewRows[V]> => (await this.findView(id, p, view)) as JobViewRows[V];
    return this.waiter.whenFinal(await read(), waitMs, read);
  }

  /**
   * As find (the same 404), reading only the view's columns. The most polled read of the API, so it is one query by
   * primary key with the owner in its WHERE, as plain rows: no entity is built, nothing enters the request's identity
   * map (every read is fresh, so a wait's re-reads see the worker's writes).
   */
  private async findView(id: string, p: Principal, view: JobView): Promise<JobViewRow> {
    if (!isUuid(id)) throw missing('Job', id, { code: 'JOB_NOT_FOUND' });
    const q = this.viewQueries()[view];
    const admin = p.role === 'admin';
    const rows = await this.em.getConnection().execute<Record<string, unknown>[]>(admin ? q.any : q.owned, admin ? [id] : [id, p.userId]);
    const row = rows[0];
    if (!row) throw missing('Job', id, { code: 'JOB_NOT_FOUND' });
    return q.map(row);
  }

  /** The two queries of each view (any owner, or the caller's own), and how a row becomes a JobViewRow; built once. */
  private viewQueries(): Record<JobView, { any: string; owned: string; map: (row: Record<string, unknown>) => JobViewRow }> {
    if (this.queries) return this.queries;
    const meta = this.em.getMetadata().get(Job);
    const platform = this.em.getPlatform();
    const quote = (name: string): string => platform.quoteIdentifier(name);
    const column = (prop: keyof Job & string): string => meta.properties[prop].fieldNames[0]!;
    const build = (view: JobView) => {
      const fields = VIEW_FIELDS[view];
      // Each column by its own name, converted as the ORM would (a JSON column arrives as text on SQLite).
      const converters = fields.map((f) => {
        const prop = meta.properties[f];
        const type = prop.customType;
        const convert = type
          ? (v: unknown): unknown => (v === null || v === undefined ? null : type.convertToJSValue(v, platform))
          : undefined;
        return { prop: f, col: column(f), convert };
      });
      const columns = converters.map((c) => quote(c.col)).join(', ');
      const select = `select ${columns} from ${quote(meta.tableName)} where ${quote(column('id'))} = ?`;
      return {
        any: select,
        owned: `${select} and ${quote(column('owner'))} = ?`,
        map: (row: Record<string, unknown>): JobViewRow => {
          const out: Record<string, unknown> = {};
          for (const c of converters) out[c.prop] = c.convert ? c.convert(row[c.col]) : row[c.col];
          return out as JobViewRow;
        },
      };
    };
    return (this.queries = { status: build('status'), result: build('result') });
  }

  private queries?: Record<JobView, { any: string; owned: string; map: (row: Record<string, unknown>) => JobViewRow }>;

  /** Own jobs, newest first; every user's with q.all (admins only). */
  list(q: JobListQueryDto, p: Principal): Promise<[Job[], number]> {
    if (q.all && p.role !== 'admin') throw forbidden('Only admins may list all jobs.');
    const where: FilterQuery<Job> = q.all ? {} : { owner: p.userId };
    if (q.status) where.status = q.status;
    if (q.type) where.type = q.type;
    if (q.batch_id) where.batchId = q.batch_id;
    if (q.model !== undefined || q.model_type !== undefined) {
      where.model = this.catalogue.resolveAliased(q.model, q.model_type, MODEL_KINDS).name;
    }
    return this.em.findAndCount(Job, where, { orderBy: { createdAt: 'desc', id: 'asc' }, ...pageOptions(q), populate: ['artifacts'] });
  }

  /** A file the job produced, and its content. */
  async artifact(id: string, artifactId: string, p: Principal): Promise<{ artifact: JobArtifact; content: Readable }> {
    const job = await this.find(id, p, true);
    const artifact = isUuid(artifactId) ? job.artifacts.getItems().find((x) => x.id === artifactId) : undefined;
    if (!artifact) throw notFound(`Artifact ${artifactId} of job ${id} does not exist.`);
    return { artifact, content: await this.storage.read(artifact.storageKey) };
  }

  /** The SVG a segmentation job (segment.prompt, segment.auto) saved as visualization.svg, once it has completed. */
  async visualization(id: string, p: Principal): Promise<{ artifact: JobArtifact; content: Readable }> {
    const job = await this.find(id, p, true);
    if (!SEGMENTATION_JOB_TYPES.includes(job.type)) throw notFound(`Job ${id} is not a segmentation job: it has no visualization.`);
    if (job.status !== 'completed') throw conflict(`Job ${id} is ${job.status}; its visualization exists once it has completed.`);
    const artifact = job.artifacts.getItems().find((a) => a.name === VISUALIZATION);
    if (!artifact) throw notFound(`Job ${id} has no visualization.`);
    return { artifact, content: await this.storage.read(artifact.storageKey) };
  }

  /** Deletes a job. A booth job belongs to its submission (photo, review, carousel): the review closes it, not this. */
  async delete(id: string, p: Principal): Promise<void> {
    const job = await this.find(id, p);
    if (job.type === 'booth.xray') {
      throw conflict(`Job ${id} is a booth job: close it with its review (POST /api/v1/jobs/${id}/review, decision cancel).`);
    }
    await this.jobs.delete(this.em, job);
  }
}
