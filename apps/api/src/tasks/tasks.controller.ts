import {
  Body,
  Controller,
  Delete,
  Get,
  Param,
  Post,
  Query,
  Req,
  Res,
  StreamableFile,
  UploadedFiles,
  UseInterceptors,
} from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiConsumes,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ApiPageResponse, type Page, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { badRequest, conflict, notFound } from '@aperture/common/problem.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { compressible, zipStream } from '@aperture/storage/zip-stream.js';
import { Inject } from '@nestjs/common';
import { ImageContent } from '../images/image-content.js';
import type { UploadedImage } from '../images/images.service.js';
import { WaitQueryDto } from '../jobs/jobs.dto.js';
import { JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';
import {
  TaskAcceptedDto,
  TaskCreateFormDto,
  TaskDeletedDto,
  TaskDto,
  TaskListQueryDto,
  TaskModelIdsDto,
  TaskParamsDto,
  TaskResultDto,
  TaskStatusDto,
  TASK_TYPE_OF,
} from './tasks.dto.js';
import { TasksService } from './tasks.service.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

const RESULT = 'the task result, as GET /tasks/{id}/result gives it (result null and status failed or cancelled if it did not complete)';
const NOT_FOUND = { type: ProblemDto, description: "Task with id {id} does not exist. (also for another user's task)" };

function accepted(job: Job): TaskAcceptedDto {
  return {
    id: job.id,
    type: TASK_TYPE_OF[job.type] ?? 'prediction',
    status: job.status,
    image_id: job.image!.id,
    status_url: `/api/v1/tasks/${job.id}/status`,
    result_url: `/api/v1/tasks/${job.id}/result`,
  };
}

@ApiTags('tasks')
@Authenticated()
@Controller('tasks')
export class TasksController {
  constructor(
    private readonly tasks: TasksService,
    private readonly content: ImageContent,
    private readonly waiter: JobWaiter,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  private async findWaiting(id: string, p: Principal, waitMs: number): Promise<Job> {
    return this.waiter.whenFinal(await this.tasks.findOwn(id, p), waitMs, () => this.tasks.findOwn(id, p, true));
  }

  @Post()
  @UseInterceptors(
    FileFieldsInterceptor([
      { name: 'image', maxCount: 1 },
      { name: 'file', maxCount: 1 },
    ]),
  )
  @ApiConsumes('multipart/form-data', 'application/json')
  @ApiBody({ type: TaskCreateFormDto })
  @ApiOperation({
    summary: 'Create a task',
    description:
      'prediction: oriented primitives by the detection model, then the scene classified FROM them. fragments: fragment masks, diameters ' +
      'calibrated by the red ball (real_radius, unit), D10/D50/D90, overlay, chart, masks, CSV. The image is an upload (multipart ' +
      '"image") or one of yours (image_id). Every parameter is checked before anything is stored. Older clients\' names are ' +
      'accepted too: detection_model_id and classification_model_id (integer model ids, in the query string or the body) and ' +
      'the multipart field "file".',
  })
  @JobCreatingRoute({ accepted: TaskAcceptedDto, result: TaskResultDto, resultDescription: RESULT })
  @ApiBadRequestResponse({
    type: ProblemDto,
    description:
      'Bad parameter; an unknown model lists the valid (id, name, kind) triples; IMAGE_VALIDATION_ERROR for a file that is not an ' +
      'acceptable image',
  })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' })
  @ApiPayloadTooLargeResponse({ type: ProblemDto, description: `Larger than IMAGE_MAX_BYTES, or ${UPLOAD_413}` })
  async createTask(
    @Body() form: TaskCreateFormDto,
    @Query() q: TaskModelIdsDto,
    @UploadedFiles() files: { image?: UploadedImage[]; file?: UploadedImage[] } | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<TaskAcceptedDto, TaskResultDto>> {
    const [image, file] = [files?.image?.[0], files?.file?.[0]];
    if (image && file)
      throw badRequest('Send the image once: as the multipart field "image" (or its older name "file"), not both.', {
        errors: [{ field: 'file', messages: ['not with image'] }],
      });
    return this.answer(await this.tasks.create(form, image ?? file, p, q), p);
  }

  /** The accepted task, or (with Prefer: wait) its result as GET /tasks/{id}/result gives it. */
  private answer(job: Job, p: Principal): JobAnswer<TaskAcceptedDto, TaskResultDto> {
    return new JobAnswer(accepted(job), [job.id], async () => {
      return TaskResultDto.from(await this.tasks.findOwn(job.id, p, true));
    });
  }

  @Get()
  @ApiOperation({ summary: 'List your tasks', description: 'Newest first; filter by status and type.' })
  @ApiPageResponse(TaskDto)
  async listTasks(@Query() q: TaskListQueryDto, @CurrentPrincipal() p: Principal): Promise<Page<TaskDto>> {
    const [items, total] = await this.tasks.list(p, q);
    return toPage(
      items.map((j) => TaskDto.from(j)),
      total,
      q,
    );
  }

  @Get(':id')
  @ApiOperation({ summary: 'Task detail' })
  @ApiOkResponse({ type: TaskDto })
  @ApiNotFoundResponse(NOT_FOUND)
  async getTask(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<TaskDto> {
    return TaskDto.from(await this.tasks.findOwn(id, p));
  }

  @Get(':id/status')
  @ApiOperation({
    summary: 'Task status',
    description: 'With wait_ms, answers as soon as the task is final (or when wait_ms runs out): no need to poll.',
  })
  @ApiOkResponse({ type: TaskStatusDto })
  @ApiNotFoundResponse(NOT_FOUND)
  async getTaskStatus(@Param('id') id: string, @Query() q: WaitQueryDto, @CurrentPrincipal() p: Principal): Promise<TaskStatusDto> {
    const j = await this.findWaiting(id, p, q.wait_ms);
    return { id: j.id, status: j.status, progress: j.progress, error: j.error };
  }

  @Get(':id/input')
  @ApiOperation({ summary: 'Task input image', description: 'The image the task ran on, with its MIME type and ETag.' })
  @ApiProduces('image/jpeg', 'image/png', 'image/webp', 'image/bmp', 'image/tiff')
  @ApiOkResponse({ description: 'The image', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Task with id {id} does not exist. / its image was deleted' })
  async getTaskInput(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile | undefined> {
    const j = await this.tasks.findOwn(id, p);
    if (!j.image) throw notFound(`The input image of task ${id} was deleted.`);
    return this.content.send(j.image, req, res);
  }

  @Get(':id/result')
  @ApiOperation({
    summary: 'Task result',
    description:
      'result is null until the task has completed. With wait_ms, answers as soon as the task is final (or when wait_ms runs out).',
  })
  @ApiOkResponse({ type: TaskResultDto })
  @ApiNotFoundResponse(NOT_FOUND)
  async getTaskResult(@Param('id') id: string, @Query() q: WaitQueryDto, @CurrentPrincipal() p: Principal): Promise<TaskResultDto> {
    const j = await this.findWaiting(id, p, q.wait_ms);
    return TaskResultDto.from(j);
  }

  @Post(':id/rerun')
  @ApiOperation({
    summary: 'Re-run a task with new parameters',
    description: "Creates a new task on the same image; parameters not given keep the old task's values.",
  })
  @JobCreatingRoute({ accepted: TaskAcceptedDto, result: TaskResultDto, resultDescription: RESULT })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Bad parameter' })
  @ApiNotFoundResponse(NOT_FOUND)
  @ApiConflictResponse({ type: ProblemDto, description: 'The input image was deleted' })
  async rerunTask(
    @Param('id') id: string,
    @Body() body: TaskParamsDto,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<TaskAcceptedDto, TaskResultDto>> {
    return this.answer(await this.tasks.rerun(await this.tasks.findOwn(id, p), body, p), p);
  }

  @Get(':id/artifacts.zip')
  @ApiOperation({
    summary: 'Download every file of a task as a ZIP',
    description:
      'fragments: overlay.png, masks.png, chart.png, fragments.csv, result.json; prediction: annotated.jpg, result.json. Exactly the ' +
      'artifacts the task lists.',
  })
  @ApiProduces('application/zip')
  @ApiOkResponse({ description: 'The ZIP', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse(NOT_FOUND)
  @ApiConflictResponse({ type: ProblemDto, description: 'The task has not completed' })
  async getTaskArtifactsZip(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const j = await this.tasks.findOwn(id, p);
    if (j.status !== 'completed') throw conflict(`Task ${id} is ${j.status}; its files can be downloaded once it has completed.`);
    const files = j.artifacts.getItems().sort((a, b) => a.name.localeCompare(b.name));
    res.setHeader('Content-Disposition', `attachment; filename="task-${j.id}.zip"`);
    return new StreamableFile(
      zipStream(files.map((a) => ({ name: a.name, compress: compressible(a.contentType), open: () => this.storage.read(a.storageKey) }))),
      { type: 'application/zip' },
    );
  }

  @Delete(':id')
  @ApiOperation({
    summary: 'Delete a task',
    description: 'Cancels it if queued or running and removes its results and files; the input image stays among your images.',
  })
  @ApiOkResponse({ type: TaskDeletedDto })
  @ApiNotFoundResponse(NOT_FOUND)
  async deleteTask(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<TaskDeletedDto> {
    await this.tasks.delete(await this.tasks.findOwn(id, p));
    return { id };
  }
}
