import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { pageOptions } from '@aperture/common/pagination.js';
import { Image } from '@aperture/database/entities/image.entity.js';
import { Job, type JobStatus } from '@aperture/database/entities/job.entity.js';
import { Project } from '@aperture/database/entities/project.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import type { ModelEntry, ModelKind } from '@aperture/models/manifest.js';
import { JobLifecycle } from '@aperture/queue/job-lifecycle.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { Inject } from '@nestjs/common';
import { ImageDto } from '../images/images.dto.js';
import { ModelCatalogueService } from '../models/model-catalogue.service.js';
import { DEFAULT_CONF, DEFAULT_IOU } from '../tasks/tasks.service.js';
import type {
  ProjectCreateDto,
  ProjectDto,
  ProjectImageDto,
  ProjectStartDto,
  ProjectStatus,
  ProjectSummaryDto,
  ProjectUpdateDto,
  ResultSetDto,
} from './projects.dto.js';

const PROJECT_MODEL_KINDS: readonly ModelKind[] = ['detector', 'segmenter'];

interface JobRow {
  id: string;
  image: string | null;
  status: JobStatus;
  createdAt: Date;
}

/** Per image: its latest processing job's status, and whether any completed. */
interface ImageProgress {
  latest: JobStatus | null;
  hasResult: boolean;
}

