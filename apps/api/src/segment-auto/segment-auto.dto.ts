import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, IntersectionType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsNumber, IsOptional, Max, Min, ValidateBy } from 'class-validator';
import { SamImageFieldsDto } from '../segment/segment.dto.js';

export const OUTPUT_MODES = ['binary_mask', 'uncompressed_rle', 'coco_rle'] as const;

/** An optional integer form field in [min, max] (max omitted: unbounded). */
export function IntField(description: string, def: number, min: number, max?: number): PropertyDecorator {
  const decorators = [
    ApiPropertyOptional({ type: 'integer', description, default: def, minimum: min, ...(max === undefined ? {} : { maximum: max }) }),
    IsOptional(),
    Type(() => Number),
    IsInt(),
    Min(min),
  ];
  if (max !== undefined) decorators.push(Max(max));
  return applyDecorators(...decorators);
}

/** An optional number form field in [min, max], or [min, max) with `openMax`. */
export function NumberField(description: string, def: number, min: number, max?: number, openMax = false): PropertyDecorator {
  const decorators = [
    ApiPropertyOptional({
      type: 'number',
      description,
      default: def,
      minimum: min,
      ...(max === undefined ? {} : { maximum: max, exclusiveMaximum: openMax }),
    }),
    IsOptional(),
    Type(() => Number),
    IsNumber({ allowNaN: false, allowInfinity: false }),
    Min(min),
  ];
  if (max !== undefined && !openMax) decorators.push(Max(max));
  if (max !== undefined && openMax) {
    decorators.push(
      ValidateBy({
        name: 'isBelow',
        validator: {
          validate: (v: unknown) => typeof v === 'number' && v < max,
          defaultMessage: (a) => `${a?.property} must be less than ${max}`,
        },
      }),
    );
  }
  return applyDecorators(...decorators);
}

/** Every parameter of SamAutomaticMaskGenerator with its name and default (POST /segment/auto, and batches). */
export class AutoMaskOptionsDto {
  @IntField('Grid points along one side of the image (points_per_side² clicks on the first crop layer)', 32, 1, 128)
  points_per_side?: number;

  @IntField(
    'Grid points per decoder run when the model’s decoder takes a prompt batch (sam-tiny’s does); ' +
      'a batch-1 decoder runs once per point and this only sets the progress steps',
    64,
    1,
    1024,
  )
  points_per_batch?: number;

  @NumberField('Keep masks whose predicted IoU is above this', 0.88, 0, 1)
  pred_iou_thresh?: number;

  @NumberField('Keep masks whose stability score is at least this', 0.95, 0, 1)
  stability_score_thresh?: number;

  @NumberField('Logit offset of the stability score', 1.0, 0, 1000)
  stability_score_offset?: number;

  @NumberField('Box IoU above which duplicate masks are suppressed', 0.7, 0, 1)
  box_nms_thresh?: number;

  @IntField('Layers of crops (layer i has (2^i)² crops)', 0, 0, 3)
  crop_n_layers?: number;

  @NumberField('Box IoU above which duplicates across crops are suppressed', 0.7, 0, 1)
  crop_nms_thresh?: number;

  @NumberField('Overlap of neighbouring crops, as a fraction of the short side', 512 / 1500, 0, 1, true)
  crop_overlap_ratio?: number;

  @IntField('Points per side are divided by factor^layer on crop layer layer', 1, 1, 128)
  crop_n_points_downscale_factor?: number;

  @IntField('With > 0, holes and islands smaller than this (pixels) are removed', 0, 0, 100_000_000)
  min_mask_region_area?: number;

  @ApiPropertyOptional({
    enum: OUTPUT_MODES,
    default: 'binary_mask',
    description: 'Segmentation format; binary_mask is returned as uncompressed RLE (JSON holds no bitmaps)',
  })
  @IsOptional()
  @IsIn(OUTPUT_MODES)
  output_mode?: (typeof OUTPUT_MODES)[number];
}

/** POST /segment/auto: the image (multipart "image" or image_id), the SAM model and the generator's parameters. */
export class SegmentAutoFormDto extends IntersectionType(AutoMaskOptionsDto, SamImageFieldsDto) {}

export class SegmentationRleDto {
  @ApiProperty({ type: [Number], example: [480, 640], description: '[height, width]' }) size!: [number, number];
  @ApiProperty({
    oneOf: [{ type: 'array', items: { type: 'integer' } }, { type: 'string' }],
    description: 'Uncompressed COCO RLE (column-major runs, zeros first) or the compressed COCO string (coco_rle)',
  })
  counts!: number[] | string;
}

export class SegmentAutoMaskDto {
  @ApiProperty({ type: SegmentationRleDto }) segmentation!: SegmentationRleDto;
  @ApiProperty({ description: 'Pixels in the mask' }) area!: number;
  @ApiProperty({ type: [Number], description: 'XYWH of the mask (w = x1 − x0 of the inclusive box)', example: [10, 20, 30, 40] })
  bbox!: [number, number, number, number];
  @ApiProperty() predicted_iou!: number;
  @ApiProperty({ type: 'array', items: { type: 'array', items: { type: 'number' } }, example: [[320, 240]] })
  point_coords!: [[number, number]];
  @ApiProperty() stability_score!: number;
  @ApiProperty({ type: [Number], description: 'XYWH of the crop the mask came from' }) crop_box!: [number, number, number, number];
}

export class SegmentAutoTimingsDto {
  @ApiProperty() decode!: number;
  @ApiProperty({ description: 'Image encoder runs (0 when the embedding was cached)' }) encode!: number;
  @ApiProperty({ description: 'Decoder runs: one per points_per_batch grid points with a batch decoder, else one per point' })
  decoder!: number;
  @ApiProperty({ description: 'The generator’s filtering, RLE and NMS' }) postprocess!: number;
  @ApiProperty() total!: number;
}

/** The job's result (GET /jobs/{id}/result), and with job_id the body of a synchronous 200. */
export class SegmentAutoResultDto {
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ example: 'sam-tiny' }) model!: string;
  @ApiProperty() width!: number;
  @ApiProperty() height!: number;
  @ApiProperty({ enum: OUTPUT_MODES }) output_mode!: string;
  @ApiProperty({ enum: ['uncompressed_rle', 'coco_rle'] }) segmentation_format!: string;
  @ApiProperty() count!: number;
  @ApiProperty({ type: [SegmentAutoMaskDto] }) masks!: SegmentAutoMaskDto[];
  @ApiProperty({ type: SegmentAutoTimingsDto }) timings_ms!: SegmentAutoTimingsDto;
}
