import { readFile } from 'node:fs/promises';
import { Body, Controller, Get, HttpCode, HttpStatus, Post, UploadedFile, UseInterceptors } from '@nestjs/common';
import { FileInterceptor } from '@nestjs/platform-express';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConsumes,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { AdminOnly, Authenticated } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { badRequest, ProblemException } from '@aperture/common/problem.js';
import { DriveError, DriveStorage } from '@aperture/storage/drive.storage.js';
import { DriveStatusDto, DriveUploadDto, DriveUploadFormDto } from './drive.dto.js';
import { type UploadedFile as UploadedDriveFile, REQUEST_CAP_413 } from '../uploads/upload-files.js';

/** Every DriveError (disabled, refused credentials, no folder access, Drive down) is 503 DRIVE_ERROR with its message. */
async function mapDriveErrors<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof DriveError) throw new ProblemException(503, 'DRIVE_ERROR', e.message);
    throw e;
  }
}

/** The multipart file name as the client meant it (busboy reads it as latin1), without path or control characters. */
function fileName(raw: string): string {
  const utf8 = Buffer.from(raw, 'latin1').toString('utf8');
  const name = (utf8.includes('\uFFFD') ? raw : utf8).split(/[\\/]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const clean = name.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return clean.slice(0, 255) || 'upload';
}

@ApiTags('storage')
@Authenticated()
@Controller('storage/drive')
export class DriveController {
  constructor(private readonly drive: DriveStorage) {}

  @Get('status')
  @ApiOperation({
    summary: 'Google Drive status',
    description:
      'Whether Drive is enabled, whether Google accepts the service account (a fresh token exchange) and whether DRIVE_FOLDER_ID is ' +
      'a folder the account can see. Disabled answers 200 with everything false.',
  })
  @ApiOkResponse({ type: DriveStatusDto })
  @ApiServiceUnavailableResponse({ type: ProblemDto, description: 'DRIVE_ERROR: Google is unreachable or failing' })
  async driveStatus(): Promise<DriveStatusDto> {
    return mapDriveErrors(() => this.drive.status());
  }

  @Post('upload')
  @HttpCode(HttpStatus.CREATED)
  @AdminOnly()
  @UseInterceptors(FileInterceptor('file'))
  @ApiOperation({
    summary: 'Upload a file to Google Drive (admins)',
    description:
      'Multipart `file` (up to IMAGE_MAX_BYTES) and optional `folder_id` (default DRIVE_FOLDER_ID). The service account uploads it, ' +
      'keeping the file name and content type.',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: DriveUploadFormDto })
  @ApiCreatedResponse({ type: DriveUploadDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'No file, or folder_id is not a Drive id' })
  @ApiPayloadTooLargeResponse({ type: ProblemDto, description: `The file is larger than IMAGE_MAX_BYTES, or ${REQUEST_CAP_413}` })
  @ApiServiceUnavailableResponse({
    type: ProblemDto,
    description: 'DRIVE_ERROR: Drive is disabled, the credentials are refused, the folder is not shared with the account, or Drive is down',
  })
  async driveUpload(@UploadedFile() file: UploadedDriveFile | undefined, @Body() form: DriveUploadFormDto): Promise<DriveUploadDto> {
    if (!file) {
      throw badRequest('Send the file as the multipart field "file".', { errors: [{ field: 'file', messages: ['a file is required'] }] });
    }
    // The bytes are read before the upload starts: the Drive client may retry (and read its body again) after this
    // request has answered and its temporary file is gone. A file here is at most IMAGE_MAX_BYTES, and admins only.
    const content = await readFile(file.path);
    return mapDriveErrors(() =>
      this.drive.upload(fileName(file.originalname), file.mimetype || 'application/octet-stream', content, form.folder_id),
    );
  }
}
