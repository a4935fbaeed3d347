import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Patch, Post, Query, Res, UploadedFiles } from '@nestjs/common';
import {
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiBadRequestResponse,
  ApiConflictResponse,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ApiPageResponse, type Page, PageQueryDto, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { notFound } from '@aperture/common/problem.js';
import type { ImageUploadReportDto } from '../images/images.dto.js';
import { ImagesService } from '../images/images.service.js';
import { ImageUpload, type UploadedFields, uploadedFiles, uploadReport } from '../images/upload.js';
import {
  ProjectCreateDto,
  ProjectDto,
  ProjectImageDto,
  ProjectStartDto,
  ProjectStartResultDto,
  ProjectSummaryDto,
  ProjectUpdateDto,
  ResultSetDto,
} from './projects.dto.js';
import { ProjectsService } from './projects.service.js';
import { JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';
import type { Project } from '@aperture/database/entities/project.entity.js';

const START_RESULT_TEXT =
  'the start and the result sets of the project (results) once every job queued is final. Also 200, with or without ' +
  'Prefer, when nothing was queued: then without results, the message says why (batch_id null)';
const START_ACCEPTED = 'Queued (or not every job final within Prefer: wait): the batch id and the images; follow the jobs by batch_id';

const NOT_FOUND = { type: ProblemDto, description: "Project with id {id} does not exist. (also for another user's project)" };

@ApiTags('projects')
@Authenticated()
@Controller('projects')
export class ProjectsController {
  constructor(
    private readonly projects: ProjectsService,
    private readonly images: ImagesService,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Create a project', description: 'With a name, a description and the model its images are processed with.' })
  @ApiCreatedResponse({ type: ProjectDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Bad field; an unknown model lists the valid (id, name, kind) triples' })
  async createProject(@Body() dto: ProjectCreateDto, @CurrentPrincipal() p: Principal): Promise<ProjectDto> {
    return this.projects.detail(await this.projects.create(dto, p));
  }

  @Get()
  @ApiOperation({
    summary: 'List your projects',
    description: 'Newest first, with the derived status and image counts (the detail adds the images).',
  })
  @ApiPageResponse(ProjectSummaryDto)
  async listProjects(@Query() q: PageQueryDto, @CurrentPrincipal() p: Principal): Promise<Page<ProjectSummaryDto>> {
    const [items, total] = await this.projects.list(p, q);
    return toPage(items, total, q);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Project detail', description: 'The same derived status as the list, and every image with has_result.' })
  @ApiOkResponse({ type: ProjectDto })
  @ApiNotFoundResponse(NOT_FOUND)
  async getProject(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<ProjectDto> {
    return this.projects.detail(await this.projects.findOwn(id, p));
  }

  @Patch(':id')
  @ApiOperation({ summary: 'Update a project' })
  @ApiOkResponse({ type: ProjectDto })
  @ApiNotFoundResponse(NOT_FOUND)
  async updateProject(@Param('id') id: string, @Body() dto: ProjectUpdateDto, @CurrentPrincipal() p: Principal): Promise<ProjectDto> {
    return this.projects.detail(await this.projects.update(await this.projects.findOwn(id, p), dto));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a project', description: 'Cancels its queued and running jobs; removes its images, results and files.' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse(NOT_FOUND)
  async deleteProject(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<void> {
    await this.projects.delete(await this.projects.findOwn(id, p));
  }

  @Post(':id/images')
  @ImageUpload('an image of the project')
  @ApiOperation({
    summary: 'Upload images into a project',
    description:
      'Several files under "images" in one request; each bad file is reported in bad_images (name and reason) instead of failing the ' +
      'others. 201 all stored, 207 some, 400 none.',
  })
  @ApiNotFoundResponse(NOT_FOUND)
  async uploadProjectImages(
    @Param('id') id: string,
    @UploadedFiles() fields: UploadedFields,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ImageUploadReportDto> {
    const project = await this.projects.findOwn(id, p);
    const files = uploadedFiles(fields);
    return uploadReport(await this.images.store(files, p.userId, project), files.length, res);
  }

  @Get(':id/images')
  @ApiOperation({ summary: 'Images of a project', description: 'Oldest first, each with has_result.' })
  @ApiOkResponse({ type: [ProjectImageDto] })
  @ApiNotFoundResponse(NOT_FOUND)
  async listProjectImages(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<ProjectImageDto[]> {
    const project = await this.projects.findOwn(id, p);
    return this.projects.imageDtos(project, await this.projects.images(project));
  }

  @Get(':id/images/:imageId')
  @ApiOperation({ summary: 'One image of a project' })
  @ApiOkResponse({ type: ProjectImageDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown project, or image not in it' })
  async getProjectImage(
    @Param('id') id: string,
    @Param('imageId') imageId: string,
    @CurrentPrincipal() p: Principal,
  ): Promise<ProjectImageDto> {
    const project = await this.projects.findOwn(id, p);
    const [dto] = await this.projects.imageDtos(project, [await this.projects.findImage(project, imageId)]);
    return dto!;
  }

  @Delete(':id/images/:imageId')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete an image of a project',
    description: 'With its results; refused (409) while a queued or running job needs it.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown project, or image not in it' })
  @ApiConflictResponse({ type: ProblemDto, description: 'A queued or running job still needs the image' })
  async deleteProjectImage(@Param('id') id: string, @Param('imageId') imageId: string, @CurrentPrincipal() p: Principal): Promise<void> {
    const project = await this.projects.findOwn(id, p);
    await this.images.delete(await this.projects.findImage(project, imageId));
  }

  @Post(':id/start')
  @ApiOperation({
    summary: 'Process every image',
    description: "One job per image with the project's model, under one batch id (images already queued or running are not queued twice).",
  })
  @JobCreatingRoute({
    accepted: ProjectStartDto,
    acceptedDescription: START_ACCEPTED,
    result: ProjectStartResultDto,
    resultDescription: START_RESULT_TEXT,
  })
  @ApiNotFoundResponse(NOT_FOUND)
  async startProject(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ProjectStartDto | JobAnswer<ProjectStartDto, ProjectStartResultDto>> {
    const project = await this.projects.findOwn(id, p);
    return this.answer(project, await this.projects.start(project, p, false), res);
  }

  @Post(':id/start-rest')
  @ApiOperation({
    summary: 'Process only the images without a result',
    description:
      'As start, for the images that have no completed result (e.g. added later). When none is left, says so and changes nothing (200, ' +
      'batch_id null).',
  })
  @JobCreatingRoute({
    accepted: ProjectStartDto,
    acceptedDescription: START_ACCEPTED,
    result: ProjectStartResultDto,
    resultDescription: START_RESULT_TEXT,
  })
  @ApiNotFoundResponse(NOT_FOUND)
  async startProjectRest(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ProjectStartDto | JobAnswer<ProjectStartDto, ProjectStartResultDto>> {
    const project = await this.projects.findOwn(id, p);
    return this.answer(project, await this.projects.start(project, p, true), res);
  }

  /** Nothing queued: 200 with that news, whatever the Prefer header. Else the batch, or its results (Prefer: wait). */
  private answer(project: Project, r: ProjectStartDto, res: Response): ProjectStartDto | JobAnswer<ProjectStartDto, ProjectStartResultDto> {
    if (r.queued === 0 || !r.batch_id) {
      res.status(HttpStatus.OK);
      return r;
    }
    const batchId = r.batch_id;
    return new JobAnswer(
      r,
      () => this.projects.batchJobIds(batchId),
      async () => ({ ...r, results: await this.projects.results(project) }),
    );
  }

  @Get(':id/results')
  @ApiOperation({
    summary: 'Result sets of a project',
    description:
      'Per image, its latest completed result: detections ({class, confidence, bbox_xyxy_abs}, corners for oriented boxes), the ' +
      'annotated image, the model, timestamps.',
  })
  @ApiOkResponse({ type: [ResultSetDto] })
  @ApiNotFoundResponse(NOT_FOUND)
  async listProjectResults(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<ResultSetDto[]> {
    return this.projects.results(await this.projects.findOwn(id, p));
  }

  @Get(':id/results/:imageId')
  @ApiOperation({ summary: 'Result set of one image of a project' })
  @ApiOkResponse({ type: ResultSetDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown project or image, or no result yet' })
  async getProjectResult(
    @Param('id') id: string,
    @Param('imageId') imageId: string,
    @CurrentPrincipal() p: Principal,
  ): Promise<ResultSetDto> {
    const project = await this.projects.findOwn(id, p);
    const image = await this.projects.findImage(project, imageId);
    const [r] = await this.projects.results(project, image.id);
    if (!r) throw notFound(`Image ${imageId} of project ${id} has no result yet: start the project.`);
    return r;
  }
}
