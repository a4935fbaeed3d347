import { Module } from '@nestjs/common';
import { manifestProviders } from '@aperture/models/manifest.provider.js';
import { ModelsController } from './models.controller.js';
import { ModelCatalogueService } from './model-catalogue.service.js';
import { ModelControlService } from './model-control.service.js';
import { ModelInferenceService } from './model-inference.service.js';
import { ModelFilesService } from './model-files.service.js';
import { ModelRepositoryService } from './model-repository.service.js';
import { uploadMulter } from '../uploads/uploads.module.js';

/**
 * Model listing, detail, statistics (the catalogue), admin load/unload relayed to the workers (the control service)
 * and direct inference jobs (the intake). The API never opens a model. Uploads are streamed to temporary files: the
 * intake validates and stores them under a generated key.
 */
@Module({
  imports: [uploadMulter({ files: 1, fields: 10 })],
  controllers: [ModelsController],
  providers: [
    ...manifestProviders,
    ModelCatalogueService,
    ModelControlService,
    ModelInferenceService,
    ModelFilesService,
    ModelRepositoryService,
  ],
  exports: [ModelCatalogueService, ModelRepositoryService],
})
export class ModelsModule {}
