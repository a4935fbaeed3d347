import { applyDecorators, Body, Controller, HttpStatus, Post, Res, UploadedFile, UseInterceptors } from '@nestjs/common';
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
  ApiServiceUnavailableResponse,
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
import { SYNC_WAIT_MS } from '../segment-auto/segment-auto.controller.js';
import { SegmentObjectsFormDto, SegmentObjectsResultDto } from './segment-objects.dto.js';
import { SegmentObjectsService } from './segment-objects.service.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

const DESCRIPTION =
  'Cuts every object out of an image (multipart "image", or image_id): the masks of the automatic mask generator (its ' +
  'parameters as POST /segment/auto), or of the given points and/or box (as /segment/points and /segment/box), each ' +
  'cleaned (holes and specks below min_mask_region_area removed); every mask of at least min_pixels becomes ' +
  'object_{i}.png (the tight crop, the mask as alpha, feathered by `feather` px) and mask_{i}.png, largest first, plus ' +
  'overlay.png, metadata.json and visualization.svg, all job artifacts. With save_to_drive every file is also uploaded ' +
  'to Google Drive, named after the job.';

function SegmentObjectsRoute(): MethodDecorator {
  return applyDecorators(
    UseInterceptors(FileInterceptor('image')),
    ApiConsumes('multipart/form-data'),
    ApiBody({ type: SegmentObjectsFormDto }),
    ApiBadRequestResponse({
      type: ProblemDto,
      description:
        'A parameter out of range or malformed JSON (the field is named), a prompt outside the image, generator parameters ' +
        'with prompts, a model that is not SAM, or IMAGE_VALIDATION_ERROR',
    }),
    ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' }),
    ApiPayloadTooLargeResponse({ type: ProblemDto, description: `Larger than IMAGE_MAX_BYTES, or ${UPLOAD_413}` }),
  );
}

@ApiTags('segment')
@Authenticated()
@Controller('segment/objects')
export class SegmentObjectsController {
  constructor(private readonly service: SegmentObjectsService) {}

  @Post()
  @SegmentObjectsRoute()
  @ApiOperation({
    summary: 'Extract objects as RGBA images (waits for the result)',
    description: `${DESCRIPTION} Waits up to ${SYNC_WAIT_MS / 1000} s for the job; 202 with the job's URLs if it has not finished by then.`,
  })
  @ApiOkResponse({ type: SegmentObjectsResultDto })
  @ApiAcceptedResponse({ type: JobAcceptedDto, description: 'Not finished within the wait: poll the job' })
  @ApiUnprocessableEntityResponse({ type: ProblemDto, description: 'MODEL_ERROR: the job failed (the detail says why)' })
  @ApiServiceUnavailableResponse({
    type: ProblemDto,
    description:
      'DRIVE_ERROR: save_to_drive with Drive disabled (nothing stored), or the upload failed during the job: then the problem ' +
      'carries job_id and result_url, and the objects are kept as the job’s artifacts',
  })
  async segmentObjects(
    @Body() form: SegmentObjectsFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SegmentObjectsResultDto | JobAcceptedDto> {
    const queued = await this.service.submit(form, file, p);
    const done = await this.service.answer(queued, SYNC_WAIT_MS);
    if (done) {
      res.status(HttpStatus.OK);
      return done;
    }
    res.status(HttpStatus.ACCEPTED);
    return jobAccepted(queued);
  }

  @Post('async')
  @SegmentObjectsRoute()
  @ApiOperation({
    summary: 'Extract objects as RGBA images (queued)',
    description: `${DESCRIPTION} Answers at once; the result (with drive_error if Drive failed) is at GET /jobs/{id}/result.`,
  })
  @JobCreatingRoute({ accepted: JobAcceptedDto, result: JobResultDto, resultDescription: JOB_RESULT })
  @ApiServiceUnavailableResponse({ type: ProblemDto, description: 'DRIVE_ERROR: save_to_drive with Drive disabled; nothing is stored' })
  async segmentObjectsAsync(
    @Body() form: SegmentObjectsFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<JobAcceptedDto, JobResultDto>> {
    return acceptedJob(await this.service.submit(form, file, p));
  }
}
