import { Controller, Delete, Get, HttpCode, Inject, Param, Query, Res, StreamableFile } from '@nestjs/common';
import { ApiNoContentResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { EntityManager, type FilterQuery } from '@mikro-orm/core';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ApiPageResponse, type Page, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { forbidden, notFound } from '@aperture/common/problem.js';
import { isUuid } from '@aperture/common/ids.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import type { JobType } from '@aperture/queue/job-registry.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { JobDto, JobListQueryDto, JobResultDto, JobStatusDto, WaitQueryDto } from './jobs.dto.js';

@ApiTags('jobs')
@Authenticated()
@Controller('jobs')
export class JobsController {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    private readonly waiter: JobWaiter,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  /** A job the caller may see: their own, or any for an admin. Anything else is the same 404. */
  private async find(id: string, p: Principal, populate = false, refresh = false): Promise<Job> {
    const where: FilterQuery<Job> = p.role === 'admin' ? { id } : { id, owner: p.userId };
    const job = isUuid(id)
      ? await this.em.findOne(Job, where, { ...(populate ? { populate: ['artifacts'] as const } : {}), refresh })
      : null;
    if (!job) throw notFound(`Job with id ${id} does not exist.`, 'JOB_NOT_FOUND');
    return job;
  }

  /** The job, once final or after wait_ms (a deleted job is then a 404 like any other). */
  private async findWaiting(id: string, p: Principal, waitMs: number): Promise<Job> {
    return this.waiter.whenFinal(await this.find(id, p), waitMs, () => this.find(id, p, false, true));
  }

  @Get()
  @ApiOperation({ summary: 'List jobs', description: "Own jobs, newest first; admins may pass all=true to list every user's." })
  @ApiPageResponse(JobDto)
  async listJobs(@Query() q: JobListQueryDto, @CurrentPrincipal() p: Principal): Promise<Page<JobDto>> {
    if (q.all && p.role !== 'admin') throw forbidden('Only admins may list all jobs.');
    const where: FilterQuery<Job> = q.all ? {} : { owner: p.userId };
    if (q.status) where.status = q.status;
    if (q.type) where.type = q.type as JobType; // an unknown type matches nothing
    const [items, total] = await this.em.findAndCount(Job, where, {
      orderBy: { createdAt: 'desc', id: 'asc' },
      limit: q.page_size,
      offset: (q.page - 1) * q.page_size,
      populate: ['artifacts'],
    });
    return toPage(
      items.map((j) => JobDto.from(j)),
      total,
      q,
    );
  }

  @Get(':id')
  @ApiOperation({ summary: 'Job detail' })
  @ApiOkResponse({ type: JobDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Job with id {id} does not exist.' })
  async getJob(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<JobDto> {
    return JobDto.from(await this.find(id, p, true));
  }

  @Get(':id/status')
  @ApiOperation({
    summary: 'Job status and progress',
    description: 'With wait_ms, answers as soon as the job is final (or when wait_ms runs out): no need to poll.',
  })
  @ApiOkResponse({ type: JobStatusDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Job with id {id} does not exist.' })
  async getJobStatus(@Param('id') id: string, @Query() q: WaitQueryDto, @CurrentPrincipal() p: Principal): Promise<JobStatusDto> {
    const j = await this.findWaiting(id, p, q.wait_ms);
    return { id: j.id, status: j.status, progress: j.progress, error: j.error };
  }

  @Get(':id/result')
  @ApiOperation({
    summary: 'Job result',
    description:
      'result is null until the job has completed. With wait_ms, answers as soon as the job is final (or when wait_ms runs out).',
  })
  @ApiOkResponse({ type: JobResultDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Job with id {id} does not exist.' })
  async getJobResult(@Param('id') id: string, @Query() q: WaitQueryDto, @CurrentPrincipal() p: Principal): Promise<JobResultDto> {
    const j = await this.findWaiting(id, p, q.wait_ms);
    return { id: j.id, status: j.status, result: j.status === 'completed' ? j.result : null };
  }

  @Get(':id/artifacts/:artifactId')
  @ApiOperation({ summary: 'Download a file the job produced' })
  @ApiProduces('application/octet-stream')
  @ApiOkResponse({ description: 'The file, with its content type', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown job or artifact' })
  async getJobArtifact(
    @Param('id') id: string,
    @Param('artifactId') artifactId: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const job = await this.find(id, p, true);
    const a = isUuid(artifactId) ? job.artifacts.getItems().find((x) => x.id === artifactId) : undefined;
    if (!a) throw notFound(`Artifact ${artifactId} of job ${id} does not exist.`);
    res.setHeader('Content-Disposition', `attachment; filename="${a.name.replace(/[^\w.-]/g, '_')}"`);
    return new StreamableFile(await this.storage.read(a.storageKey), { type: a.contentType, length: a.sizeBytes });
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a job', description: 'A queued or running job is cancelled first; its files are removed.' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Job with id {id} does not exist.' })
  async deleteJob(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<void> {
    await this.jobs.delete(this.em, await this.find(id, p));
  }
}
