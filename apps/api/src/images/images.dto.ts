import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, IsUUID, MaxLength, MinLength } from 'class-validator';
import { PageQueryDto } from '@aperture/common/pagination.js';
import type { Image } from '@aperture/database/entities/image.entity.js';
import { IMAGE_FORMATS } from '@aperture/imaging/inspect.js';

export class ImageDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'site-3.jpg', description: 'The file name sent at upload (display only)' }) name!: string;
  @ApiProperty({ enum: IMAGE_FORMATS, description: 'What the content is, whatever the name says' }) format!: string;
  @ApiProperty({ example: 'image/jpeg' }) content_type!: string;
  @ApiProperty() size_bytes!: number;
  @ApiProperty({ description: 'After EXIF orientation' }) width!: number;
  @ApiProperty({ description: 'After EXIF orientation' }) height!: number;
  @ApiProperty({ description: 'Hex SHA-256 of the bytes (also the ETag of the content)' }) sha256!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) project_id!: string | null;
  @ApiProperty({ example: '/api/v1/images/0b7e…/content' }) content_url!: string;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ format: 'date-time' }) updated_at!: string;

  static from(i: Image): ImageDto {
    return {
      id: i.id,
      name: i.originalName,
      format: i.format,
      content_type: i.mime,
      size_bytes: i.sizeBytes,
      width: i.width,
      height: i.height,
      sha256: i.sha256,
      project_id: i.project?.id ?? null,
      content_url: `/api/v1/images/${i.id}/content`,
      created_at: i.createdAt.toISOString(),
      updated_at: i.updatedAt.toISOString(),
    };
  }
}

export class BadImageDto {
  @ApiProperty({ example: 'notes.jpg' }) name!: string;
  @ApiProperty({ example: 'The file is not an image Aperture can read (unsupported image format); send JPEG, PNG, WebP, BMP or TIFF.' })
  reason!: string;
}

/** The upload answer: the stored images, and the files refused with why. */
export class ImageUploadReportDto {
  @ApiProperty({ type: [ImageDto], description: 'The images stored' }) data!: ImageDto[];
  @ApiProperty({ description: 'True when at least one file was refused' }) error!: boolean;
  @ApiProperty({ example: '1 of 3 files were not stored', description: 'Empty when every file was stored' }) error_msg!: string;
  @ApiProperty({ type: [BadImageDto] }) bad_images!: BadImageDto[];
}

export class ImageUploadFormDto {
  @ApiPropertyOptional({
    type: 'array',
    items: { type: 'string', format: 'binary' },
    description: 'One or more image files (JPEG, PNG, WebP, BMP, TIFF); the field may also be named "image" (or "file")',
  })
  @IsOptional()
  images?: unknown;

  @ApiPropertyOptional({
    type: 'string',
    format: 'binary',
    deprecated: true,
    description: 'Older name for one file (the field earlier upload clients send); stored like one of images',
  })
  @IsOptional()
  file?: unknown;
}

export class ImageListQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'Only the images of this project' })
  @IsOptional()
  @IsUUID()
  project_id?: string;
}

export class ImageExistsQueryDto {
  @ApiProperty({ example: 'site-3.jpg', description: 'File name as sent at upload' })
  @IsString()
  @MinLength(1)
  @MaxLength(255)
  name!: string;
}

/** The answer to "does this image exist already?" (checked before uploading again). */
export class ImageExistsDto {
  @ApiProperty() exists!: boolean;
  @ApiProperty({ example: 'Image already exists on the server.' }) message!: string;
  @ApiProperty({ type: ImageDto, nullable: true, description: 'The newest of your images with that name' }) metadata!: ImageDto | null;
}
