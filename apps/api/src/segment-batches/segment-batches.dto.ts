import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, type ApiPropertyOptions, IntersectionType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsIn, IsOptional, IsString, MaxLength, ValidateNested } from 'class-validator';
import { JsonField } from '@aperture/common/json-field.js';
import { JOB_STATUSES, type JobStatus } from '@aperture/database/entities/job.entity.js';
import { AutoMaskOptionsDto } from '../segment-auto/segment-auto.dto.js';
import { MAX_BOXES, MAX_POINTS, PromptOptionsDto, SegmentBoxDto, SegmentPointDto } from '../segment/segment.dto.js';

/** Most images one batch may hold. */
export const MAX_BATCH_IMAGES = 50;

/** auto: every image segmented automatically; prompt: every image needs prompts; omitted: per image, by its prompts. */
export const BATCH_MODES = ['auto', 'prompt'] as const;
export type BatchMode = (typeof BATCH_MODES)[number];

export const BATCH_STATUSES = ['queued', 'running', 'completed', 'failed', 'partial'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

const POINT_SCHEMA = {
  type: 'object',
  required: ['x', 'y'],
  properties: { x: { type: 'number' }, y: { type: 'number' }, label: { type: 'integer', enum: [0, 1], default: 1 } },
};
const BOX_SCHEMA = {
  type: 'object',
  description: '{x, y, width, height} or {x1, y1, x2, y2}',
  properties: Object.fromEntries(['x', 'y', 'width', 'height', 'x1', 'y1', 'x2', 'y2'].map((k) => [k, { type: 'number' }])),
};

const PER_IMAGE =
  'one list per image, in the order of images (null or a missing list: no prompts for that image). Coordinates are read ' +
  'as the coords parameter says, against each image’s own size.';

/** The parameters every image of a batch shares: the prompt options and SamAutomaticMaskGenerator's parameters. */
export class SegmentBatchParametersDto extends IntersectionType(PromptOptionsDto, AutoMaskOptionsDto) {}

/** What both forms of a batch carry besides the images: the model, the mode and the per-image prompts. */
export class SegmentBatchPromptsDto {
  @ApiPropertyOptional({ description: 'A SAM model by name or id; default: the first SAM model of the manifest', example: 'sam-tiny' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model?: string;

  @ApiPropertyOptional({ description: 'Alias of model', example: 'sam-tiny' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model_type?: string;

  @ApiPropertyOptional({
    enum: BATCH_MODES,
    description:
      'auto: every image through the automatic mask generator (no prompts allowed); prompt: every image needs points or boxes; ' +
      'omitted: an image with prompts runs as segment.prompt, one without as segment.auto',
  })
  @IsOptional()
  @IsIn(BATCH_MODES)
  mode?: BatchMode;
}

/** Per image, a list of points (a JSON field in a form, an array in a JSON body). */
const PointLists = (doc: ApiPropertyOptions): PropertyDecorator =>
  applyDecorators(
    ApiPropertyOptional(doc),
    IsOptional(),
    JsonField(() => SegmentPointDto, { maxLength: 500_000, maxItems: MAX_POINTS, lists: MAX_BATCH_IMAGES }),
  );

/** Per image, a list of boxes (or one box). */
const BoxLists = (doc: ApiPropertyOptions): PropertyDecorator =>
  applyDecorators(
    ApiPropertyOptional(doc),
    IsOptional(),
    JsonField(() => SegmentBoxDto, { maxLength: 200_000, maxItems: MAX_BOXES, single: true, lists: MAX_BATCH_IMAGES }),
  );

/** POST /segment/batches as multipart: the files, the per-image prompts as JSON fields, the shared parameters as fields. */
export class SegmentBatchFormDto extends IntersectionType(SegmentBatchPromptsDto, SegmentBatchParametersDto) {
  @ApiProperty({
    type: 'array',
    items: { type: 'string', format: 'binary' },
    description: `1 to ${MAX_BATCH_IMAGES} image files (JPEG, PNG, WebP, BMP or TIFF), one job each`,
  })
  @IsOptional()
  images?: unknown;

  @PointLists({
    type: String,
    description: `JSON array of point lists {x, y, label?}, at most ${MAX_POINTS} a list: ${PER_IMAGE}`,
    example: '[[{"x":0.5,"y":0.5}],[{"x":120,"y":80,"label":1}]]',
  })
  points?: SegmentPointDto[][];

  @BoxLists({
    type: String,
    description: `JSON array of box lists (or one box per image), at most ${MAX_BOXES} a list: ${PER_IMAGE}`,
    example: '[null,[{"x1":10,"y1":10,"x2":200,"y2":150}]]',
  })
  boxes?: SegmentBoxDto[][];
}

/** POST /segment/batches as JSON: base64 images, the per-image prompts and the shared parameters. */
export class SegmentBatchJsonDto extends SegmentBatchPromptsDto {
  @ApiProperty({
    type: [String],
    maxItems: MAX_BATCH_IMAGES,
    description: `1 to ${MAX_BATCH_IMAGES} base64-encoded image files (a data: URL prefix is allowed), one job each`,
  })
  @IsArray()
  @ArrayMaxSize(MAX_BATCH_IMAGES)
  @IsString({ each: true })
  images!: string[];

  @ApiPropertyOptional({ type: [String], description: 'A file name per image, for the listing (default image-{index})' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(MAX_BATCH_IMAGES)
  @IsString({ each: true })
  @MaxLength(255, { each: true })
  names?: string[];

  @PointLists({ type: 'array', items: { type: 'array', items: POINT_SCHEMA }, description: `Point lists: ${PER_IMAGE}` })
  points?: SegmentPointDto[][];

  @BoxLists({ type: 'array', items: { type: 'array', items: BOX_SCHEMA }, description: `Box lists: ${PER_IMAGE}` })
  boxes?: SegmentBoxDto[][];

  @ApiPropertyOptional({
    type: SegmentBatchParametersDto,
    description: 'Shared by every image: coords, multimask_output, output, and the automatic generator’s parameters',
  })
  @IsOptional()
  @ValidateNested()
  @Type(() => SegmentBatchParametersDto)
  parameters?: SegmentBatchParametersDto;
}

export class BatchJobDto {
  @ApiProperty({ description: 'Position of the image in the request' }) index!: number;
  @ApiProperty({ example: 'shapes.png' }) file_name!: string;
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ enum: ['segment.prompt', 'segment.auto'] }) type!: string;
  @ApiProperty({ enum: JOB_STATUSES, description: 'A job deleted since is reported as cancelled' }) status!: JobStatus;
  @ApiProperty({ minimum: 0, maximum: 1 }) progress!: number;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
  @ApiProperty({ type: Number, nullable: true, description: 'Masks found, once completed' }) total_masks!: number | null;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/status' }) status_url!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/result' }) result_url!: string;
}

export class BatchSummaryDto {
  @ApiProperty({ format: 'uuid' }) batch_id!: string;
  @ApiProperty({ format: 'uuid', description: 'The same id (the name older clients use)' }) batch_job_id!: string;
  @ApiProperty({ example: '/api/v1/segment/batches/0b7e…' }) url!: string;
  @ApiProperty({ example: 'sam-tiny' }) model!: string;
  @ApiProperty({
    enum: BATCH_STATUSES,
    description:
      'queued: no job started; running: some job queued or running; completed: every job completed; failed: none completed; ' +
      'partial: some completed, some failed or cancelled',
  })
  status!: BatchStatus;
  @ApiProperty({ minimum: 0, maximum: 1, description: 'Mean progress of the jobs' }) progress!: number;
  @ApiProperty() total_images!: number;
  @ApiProperty() completed_images!: number;
  @ApiProperty({ description: 'Images whose job failed or was cancelled (or deleted)' }) failed_images!: number;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ format: 'date-time', description: 'The latest change of any of its jobs' }) updated_at!: string;
}

export class BatchDto extends BatchSummaryDto {
  @ApiProperty({ type: [BatchJobDto] }) jobs!: BatchJobDto[];
}
