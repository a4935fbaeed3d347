import { ApiProperty, ApiPropertyOptional, IntersectionType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsNumber, IsOptional, IsPositive, IsString, IsUUID, MaxLength, Min } from 'class-validator';
import { wrap } from '@mikro-orm/core';
import { PageQueryDto } from '@aperture/common/pagination.js';
import { IsThreshold } from '@aperture/common/thresholds.js';
import { type Job, JOB_STATUSES, type JobStatus } from '@aperture/database/entities/job.entity.js';
import { LENGTH_UNITS, type LengthUnit } from '@aperture/common/length-units.js';
import { ArtifactDto } from '../jobs/jobs.dto.js';

const TASK_TYPES = ['prediction', 'fragments'] as const;
export type TaskType = (typeof TASK_TYPES)[number];
export const JOB_TYPE_OF: Record<TaskType, 'task.predict' | 'task.fragments'> = { prediction: 'task.predict', fragments: 'task.fragments' };
export const TASK_TYPE_OF: Record<string, TaskType> = { 'task.predict': 'prediction', 'task.fragments': 'fragments' };

const STATUS_WORDS = 'queued (also called pending), running (in progress), completed (done), failed, cancelled';

/** The tunable parameters of a task; which apply depends on the type. Shared by create and rerun. */
export class TaskParamsDto {
  @ApiPropertyOptional({
    description: 'prediction: detection model by id or name (GET /models); default the first detector',
    example: 'primitives-obb',
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  detection_model?: string;

  @ApiPropertyOptional({
    description: 'prediction: scene classification model by id or name; default the first classifier',
    example: 'scene-gru',
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  classification_model?: string;

  @ApiPropertyOptional({
    description: 'fragments: segmentation model by id or name; default the first segmenter',
    example: 'fragments-seg',
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  model?: string;

  @ApiPropertyOptional({
    description: "fragments: the calibration ball's real radius, in unit; without it sizes stay in px",
    example: 20,
    minimum: 0,
    exclusiveMinimum: true,
  })
  @IsOptional()
  @Type(() => Number)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @IsPositive()
  real_radius?: number;

  @ApiPropertyOptional({
    enum: LENGTH_UNITS,
    description: 'fragments: unit of real_radius and of the sizes (px = uncalibrated)',
    default: 'mm',
  })
  @IsOptional()
  @IsIn(LENGTH_UNITS)
  unit?: LengthUnit;

  @IsThreshold({ description: 'Confidence threshold, strictly between 0 and 1', default: 0.25 })
  conf?: number;

  @IsThreshold({ description: 'NMS IoU threshold, strictly between 0 and 1', default: 0.7 })
  iou?: number;
}

const MODEL_IDS = 'the id GET /api/v1/models lists (stable; the models of manifest.json: their 1-based position)';

/**
 * The older task clients' model fields: integer ids. Accepted in the query string (where those clients send them) or in
 * the body; each names the same model as its canonical field would, and both given must agree.
 */
export class TaskModelIdsDto {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    deprecated: true,
    example: 1,
    description: `Older name of detection_model: the detection model by ${MODEL_IDS}`,
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  detection_model_id?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    deprecated: true,
    example: 2,
    description: `Older name of classification_model: the scene classification model by ${MODEL_IDS}`,
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  classification_model_id?: number;
}

export class TaskCreateFormDto extends IntersectionType(TaskParamsDto, TaskModelIdsDto) {
  @ApiPropertyOptional({
    enum: TASK_TYPES,
    default: 'prediction',
    description: 'prediction: primitives and scene; fragments: fragment sizes',
  })
  @IsOptional()
  @IsIn(TASK_TYPES)
  type?: TaskType;

  @ApiPropertyOptional({
    type: 'string',
    format: 'binary',
    description: 'The image to process (stored as one of your images); or give image_id',
  })
  @IsOptional()
  image?: unknown;

  @ApiPropertyOptional({
    type: 'string',
    format: 'binary',
    deprecated: true,
    description: 'Older name of the multipart field "image"; send one of them',
  })
  @IsOptional()
  file?: unknown;

  @ApiPropertyOptional({ format: 'uuid', description: 'One of your uploaded images, instead of a file' })
  @IsOptional()
  @IsUUID()
  image_id?: string;
}

export class TaskListQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: JOB_STATUSES, description: STATUS_WORDS })
  @IsOptional()
  @IsIn(JOB_STATUSES)
  status?: JobStatus;

  @ApiPropertyOptional({ enum: TASK_TYPES })
  @IsOptional()
  @IsIn(TASK_TYPES)
  type?: TaskType;
}

export class TaskAcceptedDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: TASK_TYPES }) type!: TaskType;
  @ApiProperty({ enum: JOB_STATUSES, example: 'queued' }) status!: JobStatus;
  @ApiProperty({ format: 'uuid' }) image_id!: string;
  @ApiProperty({ example: '/api/v1/tasks/0b7e…/status' }) status_url!: string;
  @ApiProperty({ example: '/api/v1/tasks/0b7e…/result' }) result_url!: string;
}

