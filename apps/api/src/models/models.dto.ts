import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsNumber, IsOptional, IsString, Max, Min, ValidateBy, type ValidationArguments } from 'class-validator';
import { JsonField } from '@aperture/common/json-field.js';
import { IsThreshold } from '@aperture/common/thresholds.js';
import { MODEL_KINDS, type ModelKind } from '@aperture/models/manifest.js';
import type { WorkerDoc, WorkerModelState } from '@aperture/models/model-control.js';
import type { EmbeddingCacheStats, ModelStats, PhaseStats } from '@aperture/models/model-status.js';
import { roundTo } from '@aperture/common/round.js';

const MODEL_STATES = ['available', 'loading', 'loaded', 'failed'] as const;

const MB = 1024 * 1024;

export class ModelListQueryDto {
  @ApiPropertyOptional({ enum: MODEL_KINDS })
  @IsOptional()
  @IsIn(MODEL_KINDS)
  kind?: ModelKind;
}

export class ModelControlQueryDto {
  @ApiPropertyOptional({
    description: 'How long to wait for every worker to finish (ms); 0 answers at once with 202.',
    default: 10000,
    minimum: 0,
    maximum: 60000,
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(60000)
  wait_ms: number = 10000;
}

export class ModelWorkerStateDto {
  @ApiProperty({ example: 'worker-1-4242-a1b2c3' }) worker_id!: string;
  @ApiProperty({ enum: MODEL_STATES }) state!: string;
  @ApiProperty({ type: String, nullable: true, description: 'Why it failed (or why its last reload failed)' }) reason!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) loaded_at!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) last_used_at!: string | null;
  @ApiProperty({ description: 'Estimated memory of its sessions on this worker (MB)' }) memory_mb!: number;
  @ApiProperty({ description: 'Resident memory of the whole worker process when it last reported (MB)' }) rss_mb!: number;
  @ApiProperty({ type: String, nullable: true, example: 'cpu' }) execution_provider!: string | null;

  /** One worker's view of one model (available when the worker does not report it). */
  static from(d: WorkerDoc, s: WorkerModelState | undefined): ModelWorkerStateDto {
    return {
      worker_id: d.worker_id,
      state: s?.state ?? 'available',
      reason: s?.reason ?? null,
      loaded_at: s?.loaded_at ?? null,
      last_used_at: s?.last_used_at ?? null,
      memory_mb: roundTo((s?.memory_bytes ?? 0) / MB, 3),
      rss_mb: roundTo(d.rss_bytes / MB, 3),
      execution_provider: s?.execution_provider ?? null,
    };
  }
}

export class TensorSpecDto {
  @ApiProperty({ example: 'images' }) name!: string;
  @ApiProperty({ example: 'float32' }) dtype!: string;
  @ApiProperty({
    type: 'array',
    items: { oneOf: [{ type: 'integer' }, { type: 'string' }] },
    example: [1, 3, 320, 320],
    description: 'Symbolic dims are strings',
  })
  shape!: (number | string)[];
}

export class ModelFileDto {
  @ApiProperty({ enum: ['model', 'encoder', 'decoder'] }) role!: string;
  @ApiProperty({ example: 'primitives-obb.onnx' }) path!: string;
  @ApiProperty() sha256!: string;
  @ApiProperty() size_bytes!: number;
  @ApiProperty({ type: [TensorSpecDto] }) inputs!: TensorSpecDto[];
  @ApiProperty({ type: [TensorSpecDto] }) outputs!: TensorSpecDto[];
  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' }, description: 'The ONNX metadata_props' })
  metadata!: Record<string, string>;
}

export class ModelFileDigestDto {
  @ApiProperty({ enum: ['model', 'encoder', 'decoder'] }) role!: string;
  @ApiProperty({ example: '49621544877cebee4fcdd57f4d648a2b94861b9aa1517ed365d680f51c9e1397' }) sha256!: string;
  @ApiProperty() size_bytes!: number;
}

