import {
  type ArgumentsHost,
  BadRequestException,
  Body,
  Catch,
  Controller,
  Get,
  Param,
  Post,
  Query,
  Req,
  UploadedFiles,
  UseFilters,
  UseInterceptors,
} from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import {
  ApiBadRequestResponse,
  ApiExtraModels,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ApiPageResponse, type Page, PageQueryDto, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { badRequest } from '@aperture/common/problem.js';
import { ProblemDetailsFilter } from '@aperture/common/problem.filter.js';
import { createValidationPipe } from '@aperture/common/validation.js';
import type { UploadedImage } from '../images/images.service.js';
import { BatchDto, BatchSummaryDto, MAX_BATCH_IMAGES, SegmentBatchFormDto, SegmentBatchJsonDto } from './segment-batches.dto.js';
import { SegmentBatchesService, tooMany } from './segment-batches.service.js';
import { JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

/** Multer's refusals of a batch's files, in words: too many images, or files under another field name. */
@Catch(BadRequestException)
class BatchFilesFilter extends ProblemDetailsFilter {
  override catch(e: BadRequestException, host: ArgumentsHost): void {
    const cause = e.cause as { code?: string; field?: string } | undefined;
    if (cause?.code === 'LIMIT_FILE_COUNT' || (cause?.code === 'LIMIT_UNEXPECTED_FILE' && cause.field === 'images')) {
      return super.catch(tooMany(), host);
    }
    if (cause?.code === 'LIMIT_UNEXPECTED_FILE') {
      const detail = `Unexpected file field "${cause.field ?? ''}": send the images as the multipart field "images".`;
      return super.catch(badRequest(detail, { errors: [{ field: cause.field ?? 'images', messages: ['unexpected file field'] }] }), host);
    }
    return super.catch(e, host);
  }
}

const DESCRIPTION =
  'Many images in one request, one job per image under one batch id: an image with points or boxes runs as segment.prompt ' +
  '(as POST /segment/points and /segment/box), one without as segment.auto (as POST /segment/auto) with the shared generator ' +
  'parameters. Two forms: multipart/form-data with the files as "images" and the other fields as form fields (points and ' +
  'boxes as JSON), or application/json with base64 "images", per-image "points"/"boxes" and the shared "parameters". ' +
  `At most ${MAX_BATCH_IMAGES} images. Every image and prompt is checked first: one bad image is a 400 naming its index, ` +
  'and nothing is stored. Follow the batch at GET /segment/batches/{id}, each job at its status_url.';

const validation = createValidationPipe();

@ApiTags('segment')
@Authenticated()
@Controller('segment/batches')
export class SegmentBatchesController {
  constructor(private readonly batches: SegmentBatchesService) {}

  @Post()
  @UseInterceptors(FileFieldsInterceptor([{ name: 'images', maxCount: MAX_BATCH_IMAGES }]))
  @UseFilters(BatchFilesFilter)
  @ApiExtraModels(SegmentBatchFormDto, SegmentBatchJsonDto)
  @ApiOperation({
    summary: 'Segment a batch of images',
    description: DESCRIPTION,
    requestBody: {
      required: true,
      content: {
        'multipart/form-data': { schema: { $ref: getSchemaPath(SegmentBatchFormDto) } },
        'application/json': { schema: { $ref: getSchemaPath(SegmentBatchJsonDto) } },
      },
    },
  })
  @JobCreatingRoute({
    accepted: BatchDto,
    acceptedDescription: 'Queued (or not all final within Prefer: wait): the batch, its URL and one job per image',
    result: BatchDto,
    resultDescription:
      'every job of the batch is final: the batch as GET /segment/batches/{id} gives it (its status says whether all completed)',
  })
  @ApiBadRequestResponse({
    type: ProblemDto,
    description:
      `More than ${MAX_BATCH_IMAGES} images, malformed base64, a file that is not an image (IMAGE_VALIDATION_ERROR), malformed ` +
      'points or boxes, a prompt outside its image, a bad generator parameter or a model that is not SAM; the detail names the image',
  })
  @ApiPayloadTooLargeResponse({
    type: ProblemDto,
    description: `An image larger than IMAGE_MAX_BYTES, a JSON body over BATCH_JSON_BODY_LIMIT, or ${UPLOAD_413}`,
  })
  async createBatch(
    @Req() req: Request,
    @Body() body: unknown,
    @UploadedFiles() files: { images?: UploadedImage[] } | undefined,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<BatchDto, BatchDto>> {
    const request = req.is('multipart/form-data')
      ? this.batches.fromForm(await validate(SegmentBatchFormDto, body), files?.images ?? [])
      : this.batches.fromJson(await validate(SegmentBatchJsonDto, body ?? {}));
    const { batch, jobs } = await this.batches.create(request, p);
    return new JobAnswer(
      await this.batches.find(batch.id, p),
      jobs.map((j) => j.id),
      () => this.batches.find(batch.id, p),
    );
  }

  @Get()
  @ApiOperation({ summary: 'List your batches', description: 'Newest first, each with its status and counts.' })
  @ApiPageResponse(BatchSummaryDto)
  async listBatches(@Query() q: PageQueryDto, @CurrentPrincipal() p: Principal): Promise<Page<BatchSummaryDto>> {
    const [items, total] = await this.batches.list(p, q);
    return toPage(items, total, q);
  }

  @Get(':id')
  @ApiOperation({
    summary: 'A batch: status, counts and its jobs',
    description:
      'status is derived from the jobs: queued (none started), running, completed (all completed), failed (none completed) or ' +
      'partial (some completed, some failed). Each job has its index in the request, file name, status and URLs.',
  })
  @ApiOkResponse({ type: BatchDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Batch with id {id} does not exist.' })
  getBatch(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<BatchDto> {
    return this.batches.find(id, p);
  }
}

/** The global pipe's checks, on the class the request's form calls for. */
async function validate<T extends object>(cls: new () => T, body: unknown): Promise<T> {
  return (await validation.transform(body, { type: 'body', metatype: cls })) as T;
}
