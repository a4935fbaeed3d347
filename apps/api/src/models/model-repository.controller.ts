import { Body, Controller, Delete, HttpCode, HttpStatus, Module, Param, Post, UploadedFiles, UseInterceptors } from '@nestjs/common';
import { FilesInterceptor } from '@nestjs/platform-express';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiConsumes,
  ApiCreatedResponse,
  ApiForbiddenResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiTags,
} from '@nestjs/swagger';
import { AdminOnly, Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { UploadedFile } from '../uploads/upload-files.js';
import { REQUEST_CAP_413 } from '../uploads/upload-files.js';
import { uploadMulter } from '../uploads/uploads.module.js';
import { ModelCatalogueService } from './model-catalogue.service.js';
import { ModelRepositoryService } from './model-repository.service.js';
import { ModelDetailDto, ModelInstallFormDto } from './models.dto.js';
import { ModelsModule } from './models.module.js';

/** Admin routes of the model repository: install a bring-your-own ONNX model, remove an installed one. */
@ApiTags('models')
@Authenticated()
@Controller('models')
export class ModelRepositoryController {
  constructor(
    private readonly repository: ModelRepositoryService,
    private readonly catalogue: ModelCatalogueService,
  ) {}

  @Post()
  @AdminOnly()
  @UseInterceptors(FilesInterceptor('file', 2))
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: ModelInstallFormDto })
  @ApiOperation({
    summary: 'Install a model (admins)',
    description:
      'One ONNX file, or the encoder and decoder of an official Segment Anything export, plus an optional model.json ' +
      '(`config`). An unmodified Ultralytics export (detect, segment, obb, classify) or SAM pair needs no config: kind, ' +
      'classes and input size are read from the ONNX metadata_props and tensor names. The graph is checked against its ' +
      'contract; the files are stored, recorded and every worker can run the model at once. Files are streamed to disk ' +
      '(at most MODEL_UPLOAD_MAX_MB each).',
  })
  @ApiCreatedResponse({ type: ModelDetailDto })
  @ApiBadRequestResponse({
    type: ProblemDto,
    description:
      'Not an ONNX model (e.g. truncated), a graph that does not fit its contract (the detail names the tensor), or a bad config field',
  })
  @ApiForbiddenResponse({ type: ProblemDto, description: 'Admins only' })
  @ApiConflictResponse({ type: ProblemDto, description: 'A shipped or installed model has that name' })
  @ApiPayloadTooLargeResponse({ type: ProblemDto, description: `A file larger than MODEL_UPLOAD_MAX_MB, or ${REQUEST_CAP_413}` })
  async install(
    @UploadedFiles() files: UploadedFile[] | undefined,
    @Body() form: ModelInstallFormDto,
    @CurrentPrincipal() p: Principal,
  ): Promise<ModelDetailDto> {
    const entry = await this.repository.install(files ?? [], form, p);
    return this.catalogue.detail(entry.name);
  }

  @Delete(':name')
  @AdminOnly()
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOperation({
    summary: 'Delete an installed model (admins)',
    description: 'Removes its files and record; every worker unloads it. Shipped models cannot be deleted.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'A shipped model (manifest.json or a MODELS_DIR folder): it cannot be deleted' })
  @ApiForbiddenResponse({ type: ProblemDto, description: 'Admins only' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Model {name} does not exist.' })
  @ApiConflictResponse({ type: ProblemDto, description: 'Queued or running jobs use the model' })
  async remove(@Param('name') name: string): Promise<void> {
    await this.repository.remove(name);
  }
}

/** The model repository's routes, with their own upload limits (MODEL_UPLOAD_MAX_MB per file, no user quota). */
@Module({
  imports: [
    ModelsModule,
    uploadMulter({ files: 2, fields: 5, fieldSize: 64 * 1024, quota: false, fileSize: (c) => c.models.uploadMaxBytes }),
  ],
  controllers: [ModelRepositoryController],
})
export class ModelRepositoryModule {}
