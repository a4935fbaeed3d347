import { applyDecorators, Body, Controller, HttpStatus, Post, Res, UploadedFile, UseInterceptors } from '@nestjs/common';
import { FileInterceptor } from '@nestjs/platform-express';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBody,
  ApiConsumes,
  ApiExtraModels,
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
import type { UploadedImage } from '../images/images.service.js';
import { JobAcceptedDto, acceptedJob, jobAccepted } from '../jobs/job-answers.js';
import { JobResultDto } from '../jobs/jobs.dto.js';
import { JOB_RESULT, type JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';
import { SegmentAutoFormDto, SegmentAutoResultDto } from './segment-auto.dto.js';
import { SegmentAutoService } from './segment-auto.service.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

/** How long the synchronous route waits for the job before it answers 202 with the job's URLs. */
export const SYNC_WAIT_MS = 120_000;

const DESCRIPTION =
  "SAM's automatic mask generator: a grid of points_per_side² clicks (per crop layer), each decoded to three masks, " +
  'filtered by predicted IoU and stability, deduplicated by box NMS. Parameters have SamAutomaticMaskGenerator’s names ' +
  'and defaults. The image is an upload (multipart "image") or one of yours (image_id). The result is also at ' +
  'GET /api/v1/jobs/{id}/result.';

function SegmentAutoRoute(): MethodDecorator {
  return applyDecorators(
    UseInterceptors(FileInterceptor('image')),
    ApiConsumes('multipart/form-data'),
    ApiBody({ type: SegmentAutoFormDto }),
    ApiBadRequestResponse({
      type: ProblemDto,
      description: 'A parameter out of range (the field is named), a model that is not SAM, or IMAGE_VALIDATION_ERROR',
    }),
    ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' }),
    ApiPayloadTooLargeResponse({ type: ProblemDto, description: `Larger than IMAGE_MAX_BYTES, or ${UPLOAD_413}` }),
  );
}

@ApiTags('segment')
@Authenticated()
@ApiExtraModels(SegmentAutoResultDto)
@Controller('segment/auto')
export class SegmentAutoController {
  constructor(private readonly service: SegmentAutoService) {}

  @Post()
  @SegmentAutoRoute()
  @ApiOperation({
    summary: 'Segment everything on an image (waits for the result)',
    description: `${DESCRIPTION} Waits up to ${SYNC_WAIT_MS / 1000} s for the job; 202 with the job's URLs if it has not finished by then.`,
  })
  @ApiOkResponse({ type: SegmentAutoResultDto })
  @ApiAcceptedResponse({ type: JobAcceptedDto, description: 'Not finished within the wait: poll the job' })
  @ApiUnprocessableEntityResponse({ type: ProblemDto, description: 'MODEL_ERROR: the job failed (the detail says why)' })
  async segmentAuto(
    @Body() form: SegmentAutoFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SegmentAutoResultDto | JobAcceptedDto> {
    const queued = await this.service.submit(form, file, p);
    const job = await this.service.waitFor(queued, SYNC_WAIT_MS);
    if (job) {
      res.status(HttpStatus.OK);
      return { job_id: job.id, ...(job.result as unknown as Omit<SegmentAutoResultDto, 'job_id'>) };
    }
    res.status(HttpStatus.ACCEPTED);
    return jobAccepted(queued);
  }

  @Post('async')
  @SegmentAutoRoute()
  @ApiOperation({ summary: 'Segment everything on an image (queued)', description: `${DESCRIPTION} Answers at once; poll the job.` })
  @JobCreatingRoute({ accepted: JobAcceptedDto, result: JobResultDto, resultDescription: JOB_RESULT })
  async segmentAutoAsync(
    @Body() form: SegmentAutoFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<JobAcceptedDto, JobResultDto>> {
    return acceptedJob(await this.service.submit(form, file, p));
  }
}
