import { Body, Controller, HttpStatus, Post, Res, UploadedFile, UseInterceptors, applyDecorators } from '@nestjs/common';
import { FileInterceptor } from '@nestjs/platform-express';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBody,
  ApiConsumes,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import type { UploadedImage } from '../images/images.service.js';
import { JobAcceptedDto, acceptedJob, jobAccepted } from '../jobs/job-answers.js';
import { JobResultDto } from '../jobs/jobs.dto.js';
import { JOB_RESULT, type JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';
import { SegmentBoxFormDto, SegmentPointsFormDto, SegmentResponseDto } from './segment.dto.js';
import { SEGMENT_SYNC_WAIT_MS, SegmentService } from './segment.service.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

const BAD =
  'Malformed points or box JSON, a point or box outside the image, an empty box (x2 ≤ x1), more than 64 points, a model that is ' +
  'not a SAM model (the detail lists the installed ones), or a file that is not an image (IMAGE_VALIDATION_ERROR)';

function PromptRoute(body: new () => object, summary: string, description: string, sync: boolean): MethodDecorator {
  return applyDecorators(
    UseInterceptors(FileInterceptor('image')),
    ApiConsumes('multipart/form-data'),
    ApiBody({ type: body }),
    ApiOperation({ summary, description }),
    ...(sync
      ? [
          ApiOkResponse({ type: SegmentResponseDto }),
          ApiAcceptedResponse({ type: JobAcceptedDto, description: 'Not done within 60 s: poll the job' }),
          ApiUnprocessableEntityResponse({ type: ProblemDto, description: 'MODEL_ERROR: the job failed' }),
        ]
      : [JobCreatingRoute({ accepted: JobAcceptedDto, result: JobResultDto, resultDescription: JOB_RESULT })]),
    ApiBadRequestResponse({ type: ProblemDto, description: BAD }),
    ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' }),
    ApiPayloadTooLargeResponse({ type: ProblemDto, description: `Larger than IMAGE_MAX_BYTES, or ${UPLOAD_413}` }),
  );
}

const POINTS =
  'SAM masks for clicks on an image (an upload or one of your images). The points are normalized ([0, 1]) or pixels (coords). ';
const BOX = 'SAM masks for one or several boxes (with optional points added to each): one result per box. ';
const SYNC = 'Runs as a segment.prompt job on a worker and answers when it is done (or 202 with the job URLs after 60 s).';
const ASYNC = 'Queues a segment.prompt job; its result is at GET /jobs/{id}/result, its picture at GET /jobs/{id}/visualization.svg.';

@ApiTags('segment')
@Authenticated()
@Controller('segment')
export class SegmentController {
  constructor(private readonly segment: SegmentService) {}

  @Post('points')
  @PromptRoute(SegmentPointsFormDto, 'Segment by points', POINTS + SYNC, true)
  async segmentPoints(
    @Body() form: SegmentPointsFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SegmentResponseDto | JobAcceptedDto> {
    return this.wait(await this.segment.points(form, file, p), res);
  }

  @Post('points/async')
  @PromptRoute(SegmentPointsFormDto, 'Segment by points (queued)', POINTS + ASYNC, false)
  async segmentPointsAsync(
    @Body() form: SegmentPointsFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<JobAcceptedDto, JobResultDto>> {
    return acceptedJob(await this.segment.points(form, file, p));
  }

  @Post('box')
  @PromptRoute(SegmentBoxFormDto, 'Segment by boxes', BOX + SYNC, true)
  async segmentBox(
    @Body() form: SegmentBoxFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SegmentResponseDto | JobAcceptedDto> {
    return this.wait(await this.segment.box(form, file, p), res);
  }

  @Post('box/async')
  @PromptRoute(SegmentBoxFormDto, 'Segment by boxes (queued)', BOX + ASYNC, false)
  async segmentBoxAsync(
    @Body() form: SegmentBoxFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<JobAcceptedDto, JobResultDto>> {
    return acceptedJob(await this.segment.box(form, file, p));
  }

  private async wait(job: Job, res: Response): Promise<SegmentResponseDto | JobAcceptedDto> {
    const done = await this.segment.answer(job, SEGMENT_SYNC_WAIT_MS);
    if (done) {
      res.status(HttpStatus.OK);
      return done;
    }
    res.status(HttpStatus.ACCEPTED);
    return jobAccepted(job);
  }
}
