import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, MaxLength, Min, MinLength } from 'class-validator';
import { ImageDto } from '../images/images.dto.js';

const PROJECT_STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED'] as const;
export type ProjectStatus = (typeof PROJECT_STATUSES)[number];

/** The older clients' `ai_model_id`: `model` by its integer id, on create and update alike. */
const AiModelIdAlias = (): PropertyDecorator =>
  applyDecorators(
    ApiPropertyOptional({
      type: 'integer',
      minimum: 1,
      deprecated: true,
      example: 1,
      description:
        'Older name of model: the model by the id GET /api/v1/models lists ' +
        '(stable; the models of manifest.json: their 1-based position); a detector or segmenter',
    }),
    IsOptional(),
    Type(() => Number),
    IsInt(),
    Min(1),
  );

export class ProjectCreateDto {
  @ApiProperty({ example: 'site 3', minLength: 1, maxLength: 200 })
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  name!: string;

  @ApiPropertyOptional({ example: 'Shelf photos of March', maxLength: 5000 })
  @IsOptional()
  @IsString()
  @MaxLength(5000)
  description?: string;

  @ApiPropertyOptional({
    description: 'Detector or segmenter by id or name (GET /models); default the first detector',
    example: 'primitives-obb',
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  model?: string;

  @AiModelIdAlias()
  ai_model_id?: number;
}

export class ProjectUpdateDto {
  @ApiPropertyOptional({ minLength: 1, maxLength: 200 })
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  name?: string;

  @ApiPropertyOptional({ maxLength: 5000 })
  @IsOptional()
  @IsString()
  @MaxLength(5000)
  description?: string;

  @ApiPropertyOptional({ description: 'Detector or segmenter by id or name; used by the next start' })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  model?: string;

  @AiModelIdAlias()
  ai_model_id?: number;
}

export class ProjectImageDto extends ImageDto {
  @ApiProperty({ description: 'A completed result exists for this image' }) has_result!: boolean;
}

const STATUS_DOC =
  "Derived from each image's latest processing job: PROCESSING while any is queued or running; else FAILED if any failed; else COMPLETED " +
  'when every image has a result; else PENDING (never started, or images added since).';

export class ProjectSummaryDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ example: 'primitives-obb', description: 'The chosen model (name)' }) model!: string;
  @ApiProperty({
    type: Number,
    nullable: true,
    example: 1,
    description: 'Its numeric id (ai_model_id in the project answers); null if the model is no longer installed',
  })
  model_id!: number | null;
  @ApiProperty({ format: 'uuid' }) owner_id!: string;
  @ApiProperty() owner_username!: string;
  @ApiProperty({ enum: PROJECT_STATUSES, description: STATUS_DOC }) status!: ProjectStatus;
  @ApiProperty({ description: 'Number of images' }) images_nr!: number;
  @ApiProperty({ description: 'Images with a completed result' }) images_with_result!: number;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ format: 'date-time' }) updated_at!: string;
}

export class ProjectDto extends ProjectSummaryDto {
  @ApiProperty({ type: [ProjectImageDto], description: 'Every image of the project, oldest first' }) images!: ProjectImageDto[];
}

export class ProjectStartDto {
  @ApiProperty({ type: String, format: 'uuid', nullable: true, description: 'Shared by the jobs queued now; null when nothing was queued' })
  batch_id!: string | null;
  @ApiProperty({ example: 'GOT IT, START PROCESSING' }) message!: string;
  @ApiProperty({ description: 'Images queued now' }) queued!: number;
  @ApiProperty({ type: [String], description: 'Their ids' }) image_ids!: string[];
  @ApiProperty({ description: 'Images left out because a job for them is already queued or running' }) skipped_in_flight!: number;
}

export class DetectionDto {
  @ApiProperty({ example: 'cube' }) class!: string;
  @ApiProperty({ example: 0.93 }) confidence!: number;
  @ApiProperty({ type: [Number], example: [12.5, 40, 180.25, 210], description: 'x1, y1, x2, y2 in original-image pixels' })
  bbox_xyxy_abs!: number[];
  @ApiPropertyOptional({
    type: 'array',
    items: { type: 'array', items: { type: 'number' } },
    description: 'Oriented-box models: the 4 corners [x, y] in pixels',
  })
  corners?: number[][];
  @ApiPropertyOptional({ description: 'Oriented-box models: rotation of the box in radians, [0, π)' }) angle?: number;
}

export class ResultSetDto {
  @ApiProperty({ format: 'uuid' }) image_id!: string;
  @ApiProperty() image_name!: string;
  @ApiProperty({ format: 'uuid', description: 'The job that produced it' }) job_id!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) batch_id!: string | null;
  @ApiProperty({ example: 'primitives-obb' }) model!: string;
  @ApiProperty({ type: [DetectionDto] }) detections!: DetectionDto[];
  @ApiProperty({ type: String, nullable: true, example: '/api/v1/jobs/0b7e…/artifacts/5c1d…', description: 'The annotated image' })
  result_image_url!: string | null;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) finished_at!: string | null;
}

/** A start's answer with Prefer: wait once every job it queued is final: the start, and the project's result sets. */
export class ProjectStartResultDto extends ProjectStartDto {
  @ApiProperty({
    type: [ResultSetDto],
    description:
      'The result sets of the project as GET /projects/{id}/results gives them, once every job queued is final (an image ' +
      'whose job failed has none, or its older one)',
  })
  results!: ResultSetDto[];
}