export class ModelSummaryDto {
  @ApiProperty({
    example: 1,
    description:
      'Numeric id, stable across installs and removals: the models of manifest.json by 1-based position, folder models ' +
      '1000-999999 (from the name), installed models from 1000000; tasks and projects accept it or the name',
  })
  id!: number;
  @ApiProperty({ example: 'primitives-obb' }) name!: string;
  @ApiProperty({ enum: MODEL_KINDS }) kind!: string;
  @ApiProperty({ example: 'obb' }) task!: string;
  @ApiProperty({ example: 'ultralytics-obb' }) contract!: string;
  @ApiProperty({ example: '1.0.0' }) version!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ example: 2.4 }) size_mb!: number;
  @ApiProperty({ type: [String], nullable: true }) labels!: string[] | null;
  @ApiProperty({
    type: [Number],
    nullable: true,
    example: [320, 320],
    description: '[height, width], or null when the model takes any size',
  })
  input_size!: [number, number] | null;
  @ApiProperty({
    enum: MODEL_STATES,
    description: 'loaded when every live worker has it loaded; failed or loading when any worker is; else available',
  })
  state!: string;
  @ApiProperty({ description: 'Estimated memory of its sessions, all workers together (MB)' }) memory_mb!: number;
  @ApiProperty({ type: [ModelWorkerStateDto] }) workers!: ModelWorkerStateDto[];
  @ApiProperty({
    enum: ['shipped', 'installed'],
    description: 'shipped: comes with MODELS_DIR (manifest.json or a model folder), cannot be deleted; installed: POST /models',
  })
  source!: 'shipped' | 'installed';
  @ApiProperty({ type: [ModelFileDigestDto], description: "Each file's role, sha256 and size" })
  file_digests!: ModelFileDigestDto[];
}

export class ModelDetailDto extends ModelSummaryDto {
  @ApiProperty({ type: [ModelFileDto] }) files!: ModelFileDto[];
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'How inputs are prepared' }) preprocess!: Record<string, unknown>;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'Held-out metrics (models/eval.json)' })
  metrics!: Record<string, unknown>;
}

export class PhaseStatsDto {
  @ApiProperty() count!: number;
  @ApiProperty({ description: 'Cumulative milliseconds' }) total_ms!: number;
  @ApiProperty({ description: 'total_ms / count (0 when count is 0)' }) mean_ms!: number;

  static from(p: PhaseStats): PhaseStatsDto {
    return { count: p.count, total_ms: roundTo(p.total_ms, 3), mean_ms: p.count ? roundTo(p.total_ms / p.count, 3) : 0 };
  }
}

export class EmbeddingCacheStatsDto {
  @ApiProperty({ description: 'Prompts whose image embedding came from the cache (no encoder run)' }) hits!: number;
  @ApiProperty({ description: 'Prompts that ran the image encoder (every prompt while the cache is disabled)' }) misses!: number;
  @ApiProperty({ description: 'Embeddings dropped to stay within SAM_EMBEDDING_CACHE_MB' }) evictions!: number;
  @ApiProperty({ description: 'Embeddings of this model held now' }) entries!: number;
  @ApiProperty({ description: 'Bytes those embeddings hold now' }) bytes!: number;

  static from(c: EmbeddingCacheStats): EmbeddingCacheStatsDto {
    return { hits: c.hits, misses: c.misses, evictions: c.evictions, entries: c.entries, bytes: c.bytes };
  }
}

export class ModelStatsDto {
  @ApiProperty({ description: 'Inference requests finished (successes and failures)' }) inference_count!: number;
  @ApiProperty({ type: PhaseStatsDto, description: 'Successful requests and their total time' }) success!: PhaseStatsDto;
  @ApiProperty({ type: PhaseStatsDto, description: 'Failed runs' }) failure!: PhaseStatsDto;
  @ApiProperty({ type: PhaseStatsDto, description: 'Time from enqueue to start' }) queue!: PhaseStatsDto;
  @ApiProperty({ type: PhaseStatsDto, description: 'Decoding and pre-processing' }) preprocess!: PhaseStatsDto;
  @ApiProperty({ type: PhaseStatsDto, description: 'session.run' }) compute!: PhaseStatsDto;
  @ApiProperty({ type: PhaseStatsDto, description: 'Post-processing' }) postprocess!: PhaseStatsDto;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) last_inference_at!: string | null;
  @ApiProperty({
    type: EmbeddingCacheStatsDto,
    nullable: true,
    description: "SAM models: the workers' image-embedding cache (SAM_EMBEDDING_CACHE_MB); null for other kinds",
  })
  embedding_cache!: EmbeddingCacheStatsDto | null;

  static from(s: ModelStats): ModelStatsDto {
    return {
      inference_count: s.inference_count,
      success: PhaseStatsDto.from(s.success),
      failure: PhaseStatsDto.from(s.failure),
      queue: PhaseStatsDto.from(s.queue),
      preprocess: PhaseStatsDto.from(s.preprocess),
      compute: PhaseStatsDto.from(s.compute),
      postprocess: PhaseStatsDto.from(s.postprocess),
      last_inference_at: s.last_inference_at,
      embedding_cache: s.embedding_cache ? EmbeddingCacheStatsDto.from(s.embedding_cache) : null,
    };
  }
}

export class WorkerModelStatsDto {
  @ApiProperty() worker_id!: string;
  @ApiProperty({ type: ModelStatsDto }) stats!: ModelStatsDto;
}

export class ModelStatsResponseDto {
  @ApiProperty() name!: string;
  @ApiProperty({ type: ModelStatsDto, description: 'All live workers together' }) total!: ModelStatsDto;
  @ApiProperty({ type: [WorkerModelStatsDto] }) workers!: WorkerModelStatsDto[];
}