export class TaskStatusDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: JOB_STATUSES, description: STATUS_WORDS }) status!: JobStatus;
  @ApiProperty({ minimum: 0, maximum: 1 }) progress!: number;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
}

/** In openapi.yaml, a oneOf by `type`: PredictionResultDto or FragmentsResultDto (job-result.schemas.ts). */
export class TaskResultDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: JOB_STATUSES }) status!: JobStatus;
  @ApiProperty({ enum: TASK_TYPES, description: 'The task type, which tells the shape of result' }) type!: TaskType;
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    nullable: true,
    description: 'Null until completed; then PredictionResultDto or FragmentsResultDto, by type',
  })
  result!: Record<string, unknown> | null;

  static from(j: Job): TaskResultDto {
    return { id: j.id, status: j.status, type: TASK_TYPE_OF[j.type] ?? 'prediction', result: j.status === 'completed' ? j.result : null };
  }
}

export class TaskDeletedDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
}

/** In openapi.yaml, a oneOf by `type` with the task type's result schema (job-result.schemas.ts). */
export class TaskDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: TASK_TYPES }) type!: TaskType;
  @ApiProperty({ enum: JOB_STATUSES, description: STATUS_WORDS }) status!: JobStatus;
  @ApiProperty({ minimum: 0, maximum: 1 }) progress!: number;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true, description: 'Null once the image was deleted' }) image_id!: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'site-3.jpg', description: "The input's file name (input_path)" })
  input_path!: string | null;
  @ApiProperty({ example: '/api/v1/tasks/0b7e…/input' }) input_url!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'The parameters it ran with (models by name)' }) params!: Record<
    string,
    unknown
  >;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'Null until completed' }) result!: Record<
    string,
    unknown
  > | null;
  @ApiProperty({ type: [ArtifactDto], description: 'Files it produced; artifacts.zip holds exactly these' }) artifacts!: ArtifactDto[];
  @ApiProperty({ example: '/api/v1/tasks/0b7e…/artifacts.zip' }) artifacts_zip_url!: string;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) started_at!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) finished_at!: string | null;

  static from(j: Job): TaskDto {
    const p = j.params;
    const params: Record<string, unknown> =
      j.type === 'task.fragments'
        ? { model: p['model'], real_radius: p['realRadius'], unit: p['unit'], conf: p['conf'], iou: p['iou'] }
        : { detection_model: p['detectionModel'], classification_model: p['classificationModel'], conf: p['conf'], iou: p['iou'] };
    return {
      id: j.id,
      type: TASK_TYPE_OF[j.type] ?? 'prediction',
      status: j.status,
      progress: j.progress,
      error: j.error,
      image_id: j.image?.id ?? null,
      input_path: j.image && wrap(j.image).isInitialized() ? j.image.originalName : null,
      input_url: `/api/v1/tasks/${j.id}/input`,
      params,
      result: j.status === 'completed' ? j.result : null,
      artifacts: j.artifacts.isInitialized() ? j.artifacts.getItems().map((a) => ArtifactDto.from(a, j.id)) : [],
      artifacts_zip_url: `/api/v1/tasks/${j.id}/artifacts.zip`,
      created_at: j.createdAt.toISOString(),
      started_at: j.startedAt?.toISOString() ?? null,
      finished_at: j.finishedAt?.toISOString() ?? null,
    };
  }
}
