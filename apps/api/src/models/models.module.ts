import { Module } from '@nestjs/common';
import { MulterModule } from '@nestjs/platform-express';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { manifestProviders } from '@aperture/models/manifest.provider.js';
import { ModelsController } from './models.controller.js';
import { ModelCatalogueService } from './model-catalogue.service.js';
import { ModelControlService } from './model-control.service.js';
import { ModelInferenceService } from './model-inference.service.js';
import { ModelFilesService } from './model-files.service.js';

/**
 * Model listing, detail, statistics (the catalogue), admin load/unload relayed to the workers (the control service)
 * and direct inference jobs (the intake). The API never opens a model. Uploads stay in memory (no dest): the intake
 * validates and stores them under a generated key.
 */
@Module({
  imports: [
    MulterModule.registerAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({ limits: { fileSize: c.images.maxBytes, files: 1, fields: 10, fieldSize: 16 * 1024 } }),
    }),
  ],
  controllers: [ModelsController],
  providers: [...manifestProviders, ModelCatalogueService, ModelControlService, ModelInferenceService, ModelFilesService],
  exports: [ModelCatalogueService],
})
export class ModelsModule {}
