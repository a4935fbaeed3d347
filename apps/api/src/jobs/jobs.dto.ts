import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, IsUUID, Max, Min, MaxLength } from 'class-validator';
import { PageQueryDto } from '@aperture/common/pagination.js';
import { type Job, type JobArtifact, JOB_STATUSES, type JobStatus } from '@aperture/database/entities/job.entity.js';
import { ALL_JOB_TYPES, jobImageCount, type JobType } from '@aperture/queue/job-registry.js';

export class JobListQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: JOB_STATUSES })
  @IsOptional()
  @IsIn(JOB_STATUSES)
  status?: JobStatus;

  @ApiPropertyOptional({ enum: ALL_JOB_TYPES })
  @IsOptional()
  @IsIn(ALL_JOB_TYPES)
  type?: JobType;

  @ApiPropertyOptional({
    description: 'Jobs running this model (name or numeric id; a prediction task by its detector)',
    example: 'sam-tiny',
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model?: string;

  @ApiPropertyOptional({ description: 'Alias of model' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model_type?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'Jobs of one batch (a segmentation batch, a project start)' })
  @IsOptional()
  @IsUUID()
  batch_id?: string;

  @ApiPropertyOptional({ description: "Admins only: list every user's jobs", default: false })
  @IsOptional()
  @Transform(({ value }) => value === true || value === 'true' || value === '1')
  @IsBoolean()
  all?: boolean;
}

/** ?wait_ms= on a status or result route: answer as soon as the job is final, or after wait_ms (no polling needed). */
export class WaitQueryDto {
  @ApiPropertyOptional({
    description:
      'Wait up to this many ms for the job to finish (completed, failed or cancelled) before answering; 0 answers at once. The answer is ' +
      'the same shape either way: look at status.',
    default: 0,
    minimum: 0,
    maximum: 30000,
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(30000)
  wait_ms: number = 0;

  /**
   * What validation makes of a poll's query (none, or a plain wait_ms in range) without class-validator; anything
   * else (other fields, leading zeros, out of range) is left to it. See FastParsing.
   */
  static fastParse(value: unknown): WaitQueryDto | undefined {
    if (typeof value !== 'object' || value === null) return undefined;
    let n = 0;
    for (const key in value) {
      if (key !== 'wait_ms') return undefined;
      const raw = (value as { wait_ms: unknown }).wait_ms;
      if (typeof raw !== 'string' || !/^(0|[1-9]\d{0,4})$/.test(raw) || Number(raw) > 30000) return undefined;
      n = Number(raw);
    }
    const q = new WaitQueryDto();
    q.wait_ms = n;
    return q;
  }
}

export class ArtifactDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'qr.pdf' }) name!: string;
  @ApiProperty({ example: 'application/pdf' }) content_type!: string;
  @ApiProperty() size_bytes!: number;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/artifacts/5c1d…' }) url!: string;

  static from(a: JobArtifact, jobId: string): ArtifactDto {
    return { id: a.id, name: a.name, content_type: a.contentType, size_bytes: a.sizeBytes, url: `/api/v1/jobs/${jobId}/artifacts/${a.id}` };
  }
}

export class JobStatusDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: JOB_STATUSES, description: 'queued (pending), running (in progress), completed (done), failed, cancelled' })
  status!: JobStatus;
  @ApiProperty({ minimum: 0, maximum: 1, description: 'Fraction done, 0..1' }) progress!: number;
  @ApiProperty({ description: 'Images the job works on (1 for an image job, 0 for a QR batch)' }) total_images!: number;
  @ApiProperty({ description: 'Of those, the images done' }) processed_images!: number;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;

  static from(j: Pick<Job, 'id' | 'type' | 'status' | 'progress' | 'error'>): JobStatusDto {
    const total = jobImageCount(j.type);
    const processed = j.status === 'completed' ? total : Math.min(total, Math.floor(j.progress * total));
    return { id: j.id, status: j.status, progress: j.progress, total_images: total, processed_images: processed, error: j.error };
  }
}

/** In openapi.yaml, a oneOf by `type` with the result schema of each job type (job-result.schemas.ts). */
export class JobResultDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: JOB_STATUSES }) status!: JobStatus;
  @ApiProperty({ enum: ALL_JOB_TYPES, description: 'The job type, which tells the shape of result' }) type!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'Null until the job has completed' })
  result!: Record<string, unknown> | null;

  static from(j: Pick<Job, 'id' | 'type' | 'status' | 'result'>): JobResultDto {
    return { id: j.id, status: j.status, type: j.type, result: j.status === 'completed' ? j.result : null };
  }
}

/** In openapi.yaml, a oneOf by `type` with the result schema of each job type (job-result.schemas.ts). */
export class JobDto extends JobStatusDto {
  @ApiProperty({ enum: ALL_JOB_TYPES }) type!: string;
  @ApiProperty({ type: String, nullable: true, description: 'The model the job runs (a prediction task: its detector)' })
  model!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true, description: 'The batch the job belongs to' }) batch_id!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) owner_id!: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true }) params!: Record<string, unknown>;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true }) result!: Record<string, unknown> | null;
  @ApiProperty() attempts!: number;
  @ApiProperty() max_attempts!: number;
  @ApiProperty({ type: [ArtifactDto] }) artifacts!: ArtifactDto[];
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ format: 'date-time' }) queued_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) started_at!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) finished_at!: string | null;

  static override from(j: Job): JobDto {
    return {
      ...JobStatusDto.from(j),
      type: j.type,
      model: j.model,
      batch_id: j.batchId,
      owner_id: j.owner?.id ?? null,
      params: j.params,
      result: j.result,
      attempts: j.attempts,
      max_attempts: j.maxAttempts,
      artifacts: j.artifacts.isInitialized() ? j.artifacts.getItems().map((a) => ArtifactDto.from(a, j.id)) : [],
      created_at: j.createdAt.toISOString(),
      queued_at: j.queuedAt.toISOString(),
      started_at: j.startedAt?.toISOString() ?? null,
      finished_at: j.finishedAt?.toISOString() ?? null,
    };
  }
}
