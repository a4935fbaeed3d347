import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Res,
  StreamableFile,
  UploadedFiles,
  UseInterceptors,
} from '@nestjs/common';
import { FilesInterceptor } from '@nestjs/platform-express';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiConsumes,
  ApiForbiddenResponse,
  ApiHeader,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal, RequiresScope, StationAllowed } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { UploadedImage } from '../images/images.service.js';
import { BoothOptionsFormDto, LeaseFormDto, LeaseStateDto, OptionsStoredDto, ReviewDto, ReviewResultDto } from './booth.dto.js';
import { BoothLeaseService } from './booth-lease.service.js';
import { BoothReviewService } from './booth-review.service.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

/** What the review routes send so that a reviewer always sees the current files. */
function noCache(res: Response): void {
  res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
  res.setHeader('Pragma', 'no-cache');
  res.setHeader('Expires', '0');
}

/** A header value as the source sends it; anything outside printable ASCII is percent-encoded (UTF-8). */
function headerValue(v: string): string {
  return /^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
}

const LEASE_HEADER = { name: 'lease-id', required: false, description: 'The lease id (instead of the lease_id field)' };

/** The booth's job routes: external workers' leases and options, and the reviewer's options, original and decision. */
@ApiTags('jobs')
@Authenticated()
@Controller('jobs')
export class BoothJobsController {
  constructor(
    private readonly leases: BoothLeaseService,
    private readonly reviews: BoothReviewService,
  ) {}

  @Post('lease')
  @RequiresScope('booth-worker')
  @ApiOperation({
    summary: 'Lease the next booth job (external X-ray workers)',
    description:
      'For role booth-worker (an API key needs the booth-worker scope). 200: the original photo as the body, the metadata in headers ' +
      '(img_id = the job id, first_name, last_name, animal_name, animal_type, broken_bone; values outside printable ASCII are ' +
      'percent-encoded), lease-id and lease-expires. The lease lasts BOOTH_LEASE_SECONDS; renew it with heartbeat; an expired ' +
      'lease returns the job to the queue. 204 when nothing is waiting (always with BOOTH_PROCESSING=internal).',
  })
  @ApiProduces('image/jpeg', 'image/png', 'image/webp', 'image/bmp', 'image/tiff')
  @ApiOkResponse({ description: 'The photo of the leased job', schema: { type: 'string', format: 'binary' } })
  @ApiNoContentResponse({ description: 'No booth job is waiting' })
  @ApiForbiddenResponse({ type: ProblemDto, description: 'Not a booth worker, or an API key without the booth-worker scope' })
  async leaseJob(@CurrentPrincipal() p: Principal, @Res({ passthrough: true }) res: Response): Promise<StreamableFile | undefined> {
    const lease = await this.leases.lease(p);
    if (!lease) {
      res.status(HttpStatus.NO_CONTENT);
      return undefined;
    }
    const s = lease.submission;
    res.status(HttpStatus.OK);
    res.setHeader('img_id', lease.job.id);
    res.setHeader('first_name', headerValue(s.firstName));
    res.setHeader('last_name', headerValue(s.lastName));
    res.setHeader('animal_name', headerValue(s.animalName));
    res.setHeader('animal_type', headerValue(s.animalType));
    res.setHeader('broken_bone', String(s.brokenBone));
    res.setHeader('lease-id', lease.leaseId);
    res.setHeader('lease-expires', lease.expiresAt.toISOString());
    res.setHeader(
      'Access-Control-Expose-Headers',
      'img_id, first_name, last_name, animal_name, animal_type, broken_bone, lease-id, lease-expires',
    );
    noCache(res);
    return new StreamableFile(lease.content, { type: s.originalContentType });
  }