/** Projects: images processed with one chosen model, status derived from the processing jobs. */
@Injectable()
export class ProjectsService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    private readonly models: ModelCatalogueService,
    @Inject(STORAGE) private readonly storage: StoragePort,
    private readonly lifecycle: JobLifecycle,
  ) {}

  async findOwn(id: string, p: Principal): Promise<Project> {
    return findOwned(this.em, Project, id, p.userId, 'Project', { populate: ['owner'] });
  }

  /** The model named by `model` or by its older alias `ai_model_id` (both given: they must agree); neither: the default. */
  private projectModel(dto: ProjectCreateDto | ProjectUpdateDto): ModelEntry {
    return this.models.resolveFields(
      [
        { field: 'model', ref: dto.model },
        { field: 'ai_model_id', ref: dto.ai_model_id },
      ],
      PROJECT_MODEL_KINDS,
    );
  }

  async create(dto: ProjectCreateDto, p: Principal): Promise<Project> {
    const model = this.projectModel(dto);
    const em = this.em.fork();
    const project = em.create(Project, {
      owner: em.getReference(User, p.userId),
      name: dto.name.trim(),
      description: dto.description ?? '',
      model: model.name,
    });
    await em.persist(project).flush();
    return this.findOwn(project.id, p);
  }

  async update(project: Project, dto: ProjectUpdateDto): Promise<Project> {
    if (dto.model !== undefined || dto.ai_model_id !== undefined) project.model = this.projectModel(dto).name;
    if (dto.name !== undefined) project.name = dto.name.trim();
    if (dto.description !== undefined) project.description = dto.description;
    await this.em.flush();
    return project;
  }

  /** Cancels the project's queued and running jobs, then removes its images, results and files. */
  async delete(project: Project): Promise<void> {
    const em = this.em.fork();
    await this.lifecycle.deleteJobs(em, { project: project.id }); // cancels, then removes the rows and their files
    const images = await em.find(Image, { project: project.id }, { fields: ['id'] });
    await em.nativeDelete(Project, { id: project.id }); // cascades to its images
    for (const i of images) await this.storage.deletePrefix(StorageKeys.imagePrefix(i.id));
  }

  images(project: Project, em: EntityManager = this.em): Promise<Image[]> {
    return em.find(Image, { project: project.id }, { orderBy: { createdAt: 'asc', id: 'asc' } });
  }

  /** Each image's latest processing job and whether it has a completed result, for the given projects. */
  private async progress(projectIds: string[]): Promise<Map<string, ImageProgress>> {
    const out = new Map<string, ImageProgress>();
    if (projectIds.length === 0) return out;
    const rows = (await this.em.find(
      Job,
      { project: { $in: projectIds }, type: 'project.detect' },
      { fields: ['id', 'image', 'status', 'createdAt'], orderBy: { createdAt: 'asc', id: 'asc' } },
    )) as unknown as (Omit<JobRow, 'image'> & { image: { id: string } | null })[];
    for (const r of rows) {
      if (!r.image) continue;
      const p = out.get(r.image.id) ?? { latest: null, hasResult: false };
      p.latest = r.status;
      if (r.status === 'completed') p.hasResult = true;
      out.set(r.image.id, p);
    }
    return out;
  }

  private static status(imageIds: string[], progress: Map<string, ImageProgress>): ProjectStatus {
    const ps = imageIds.map((id) => progress.get(id) ?? { latest: null, hasResult: false });
    if (ps.some((p) => p.latest === 'queued' || p.latest === 'running')) return 'PROCESSING';
    if (ps.some((p) => p.latest === 'failed')) return 'FAILED';
    if (ps.length > 0 && ps.every((p) => p.hasResult)) return 'COMPLETED';
    return 'PENDING';
  }

  private summary(project: Project, imageIds: string[], progress: Map<string, ImageProgress>): ProjectSummaryDto {
    const entry = this.models.entryOrNull(project.model);
    return {
      id: project.id,
      name: project.name,
      description: project.description,
      model: project.model,
      model_id: entry ? this.models.idOf(entry) : null,
      owner_id: project.owner.id,
      owner_username: project.owner.username,
      status: ProjectsService.status(imageIds, progress),
      images_nr: imageIds.length,
      images_with_result: imageIds.filter((id) => progress.get(id)?.hasResult).length,
      created_at: project.createdAt.toISOString(),
      updated_at: project.updatedAt.toISOString(),
    };
  }

  async list(p: Principal, q: { page: number; page_size: number }): Promise<[ProjectSummaryDto[], number]> {
    const [projects, total] = await this.em.findAndCount(
      Project,
      { owner: p.userId },
      { orderBy: { createdAt: 'desc', id: 'asc' }, ...pageOptions(q), populate: ['owner'] },
    );
    const ids = projects.map((x) => x.id);
    const images = ids.length ? await this.em.find(Image, { project: { $in: ids } }, { fields: ['id', 'project'] }) : [];
    const progress = await this.progress(ids);
    return [
      projects.map((x) =>
        this.summary(
          x,
          images.filter((i) => i.project?.id === x.id).map((i) => i.id),
          progress,
        ),
      ),
      total,
    ];
  }

  async detail(project: Project): Promise<ProjectDto> {
    const images = await this.images(project);
    const progress = await this.progress([project.id]);
    return {
      ...this.summary(
        project,
        images.map((i) => i.id),
        progress,
      ),
      images: images.map((i) => ({ ...ImageDto.from(i), has_result: progress.get(i.id)?.hasResult ?? false })),
    };
  }

  async imageDtos(project: Project, images: Image[]): Promise<ProjectImageDto[]> {
    const progress = await this.progress([project.id]);
    return images.map((i) => ({ ...ImageDto.from(i), has_result: progress.get(i.id)?.hasResult ?? false }));
  }

  async findImage(project: Project, imageId: string): Promise<Image> {
    return findOwned(this.em, Image, imageId, null, 'Image', { where: { project: project.id }, scope: `project ${project.id}` });
  }

  /**
   * Queues one job per image with the project's model under a new batch id: every image (start) or only those
   * without a completed result (start-rest). Images whose job is already queued or running are not queued twice.
   */
  async start(project: Project, p: Principal, onlyWithoutResult: boolean): Promise<ProjectStartDto> {
    const model = this.models.resolve(project.model, PROJECT_MODEL_KINDS, 'model');
    const images = await this.images(project);
    const progress = await this.progress([project.id]);
    const inFlight = (id: string): boolean => ['queued', 'running'].includes(progress.get(id)?.latest ?? '');
    const wanted = images.filter((i) => !onlyWithoutResult || !progress.get(i.id)?.hasResult);
    const todo = wanted.filter((i) => !inFlight(i.id));
    const skipped = wanted.length - todo.length;
    if (todo.length === 0) {
      const message =
        images.length === 0
          ? 'The project has no images; upload some first. Nothing was queued.'
          : onlyWithoutResult && skipped === 0
            ? 'Every image of the project already has a result; nothing was queued.'
            : 'Every image left is already queued or being processed; nothing was queued.';
      return { batch_id: null, message, queued: 0, image_ids: [], skipped_in_flight: skipped };
    }
    const em = this.em.fork();
    const batchId = randomUUID();
    const owner = em.getReference(User, p.userId);
    const jobs = todo.map((i) => {
      const job = this.jobs.build(em, 'project.detect', owner, {
        projectId: project.id,
        imageId: i.id,
        model: model.name,
        conf: DEFAULT_CONF,
        iou: DEFAULT_IOU,
      });
      job.image = em.getReference(Image, i.id);
      job.project = em.getReference(Project, project.id);
      job.batchId = batchId;
      return job;
    });
    await em.persist(jobs).flush();
    for (const j of jobs) await this.jobs.enqueue(j);
    return {
      batch_id: batchId,
      message: 'GOT IT, START PROCESSING',
      queued: jobs.length,
      image_ids: todo.map((i) => i.id),
      skipped_in_flight: skipped,
    };
  }

  /** The ids of the jobs of a batch a start queued. */
  async batchJobIds(batchId: string): Promise<string[]> {
    const jobs = await this.em.fork().find(Job, { batchId }, { fields: ['id'] });
    return jobs.map((j) => j.id);
  }

  /** The latest completed result set of each image (newest first), or of one image. */
  async results(project: Project, imageId?: string): Promise<ResultSetDto[]> {
    const where = imageId
      ? { project: project.id, type: 'project.detect' as const, status: 'completed' as const, image: imageId }
      : { project: project.id, type: 'project.detect' as const, status: 'completed' as const };
    const jobs = await this.em.find(Job, where, { populate: ['image', 'artifacts'], orderBy: { finishedAt: 'desc', id: 'asc' } });
    const seen = new Set<string>();
    const out: ResultSetDto[] = [];
    for (const j of jobs) {
      if (!j.image || seen.has(j.image.id)) continue;
      seen.add(j.image.id);
      const r = j.result ?? {};
      const annotated = j.artifacts.getItems().find((a) => a.name.startsWith('annotated'));
      out.push({
        image_id: j.image.id,
        image_name: j.image.originalName,
        job_id: j.id,
        batch_id: j.batchId,
        model: String(r['model'] ?? j.params['model'] ?? ''),
        detections: (r['detections'] as unknown as ResultSetDto['detections']) ?? [],
        result_image_url: annotated ? `/api/v1/jobs/${j.id}/artifacts/${annotated.id}` : null,
        created_at: j.createdAt.toISOString(),
        finished_at: j.finishedAt?.toISOString() ?? null,
      });
    }
    return out;
  }
}
