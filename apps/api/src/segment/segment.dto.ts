import { ApiProperty, ApiPropertyOptional, IntersectionType } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsNumber, IsOptional, IsString, IsUUID, MaxLength } from 'class-validator';
import { JsonField } from '@aperture/common/json-field.js';
import { SEGMENT_OUTPUTS, type SegmentOutput } from '@aperture/queue/job-registry.js';
import { COORD_MODES, type CoordMode } from './coords.js';

const IsFiniteNumber = (): PropertyDecorator => IsNumber({ allowNaN: false, allowInfinity: false });

export const MAX_POINTS = 64;
export const MAX_BOXES = 16;

export class SegmentPointDto {
  @IsFiniteNumber() x!: number;
  @IsFiniteNumber() y!: number;
  /** 1 = foreground (default), 0 = background. */
  @IsOptional() @IsIn([0, 1]) label?: 0 | 1;
}

export class SegmentBoxDto {
  @IsOptional() @IsFiniteNumber() x?: number;
  @IsOptional() @IsFiniteNumber() y?: number;
  @IsOptional() @IsFiniteNumber() width?: number;
  @IsOptional() @IsFiniteNumber() height?: number;
  @IsOptional() @IsFiniteNumber() x1?: number;
  @IsOptional() @IsFiniteNumber() y1?: number;
  @IsOptional() @IsFiniteNumber() x2?: number;
  @IsOptional() @IsFiniteNumber() y2?: number;
}

/** A multipart boolean: 'true'/'1' and 'false'/'0' (anything else is left for IsBoolean to refuse). */
export const toBool = ({ value }: { value: unknown }): unknown =>
  value === 'true' || value === '1' ? true : value === 'false' || value === '0' ? false : value;

/** How prompts are read and masks returned (the prompt routes, and batches). */
export class PromptOptionsDto {
  @ApiPropertyOptional({
    enum: COORD_MODES,
    default: 'auto',
    description: 'How x and y are given: normalized ([0, 1] of width/height), pixels, or auto (every value ≤ 1 → normalized)',
  })
  @IsOptional()
  @IsIn(COORD_MODES)
  coords: CoordMode = 'auto';

  @ApiPropertyOptional({
    type: Boolean,
    default: true,
    description: "true: the decoder's 3 multimask outputs per prompt, each with mask_index; false: the single best mask",
  })
  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  multimask_output: boolean = true;

  @ApiPropertyOptional({
    enum: SEGMENT_OUTPUTS,
    default: 'rle',
    description: 'rle: uncompressed column-major {size: [h, w], counts}; png: base64 PNG; coco_rle: pycocotools string counts',
  })
  @IsOptional()
  @IsIn(SEGMENT_OUTPUTS)
  output: SegmentOutput = 'rle';
}

/** The image (multipart "image" or image_id) and the SAM model: the fields of every single-image segmentation route. */
export class SamImageFieldsDto {
  /** Documents the multipart file for Swagger; multer takes it out of the body. */
  @ApiPropertyOptional({ type: 'string', format: 'binary', description: 'JPEG, PNG, WebP, BMP or TIFF (or send image_id)' })
  @IsOptional()
  image?: unknown;

  @ApiPropertyOptional({ format: 'uuid', description: 'One of your images instead of an upload' })
  @IsOptional()
  @IsUUID()
  image_id?: string;

  @ApiPropertyOptional({ description: 'A SAM model by name or id; default: the first SAM model of the manifest', example: 'sam-tiny' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model?: string;

  @ApiPropertyOptional({ description: 'Alias of model (as in segment-anything’s sam_model_registry)', example: 'sam-tiny' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model_type?: string;
}

/** What both prompt routes take besides the prompts. */
export class SegmentCommonFormDto extends IntersectionType(PromptOptionsDto, SamImageFieldsDto) {}

export class SegmentPointsFormDto extends SegmentCommonFormDto {
  @ApiProperty({
    type: String,
    description: `JSON array of at most ${MAX_POINTS} points {x, y, label?}: label 1 foreground (default), 0 background`,
    example: '[{"x":0.5,"y":0.5}]',
  })
  @JsonField(() => SegmentPointDto, { maxLength: 20000, maxItems: MAX_POINTS })
  points!: SegmentPointDto[];
}

export class SegmentBoxFormDto extends SegmentCommonFormDto {
  @ApiProperty({
    type: String,
    description: `JSON box {x, y, width, height} or {x1, y1, x2, y2}, or an array of at most ${MAX_BOXES}: one result per box`,
    example: '{"x":100,"y":80,"width":200,"height":180}',
  })
  @JsonField(() => SegmentBoxDto, { maxLength: 10000, maxItems: MAX_BOXES, single: true })
  box!: SegmentBoxDto[];

  @ApiPropertyOptional({
    type: String,
    description: `Optional JSON array of at most ${MAX_POINTS} points {x, y, label?} added to every box`,
    example: '[{"x":200,"y":170,"label":1}]',
  })
  @IsOptional()
  @JsonField(() => SegmentPointDto, { maxLength: 20000, maxItems: MAX_POINTS })
  points?: SegmentPointDto[];
}

export class SegmentMaskDto {
  @ApiProperty({ description: "The decoder's output token (1–3 multimask, 0 single)" }) mask_index!: number;
  @ApiProperty({ description: 'Predicted IoU' }) score!: number;
  @ApiProperty({ type: [Number], example: [10, 20, 100, 80], description: '[x, y, width, height]' }) bbox!: number[];
  @ApiProperty({ description: 'Pixels in the mask' }) area!: number;
  @ApiProperty({
    // RleMaskDto and CocoRleMaskDto are among the result schemas (jobs/job-result.schemas.ts).
    oneOf: [
      { $ref: '#/components/schemas/RleMaskDto' },
      { $ref: '#/components/schemas/CocoRleMaskDto' },
      { type: 'string', format: 'byte', description: 'output=png: a base64 PNG' },
    ],
    description: 'rle: {size: [h, w], counts: number[]}; coco_rle: {size: [h, w], counts: string}; png: base64 PNG',
  })
  mask!: Record<string, unknown> | string;
}

export class SegmentPromptResultDto {
  @ApiProperty({ description: 'Index of the prompt (box) in the request' }) prompt_index!: number;
  @ApiProperty({ type: [SegmentMaskDto] }) masks!: SegmentMaskDto[];
}

export class SegmentResponseDto {
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ example: 'sam-tiny' }) model!: string;
  @ApiProperty() width!: number;
  @ApiProperty() height!: number;
  @ApiProperty({ type: [SegmentPromptResultDto] }) results!: SegmentPromptResultDto[];
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/visualization.svg' }) visualization_url!: string;
}
