import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';

export class DriveStatusDto {
  @ApiProperty({ description: 'GOOGLE_DRIVE_ENABLED' }) enabled!: boolean;
  @ApiProperty({ description: "Google accepted the service account's credentials (a fresh token exchange)" }) authenticated!: boolean;
  @ApiProperty({ description: 'DRIVE_FOLDER_ID exists, is a folder and is shared with the service account' }) folder_access!: boolean;
}

export class DriveUploadFormDto {
  @ApiProperty({ type: 'string', format: 'binary', description: 'The file; its name and content type are kept on Drive' })
  @IsOptional()
  file?: unknown;

  @ApiPropertyOptional({ example: '1AbCdEfGhIjKlMnOpQrStUvWxYz012345', description: 'Target folder; default DRIVE_FOLDER_ID' })
  @IsOptional()
  @IsString({ message: 'folder_id must be a string' })
  @MaxLength(200, { message: 'folder_id must be at most 200 characters' })
  @Matches(/^[A-Za-z0-9_-]+$/, { message: 'folder_id must be a Drive id (letters, digits, - and _)' })
  folder_id?: string;
}

export class DriveUploadDto {
  @ApiProperty({ example: '1Xy9…', description: 'The Drive file id' }) file_id!: string;
  @ApiProperty({ example: 'https://drive.google.com/file/d/1Xy9…/view?usp=drivesdk', description: "The file's page in Drive" })
  web_view!: string;
}