export class ModelControlWorkerDto extends ModelWorkerStateDto {
  @ApiProperty({ description: 'Whether this worker finished the request' }) done!: boolean;
  @ApiProperty({ description: 'Whether it succeeded (false until done)' }) ok!: boolean;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
}

export class ModelControlResponseDto {
  @ApiProperty() name!: string;
  @ApiProperty({ enum: ['load', 'unload'] }) op!: string;
  @ApiProperty({ format: 'uuid' }) request_id!: string;
  @ApiProperty({ description: 'Every worker that was live when asked has finished' }) settled!: boolean;
  @ApiProperty({ type: [ModelControlWorkerDto] }) workers!: ModelControlWorkerDto[];
}

/** A number that is finite (no NaN, no Infinity). */
const IsFiniteNumber = (): PropertyDecorator => IsNumber({ allowNaN: false, allowInfinity: false });

/** Greater than another numeric property of the same object (a box's far corner). */
function IsAbove(other: string): PropertyDecorator {
  return ValidateBy({
    name: 'isAbove',
    constraints: [other],
    validator: {
      validate: (v: unknown, a?: ValidationArguments) => {
        const o = (a?.object as Record<string, unknown> | undefined)?.[other];
        return typeof v === 'number' && typeof o === 'number' && v > o;
      },
      defaultMessage: (a?: ValidationArguments) => `${a?.property ?? 'value'} must be greater than ${other}`,
    },
  });
}

/** A SAM click in original-image pixels. */
export class SamPointDto {
  @IsFiniteNumber() x!: number;
  @IsFiniteNumber() y!: number;
  /** 1 = object, 0 = background. */
  @IsIn([0, 1]) label!: 0 | 1;
}

/** A SAM box in original-image pixels. */
export class SamBoxDto {
  @IsFiniteNumber() x1!: number;
  @IsFiniteNumber() y1!: number;
  @IsFiniteNumber() @IsAbove('x1') x2!: number;
  @IsFiniteNumber() @IsAbove('y1') y2!: number;
}

export class ModelInferFormDto {
  /** Documents the multipart file for Swagger; multer takes it out of the body (the service checks it is there). */
  @ApiProperty({ type: 'string', format: 'binary', description: 'JPEG, PNG, WebP, BMP or TIFF' })
  @IsOptional()
  image?: unknown;
  @IsThreshold({ description: 'Detectors/segmenters: confidence threshold, strictly between 0 and 1', example: 0.25 })
  conf?: number;

  @IsThreshold({ description: 'Detectors/segmenters: NMS IoU threshold, strictly between 0 and 1', example: 0.7 })
  iou?: number;

  @ApiPropertyOptional({ description: 'Detectors/segmenters: most detections kept', minimum: 1, maximum: 3000, example: 300 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(3000)
  max_det?: number;

  @ApiPropertyOptional({
    type: String,
    description: 'SAM: JSON array of at most 64 clicks {x, y, label} in image pixels, label 1 = object, 0 = background',
    example: '[{"x":320,"y":240,"label":1}]',
  })
  @IsOptional()
  @JsonField(() => SamPointDto, { maxLength: 10000, maxItems: 64 })
  points?: SamPointDto[];

  @ApiPropertyOptional({
    type: String,
    description: 'SAM: JSON box {x1, y1, x2, y2} in image pixels, x2 > x1 and y2 > y1',
    example: '{"x1":100,"y1":80,"x2":300,"y2":260}',
  })
  @IsOptional()
  @JsonField(() => SamBoxDto, { maxLength: 1000 })
  box?: SamBoxDto;
}

export class ModelInferAcceptedDto {
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ example: 'queued' }) status!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…' }) job_url!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/result' }) result_url!: string;
}

/** POST /models: one ONNX file (two for a Segment Anything encoder/decoder pair) and an optional model.json. */
export class ModelInstallFormDto {
  @ApiProperty({
    type: 'array',
    items: { type: 'string', format: 'binary' },
    description: 'The ONNX file, or the encoder and decoder of a Segment Anything export (send the field twice)',
  })
  @IsOptional()
  file?: unknown;
  @ApiPropertyOptional({
    example: 'yolo11n-traffic',
    description: "The model's name (1-63 of a-z, 0-9, -); default: config's name, else the file name",
  })
  @IsOptional()
  @IsString()
  name?: string;
  @ApiPropertyOptional({
    example: '{"labels": ["car", "truck"], "input_size": 640}',
    description:
      'model.json as a JSON string: name, kind, contract, description, version, labels, input_size, preprocess ' +
      '(all optional; an Ultralytics or official Segment Anything export needs none)',
  })
  @IsOptional()
  @IsString()
  config?: string;
}