  @Post(':id/heartbeat')
  @RequiresScope('booth-worker')
  @HttpCode(200)
  @ApiHeader(LEASE_HEADER)
  @ApiOperation({
    summary: 'Extend a lease',
    description: 'Renews a live lease by BOOTH_LEASE_SECONDS. An expired or lost lease is a 409.',
  })
  @ApiOkResponse({ type: LeaseStateDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'No lease id' })
  @ApiForbiddenResponse({ type: ProblemDto, description: 'Not a booth worker, or an API key without the booth-worker scope' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such booth job' })
  @ApiConflictResponse({ type: ProblemDto, description: 'The lease expired or was taken over' })
  async heartbeatJob(
    @Param('id') id: string,
    @Body() body: LeaseFormDto,
    @Headers('lease-id') header: string | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<LeaseStateDto> {
    const leaseId = body.lease_id ?? header;
    const expires = await this.leases.heartbeat(id, leaseId, p);
    return { job_id: id, lease_id: leaseId!, lease_expires: expires.toISOString() };
  }

  @Post(':id/options')
  @RequiresScope('booth-worker')
  @HttpCode(200)
  @UseInterceptors(FilesInterceptor('files'))
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: BoothOptionsFormDto })
  @ApiHeader(LEASE_HEADER)
  @ApiOperation({
    summary: "Submit a leased job's result options",
    description:
      'Multipart files (1..BOOTH_RESULTS_PER_IMAGE images, checked by content) and the lease id: stores them as the options ' +
      'and completes the job. A lease that expired or was taken over is a 409 and stores nothing.',
  })
  @ApiOkResponse({ type: OptionsStoredDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'No lease id, no file or too many, or a file that is not an image' })
  @ApiForbiddenResponse({ type: ProblemDto, description: 'Not a booth worker, or an API key without the booth-worker scope' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such booth job' })
  @ApiConflictResponse({ type: ProblemDto, description: 'The lease expired or was taken over; nothing was stored' })
  @ApiPayloadTooLargeResponse({ type: ProblemDto, description: `A file larger than IMAGE_MAX_BYTES, or ${UPLOAD_413}` })
  async submitJobOptions(
    @Param('id') id: string,
    @Body() body: BoothOptionsFormDto,
    @Headers('lease-id') header: string | undefined,
    @UploadedFiles() files: UploadedImage[] | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<OptionsStoredDto> {
    const n = await this.leases.submitOptions(id, body.lease_id ?? header, files ?? [], p);
    return { status: 'success', job_id: id, options: n };
  }

  @Get(':id/options/:n')
  @StationAllowed()
  @ApiOperation({ summary: 'One result option of a booth job', description: 'Streamed with no-cache headers. n is 0-based.' })
  @ApiProduces('image/png', 'image/jpeg')
  @ApiOkResponse({ description: 'The option image', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such booth job of yours, or no option n' })
  async getJobOption(
    @Param('id') id: string,
    @Param('n') n: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const { artifact, content } = await this.reviews.option(id, n, p);
    noCache(res);
    return new StreamableFile(content, { type: artifact.contentType, length: artifact.sizeBytes });
  }

  @Get(':id/original')
  @StationAllowed()
  @ApiOperation({ summary: 'The submitted photo of a booth job', description: 'Streamed with no-cache headers.' })
  @ApiProduces('image/jpeg', 'image/png')
  @ApiOkResponse({ description: 'The photo', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such booth job of yours' })
  async getJobOriginal(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const { sub, content, size } = await this.reviews.original(id, p);
    noCache(res);
    return new StreamableFile(content, { type: sub.originalContentType, length: size });
  }

  @Post(':id/review')
  @HttpCode(200)
  @StationAllowed()
  @ApiOperation({
    summary: "Decide on a booth job's options",
    description:
      'confirm keeps option `choice` and adds the pair to the carousel (and the owner page); retry drops the options and ' +
      'queues the job again; cancel closes it (its QR code may be used again).',
  })
  @ApiOkResponse({ type: ReviewResultDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Unknown decision, or choice missing or out of range' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such booth job of yours' })
  @ApiConflictResponse({ type: ProblemDto, description: 'The job is not awaiting review' })
  reviewJob(@Param('id') id: string, @Body() dto: ReviewDto, @CurrentPrincipal() p: Principal): Promise<ReviewResultDto> {
    return this.reviews.decide(id, dto, p);
  }
}
