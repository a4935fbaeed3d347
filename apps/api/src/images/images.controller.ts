import { Controller, Delete, Get, HttpCode, Param, Post, Query, Req, Res, StreamableFile, UploadedFiles } from '@nestjs/common';
import {
  ApiHeader,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiResponse,
  ApiTags,
  ApiConflictResponse,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ApiPageResponse, type Page, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { ImageDto, ImageExistsDto, ImageExistsQueryDto, ImageListQueryDto, type ImageUploadReportDto } from './images.dto.js';
import { ImagesService } from './images.service.js';
import { ImageContent } from './image-content.js';
import { ImageUpload, type UploadedFields, uploadedFiles, uploadReport } from './upload.js';

@ApiTags('images')
@Authenticated()
@Controller('images')
export class ImagesController {
  constructor(
    private readonly images: ImagesService,
    private readonly content: ImageContent,
  ) {}

  @Post()
  @ImageUpload('your image')
  @ApiOperation({
    summary: 'Upload images',
    description:
      'One or many files; each is validated by its content (JPEG, PNG, WebP, BMP, TIFF; IMAGE_MAX_BYTES, IMAGE_MAX_SIDE per side).',
  })
  async uploadImages(
    @UploadedFiles() fields: UploadedFields,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ImageUploadReportDto> {
    const files = uploadedFiles(fields);
    return uploadReport(await this.images.store(files, p.userId), files.length, res);
  }

  @Get()
  @ApiOperation({ summary: 'List your images', description: 'Newest first.' })
  @ApiPageResponse(ImageDto)
  async listImages(@Query() q: ImageListQueryDto, @CurrentPrincipal() p: Principal): Promise<Page<ImageDto>> {
    const [items, total] = await this.images.list(p, q);
    return toPage(
      items.map((i) => ImageDto.from(i)),
      total,
      q,
    );
  }

  @Get('exists')
  @ApiOperation({
    summary: 'Is an image with this name uploaded?',
    description: 'The check before uploading again; metadata is your newest image of that name.',
  })
  @ApiOkResponse({ type: ImageExistsDto })
  async imageExists(@Query() q: ImageExistsQueryDto, @CurrentPrincipal() p: Principal): Promise<ImageExistsDto> {
    const image = await this.images.findByName(q.name, p);
    return image
      ? { exists: true, message: 'Image already exists on the server.', metadata: ImageDto.from(image) }
      : { exists: false, message: 'Image does not exist on the server.', metadata: null };
  }

  @Get(':id')
  @ApiOperation({ summary: 'Image metadata' })
  @ApiOkResponse({ type: ImageDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' })
  async getImage(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<ImageDto> {
    return ImageDto.from(await this.images.findOwn(id, p));
  }

  @Get(':id/content')
  @ApiOperation({
    summary: 'Image file',
    description: 'The bytes as uploaded, with their MIME type; ETag is the SHA-256, so If-None-Match answers 304.',
  })
  @ApiProduces('image/jpeg', 'image/png', 'image/webp', 'image/bmp', 'image/tiff')
  @ApiHeader({ name: 'If-None-Match', required: false })
  @ApiOkResponse({ description: 'The image', schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 304, description: 'Not modified' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' })
  async getImageContent(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile | undefined> {
    return this.content.send(await this.images.findOwn(id, p), req, res);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete an image',
    description:
      'Removes the file and its project results. Refused (409) while a queued or running job needs it. Finished tasks keep their ' +
      'results; their input route then answers 404.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' })
  @ApiConflictResponse({ type: ProblemDto, description: 'A queued or running job still needs the image (listed in jobs)' })
  async deleteImage(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<void> {
    await this.images.delete(await this.images.findOwn(id, p));
  }
}
