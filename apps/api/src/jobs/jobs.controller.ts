import { Controller, Delete, Get, HttpCode, Param, Query, Res, StreamableFile } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ApiPageResponse, type Page, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { JobAccessService } from './job-access.service.js';
import { JobDto, JobListQueryDto, JobResultDto, JobStatusDto, WaitQueryDto } from './jobs.dto.js';

@ApiTags('jobs')
@Authenticated()
@Controller('jobs')
export class JobsController {
  constructor(private readonly jobs: JobAccessService) {}

  @Get()
  @ApiOperation({
    summary: 'List jobs',
    description:
      "Own jobs, newest first, filtered by status, type, model and batch; admins may pass all=true to list every user's. " +
      'An unknown status or type is a 400 listing the allowed values; an unknown model a 400 listing the installed ones.',
  })
  @ApiPageResponse(JobDto)
  @ApiBadRequestResponse({ type: ProblemDto, description: 'An unknown status, type or model (the detail lists the allowed values)' })
  async listJobs(@Query() q: JobListQueryDto, @CurrentPrincipal() p: Principal): Promise<Page<JobDto>> {
    const [items, total] = await this.jobs.list(q, p);
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
    return JobDto.from(await this.jobs.find(id, p, true));
  }

  @Get(':id/status')
  @ApiOperation({
    summary: 'Job status and progress',
    description: 'With wait_ms, answers as soon as the job is final (or when wait_ms runs out): no need to poll.',
  })
  @ApiOkResponse({ type: JobStatusDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Job with id {id} does not exist.' })
  async getJobStatus(@Param('id') id: string, @Query() q: WaitQueryDto, @CurrentPrincipal() p: Principal): Promise<JobStatusDto> {
    const j = await this.jobs.findWaiting(id, p, q.wait_ms, 'status');
    return JobStatusDto.from(j);
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
    const j = await this.jobs.findWaiting(id, p, q.wait_ms, 'result');
    return JobResultDto.from(j);
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
    const { artifact: a, content } = await this.jobs.artifact(id, artifactId, p);
    res.setHeader('Content-Disposition', `attachment; filename="${a.name.replace(/[^\w.-]/g, '_')}"`);
    return new StreamableFile(content, { type: a.contentType, length: a.sizeBytes });
  }

  @Get(':id/visualization.svg')
  @ApiOperation({
    summary: "A segmentation job's masks over its image (SVG)",
    description: 'The input image (at most 1024 px on its long side) with each mask outlined, filled semi-transparently and its score.',
  })
  @ApiProduces('image/svg+xml')
  @ApiOkResponse({ description: 'The SVG', schema: { type: 'string' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown job, or not a segmentation job' })
  @ApiConflictResponse({ type: ProblemDto, description: 'The job has not completed' })
  async getJobVisualization(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const { artifact: a, content } = await this.jobs.visualization(id, p);
    res.setHeader('Content-Type', 'image/svg+xml');
    return new StreamableFile(content, { type: 'image/svg+xml', length: a.sizeBytes });
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a job', description: 'A queued or running job is cancelled first; its files are removed.' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Job with id {id} does not exist.' })
  @ApiConflictResponse({ type: ProblemDto, description: 'A booth job: its review closes it' })
  async deleteJob(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<void> {
    await this.jobs.delete(id, p);
  }
}
