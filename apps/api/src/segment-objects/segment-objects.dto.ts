import { ApiProperty, ApiPropertyOptional, OmitType } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { JsonField } from '@aperture/common/json-field.js';
import { COORD_MODES, type CoordMode } from '../segment/coords.js';
import { MAX_BOXES, MAX_POINTS, SegmentBoxDto, SegmentPointDto, toBool } from '../segment/segment.dto.js';
import { IntField, NumberField, SegmentAutoFormDto } from '../segment-auto/segment-auto.dto.js';

/** The source document's default: objects of fewer pixels are skipped. */
export const DEFAULT_MIN_PIXELS = 5000;
/** Holes and specks smaller than this are filled / removed when min_mask_region_area is not given. */
export const DEFAULT_CLEAN_AREA = 100;
export const MAX_FEATHER = 100;

/**
 * POST /segment/objects: the image and model as the other segment routes; the masks from the automatic mask generator
 * (its parameters, as POST /segment/auto) or from points and/or boxes (as POST /segment/points and /segment/box);
 * then what to keep and how to cut it out, and whether to upload the files to Google Drive.
 */
export class SegmentObjectsFormDto extends OmitType(SegmentAutoFormDto, ['output_mode'] as const) {
  @ApiPropertyOptional({
    type: String,
    description:
      `JSON array of at most ${MAX_POINTS} points {x, y, label?} (label 1 foreground, default; 0 background): the masks come from ` +
      'these prompts instead of the automatic generator. Without box: one object candidate for all points together.',
    example: '[{"x":0.5,"y":0.5}]',
  })
  @IsOptional()
  @JsonField(() => SegmentPointDto, { maxLength: 20000, maxItems: MAX_POINTS })
  points?: SegmentPointDto[];

  @ApiPropertyOptional({
    type: String,
    description:
      `JSON box {x, y, width, height} or {x1, y1, x2, y2}, or an array of at most ${MAX_BOXES}: one object candidate per box ` +
      '(with the points added to each)',
    example: '{"x":100,"y":80,"width":200,"height":180}',
  })
  @IsOptional()
  @JsonField(() => SegmentBoxDto, { maxLength: 10000, maxItems: MAX_BOXES, single: true })
  box?: SegmentBoxDto[];

  @ApiPropertyOptional({
    enum: COORD_MODES,
    default: 'auto',
    description: 'How the x and y of points and box are given: normalized ([0, 1]), pixels, or auto (every value ≤ 1 → normalized)',
  })
  @IsOptional()
  @IsIn(COORD_MODES)
  coords: CoordMode = 'auto';

  @IntField(
    'Holes and specks smaller than this (pixels) are filled / removed from every mask (0: none); the automatic generator also ' +
      'applies it as SAM does',
    DEFAULT_CLEAN_AREA,
    0,
    100_000_000,
  )
  override min_mask_region_area?: number;

  @IntField('Objects with fewer pixels (after cleaning) are skipped and counted in skipped', DEFAULT_MIN_PIXELS, 0, 100_000_000)
  min_pixels?: number;

  @NumberField(
    'Alpha feather radius in pixels: the object’s edge fades to transparent over this many pixels inside the mask (0: a hard edge)',
    0,
    0,
    MAX_FEATHER,
  )
  feather?: number;

  @ApiPropertyOptional({
    type: Boolean,
    default: false,
    description: 'Also upload every file to Google Drive (needs GOOGLE_DRIVE_ENABLED)',
  })
  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  save_to_drive: boolean = false;

  @ApiPropertyOptional({
    example: '1AbCdEfGhIjKlMnOpQrStUvWxYz012345',
    description: 'The Drive folder for save_to_drive; default DRIVE_FOLDER_ID',
  })
  @IsOptional()
  @IsString({ message: 'drive_folder_id must be a string' })
  @MaxLength(200, { message: 'drive_folder_id must be at most 200 characters' })
  @Matches(/^[A-Za-z0-9_-]+$/, { message: 'drive_folder_id must be a Drive id (letters, digits, - and _)' })
  drive_folder_id?: string;
}

export class SegmentObjectDto {
  @ApiProperty({ description: 'i of object_{i}.png and mask_{i}.png; objects are numbered largest first' }) index!: number;
  @ApiProperty({
    type: [Number],
    example: [10, 20, 99, 79],
    description: "[x, y, w, h] of the cleaned mask (SAM's convention: w = x1 − x0)",
  })
  bbox!: number[];
  @ApiProperty({ description: 'Pixels in the cleaned mask' }) area!: number;
  @ApiProperty({ description: 'Predicted IoU of the mask' }) score!: number;
  @ApiProperty({ type: Number, nullable: true, description: "The generator's stability score; null for prompted masks" })
  stability_score!: number | null;
  @ApiProperty({ type: [Number], example: [10, 20, 100, 80], description: '[x, y, width, height] of object_{i}.png in the image' })
  crop_box!: number[];
  @ApiProperty({ example: 'object_0.png' }) object_file!: string;
  @ApiProperty({ example: 'mask_0.png' }) mask_file!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/artifacts/5c1d…', description: 'The RGBA PNG: the tight crop, the mask as alpha' })
  object_url!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/artifacts/7a2e…', description: 'The cleaned mask at the image size (0 / 255)' })
  mask_url!: string;
}

export class DriveFileDto {
  @ApiProperty({ example: '0b7e…_object_0.png', description: 'The name on Drive: the job id, then the file name' }) name!: string;
  @ApiProperty({ example: '1Xy9…' }) file_id!: string;
  @ApiProperty({ example: 'https://drive.google.com/file/d/1Xy9…/view?usp=drivesdk' }) web_view!: string;
}

/** The job's result (GET /jobs/{id}/result), and with job_id the body of a synchronous 200. */
export class SegmentObjectsResultDto {
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ example: 'sam-tiny' }) model!: string;
  @ApiProperty() width!: number;
  @ApiProperty() height!: number;
  @ApiProperty({ enum: ['auto', 'prompts'], description: 'Where the masks came from' }) mode!: string;
  @ApiProperty({ type: [String], example: ['object_0.png', 'object_1.png'], description: 'The objects saved' }) saved!: string[];
  @ApiProperty({ description: 'Masks smaller than min_pixels (after cleaning), not saved' }) skipped!: number;
  @ApiProperty({ type: [SegmentObjectDto] }) objects!: SegmentObjectDto[];
  @ApiProperty({ type: [DriveFileDto], description: 'Every file uploaded to Drive (empty without save_to_drive)' })
  drive_files!: DriveFileDto[];
  @ApiProperty({ type: String, nullable: true, description: 'Why the Drive upload failed (the files are kept here); else null' })
  drive_error!: string | null;
  @ApiProperty({ description: 'overlay.png: the image with every object tinted' }) overlay_url!: string;
  @ApiProperty({ description: 'metadata.json: every object and the parameters' }) metadata_url!: string;
  @ApiProperty({ example: '/api/v1/jobs/0b7e…/visualization.svg' }) visualization_url!: string;
}
