import { Module } from '@nestjs/common';
import { MulterModule } from '@nestjs/platform-express';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { ImageContent } from './image-content.js';
import { ImagesController } from './images.controller.js';
import { ImagesService } from './images.service.js';
import { MAX_FILES_PER_UPLOAD } from './upload.js';

/**
 * Multer settings of every image upload: memory storage, IMAGE_MAX_BYTES per file, refused past the limit while streaming.
 * A route that takes more files or longer fields (a batch) passes its own counts.
 */
export const imageMulter = (limits: { files?: number; fields?: number; fieldSize?: number } = {}) =>
  MulterModule.registerAsync({
    inject: [APP_CONFIG],
    useFactory: (c: AppConfig) => ({
      limits: {
        fileSize: c.images.maxBytes,
        files: limits.files ?? MAX_FILES_PER_UPLOAD + 1,
        fields: limits.fields ?? 20,
        fieldSize: limits.fieldSize ?? 16 * 1024,
      },
    }),
  });

/** Upload, list, metadata, content, exists-by-name and delete of a user's images. */
@Module({
  imports: [imageMulter()],
  controllers: [ImagesController],
  providers: [ImagesService, ImageContent],
  exports: [ImagesService, ImageContent],
})
export class ImagesModule {}
