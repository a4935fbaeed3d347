import {
  Body,
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Query,
  Res,
  StreamableFile,
  UploadedFile,
  UseInterceptors,
} from '@nestjs/common';
import { FileInterceptor } from '@nestjs/platform-express';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiConsumes,
  ApiExtraModels,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiProduces,
  ApiTags,
  ApiTooManyRequestsResponse,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal, Public, StationAllowed } from '@aperture/common/auth.decorators.js';
import { PageQueryDto } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { UploadedImage } from '../images/images.service.js';
import {
  AnimalTypesDto,
  BoothSubmissionDto,
  BoothSubmissionFormDto,
  OwnerResultDto,
  OwnerResultQueryDto,
  ReviewListDto,
  ReviewMetadataDto,
} from './booth.dto.js';
import { BoothReviewService } from './booth-review.service.js';
import { BoothService } from './booth.service.js';
import { JobResultDto } from '../jobs/jobs.dto.js';
import { JOB_RESULT, JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

/** The booth's own routes: submissions, the review list, the owner's page, animal types and the public carousel. */
@ApiTags('booth')
@ApiExtraModels(ReviewMetadataDto)
@Controller()
export class BoothController {
  constructor(
    private readonly booth: BoothService,
    private readonly reviews: BoothReviewService,
  ) {}

  @Post('booth/submissions')
  @Authenticated()
  @StationAllowed()
  @UseInterceptors(FileInterceptor('file'))
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: BoothSubmissionFormDto })
  @ApiOperation({
    summary: 'Submit a pet photo at the booth',
    description:
      'Stores the photo with the owner and animal names and queues a job that makes BOOTH_RESULTS_PER_IMAGE X-ray options ' +
      "(the worker's xray model, or external workers, by BOOTH_PROCESSING). qr_content must be a code of one of your QR " +
      'batches; the owner later finds the confirmed X-ray at GET /booth/results/{code}.',
  })
  @JobCreatingRoute({
    accepted: BoothSubmissionDto,
    acceptedStatus: HttpStatus.CREATED,
    acceptedDescription: 'Stored and queued (or its job not final within Prefer: wait)',
    result: JobResultDto,
    resultDescription: `${JOB_RESULT}; the options then await a review`,
  })
  @ApiBadRequestResponse({
    type: ProblemDto,
    description:
      'No photo, not an acceptable image (IMAGE_VALIDATION_ERROR), an empty or too long name, an unknown animal type, ' +
      'or a QR code not of your batches',
  })
  @ApiConflictResponse({ type: ProblemDto, description: 'The QR code is already tied to an open submission' })
  @ApiPayloadTooLargeResponse({ type: ProblemDto, description: `Larger than IMAGE_MAX_BYTES, or ${UPLOAD_413}` })
  async createBoothSubmission(
    @Body() form: BoothSubmissionFormDto,
    @UploadedFile() file: UploadedImage | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<BoothSubmissionDto, JobResultDto>> {
    const { submission, job, currentJobs } = await this.booth.submit(form, file, p);
    return JobAnswer.ofJob({ status: 'success', submission_id: submission.id, job_id: job.id, current_jobs: currentJobs }, job.id);
  }

  @Get('reviews')
  @Authenticated()
  @StationAllowed()
  @ApiOperation({
    summary: 'Booth jobs awaiting a review decision',
    description:
      'Completed booth jobs of yours (every one for an admin) without a decision, oldest first, keyed by job id: metadata, ' +
      'the URLs of the result options and of the original, and results_per_image; paginated.',
  })
  @ApiOkResponse({ type: ReviewListDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Bad page or page_size' })
  listReviews(@Query() q: PageQueryDto, @CurrentPrincipal() p: Principal): Promise<ReviewListDto> {
    return this.reviews.list(q, p);
  }

  @Get('booth/results/:qr')
  @Public()
  @ApiOperation({
    summary: "The owner's page: the confirmed X-ray of a QR code",
    description:
      'Public, rate-limited by client IP. JSON with the URLs of the X-ray and the original, or with download=1 a ZIP of both ' +
      '(xray.png, original.png). 404 until a reviewer confirmed an option, and for any unknown code.',
  })
  @ApiProduces('application/json', 'application/zip')
  @ApiOkResponse({ type: OwnerResultDto, description: 'JSON, or the ZIP with download=1' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown code, or not confirmed yet' })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Rate limit of the client IP exceeded' })
  async getBoothResult(
    @Param('qr') qr: string,
    @Query() q: OwnerResultQueryDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<OwnerResultDto | StreamableFile> {
    if (q.download !== '1') return this.booth.ownerResult(qr);
    const zip = await this.booth.ownerZip(qr);
    res.setHeader('Content-Disposition', 'attachment; filename="xray.zip"');
    return new StreamableFile(zip, { type: 'application/zip' });
  }

  @Get('booth/results/:qr/:file')
  @Public()
  @ApiOperation({ summary: "One image of the owner's page: xray.png or original.png" })
  @ApiProduces('image/png')
  @ApiOkResponse({ description: 'The PNG', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown code, not confirmed yet, or another file name' })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Rate limit of the client IP exceeded' })
  async getBoothResultFile(@Param('qr') qr: string, @Param('file') file: string): Promise<StreamableFile> {
    return new StreamableFile(await this.booth.ownerFile(qr, file), { type: 'image/png' });
  }

  @Get('animal-types')
  @Public()
  @ApiOperation({ summary: 'The animal types a submission may name', description: 'BOOTH_ANIMAL_TYPES, plus other.' })
  @ApiOkResponse({ type: AnimalTypesDto })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Rate limit of the client IP exceeded' })
  getAnimalTypes(): AnimalTypesDto {
    return { types: this.booth.animalTypes() };
  }

  @Get('carousel')
  @Public()
  @ApiOperation({
    summary: 'The showcased before/after pairs',
    description: 'URLs of the confirmed pairs, newest first, at most CAROUSEL_SIZE (the oldest are dropped).',
  })
  @ApiOkResponse({ schema: { type: 'array', items: { type: 'string', example: '/api/v1/carousel/0' } } })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Rate limit of the client IP exceeded' })
  getCarousel(): Promise<string[]> {
    return this.reviews.carousel();
  }

  @Get('carousel/:index')
  @Public()
  @HttpCode(200)
  @ApiOperation({
    summary: 'One carousel pair as a ZIP',
    description: 'carousel_{index}.zip with xray.png and original.png; 0 is the newest.',
  })
  @ApiProduces('application/zip')
  @ApiOkResponse({ description: 'The ZIP', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No entry at that index' })
  async getCarouselEntry(@Param('index') index: string, @Res({ passthrough: true }) res: Response): Promise<StreamableFile> {
    const zip = await this.reviews.carouselZip(index);
    res.setHeader('Content-Disposition', `attachment; filename="carousel_${Number(index)}.zip"`);
    return new StreamableFile(zip, { type: 'application/zip' });
  }
}
