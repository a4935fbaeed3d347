import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsNotEmpty, IsOptional, IsString, IsUUID, Matches, MaxLength, Min } from 'class-validator';
import { BOOTH_NAME_MAX } from '@aperture/database/entities/booth.entity.js';

const trim = ({ value }: { value: unknown }): unknown => (typeof value === 'string' ? value.trim() : value);
const toBool = ({ value }: { value: unknown }): unknown =>
  value === 'true' || value === '1' || value === 'on' ? true : value === 'false' || value === '0' || value === '' ? false : value;
/** No control characters: the names travel in headers to external workers and into file metadata. */
const PRINTABLE = /^[^\p{Cc}]*$/u;

function NameField(label: string): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    ApiProperty({ maxLength: BOOTH_NAME_MAX, description: `${label} (trimmed, 1-${BOOTH_NAME_MAX} characters)`, example: 'Alice' })(
      target,
      key,
    );
    Transform(trim)(target, key);
    IsString({ message: `${String(key)} must be a string` })(target, key);
    IsNotEmpty({ message: `${String(key)} must not be empty` })(target, key);
    MaxLength(BOOTH_NAME_MAX, { message: `${String(key)} must be at most ${BOOTH_NAME_MAX} characters` })(target, key);
    Matches(PRINTABLE, { message: `${String(key)} must not contain control characters` })(target, key);
  };
}

/** POST /booth/submissions (multipart): the photo and what the booth asks about the owner and the animal. */
export class BoothSubmissionFormDto {
  @ApiProperty({ type: 'string', format: 'binary', description: 'The photo: JPEG, PNG, WebP, BMP or TIFF (checked by content)' })
  @IsOptional()
  file?: unknown;

  @NameField("The owner's first name") first_name!: string;
  @NameField("The owner's last name") last_name!: string;
  @NameField("The animal's name") animal_name!: string;

  @ApiProperty({ description: 'A code from one of your QR batches (the code itself, or the URL its QR symbol encodes)', maxLength: 600 })
  @Transform(trim)
  @IsString()
  @IsNotEmpty({ message: 'qr_content must not be empty' })
  @MaxLength(600)
  qr_content!: string;

  @ApiPropertyOptional({ default: 'other', description: 'One of GET /api/v1/animal-types', example: 'dog' })
  @IsOptional()
  @Transform(({ value }) => (typeof value === 'string' ? value.trim().toLowerCase() : value))
  @IsString()
  @MaxLength(32)
  animal_type: string = 'other';

  @ApiPropertyOptional({ type: Boolean, default: false })
  @IsOptional()
  @Transform(toBool)
  @IsBoolean({ message: 'broken_bone must be true or false' })
  broken_bone: boolean = false;
}

export class BoothSubmissionDto {
  @ApiProperty({ example: 'success' }) status!: 'success';
  @ApiProperty({ format: 'uuid' }) submission_id!: string;
  @ApiProperty({ format: 'uuid', description: 'The job that makes the result options' }) job_id!: string;
  @ApiProperty({ description: 'Queued or running submissions ahead of this one' }) current_jobs!: number;
}

export class AnimalTypesDto {
  @ApiProperty({ type: [String], example: ['dog', 'cat', 'horse', 'other'] }) types!: string[];
}

export class LeaseFormDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'The lease id (or the lease-id header)' })
  @IsOptional()
  @IsUUID('all', { message: 'lease_id must be the lease-id of your lease' })
  lease_id?: string;
}

export class BoothOptionsFormDto extends LeaseFormDto {
  @ApiProperty({
    type: 'array',
    items: { type: 'string', format: 'binary' },
    description: 'The result options, 1..BOOTH_RESULTS_PER_IMAGE images',
  })
  @IsOptional()
  files?: unknown;
}

export class LeaseStateDto {
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ format: 'uuid' }) lease_id!: string;
  @ApiProperty({ format: 'date-time' }) lease_expires!: string;
}

export class OptionsStoredDto {
  @ApiProperty({ example: 'success' }) status!: 'success';
  @ApiProperty({ format: 'uuid' }) job_id!: string;
  @ApiProperty({ description: 'Options stored' }) options!: number;
}

export const REVIEW_DECISIONS = ['confirm', 'retry', 'cancel'] as const;
export type ReviewDecision = (typeof REVIEW_DECISIONS)[number];

export class ReviewDto {
  @ApiProperty({ enum: REVIEW_DECISIONS, description: 'confirm the chosen option, retry (new options), or cancel' })
  @IsIn(REVIEW_DECISIONS, { message: `decision must be one of ${REVIEW_DECISIONS.join(', ')}` })
  decision!: ReviewDecision;

  @ApiPropertyOptional({ minimum: 0, description: 'The option to keep (0-based); required to confirm' })
  @IsOptional()
  @IsInt({ message: 'choice must be an integer' })
  @Min(0, { message: 'choice must be 0 or more' })
  choice?: number;
}

export class ReviewResultDto {
  @ApiProperty({ example: 'success' }) status!: 'success';
  @ApiProperty({ enum: ['confirmed', 'queued', 'cancelled'], description: 'What became of the submission' }) state!: string;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'The carousel index of the confirmed pair (0 = newest)' })
  carousel_index!: number | null;
}

export class ReviewMetadataDto {
  @ApiProperty({ format: 'uuid' }) submission_id!: string;
  @ApiProperty() first_name!: string;
  @ApiProperty() last_name!: string;
  @ApiProperty() animal_name!: string;
  @ApiProperty() animal_type!: string;
  @ApiProperty() broken_bone!: boolean;
  @ApiProperty({ format: 'date-time' }) submitted_at!: string;
}

/** The source's results shape, keyed by job id, plus the page. */
export class ReviewListDto {
  @ApiProperty({ type: 'object', additionalProperties: { $ref: '#/components/schemas/ReviewMetadataDto' } })
  metadata!: Record<string, ReviewMetadataDto>;

  @ApiProperty({ type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } }, description: 'Option URLs per job' })
  results!: Record<string, string[]>;

  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' }, description: 'Original photo URL per job' })
  originals!: Record<string, string>;

  @ApiProperty({ description: 'BOOTH_RESULTS_PER_IMAGE' }) results_per_image!: number;
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() page_size!: number;
  @ApiProperty() total_pages!: number;
}

export class OwnerResultDto {
  @ApiProperty() animal_name!: string;
  @ApiProperty() animal_type!: string;
  @ApiProperty() first_name!: string;
  @ApiProperty({ format: 'date-time' }) confirmed_at!: string;
  @ApiProperty({ example: '/api/v1/booth/results/{qr}/xray.png' }) xray_url!: string;
  @ApiProperty({ example: '/api/v1/booth/results/{qr}/original.png' }) original_url!: string;
  @ApiProperty({ example: '/api/v1/booth/results/{qr}?download=1' }) download_url!: string;
}

export class OwnerResultQueryDto {
  @ApiPropertyOptional({ enum: ['0', '1'], description: '1: the pair as a ZIP (xray.png, original.png)' })
  @IsOptional()
  @IsIn(['0', '1'], { message: 'download must be 0 or 1' })
  download?: '0' | '1';
}
