import { Module } from '@nestjs/common';
import { type UploadLimits, uploadMulter } from '../uploads/uploads.module.js';
import { ImageContent } from './image-content.js';
import { ImageJobIntake } from './image-job-intake.js';
import { ImagesController } from './images.controller.js';
import { ImagesService } from './images.service.js';
import { MAX_FILES_PER_UPLOAD } from './upload.js';

/** Multer settings of the image upload routes: `uploadMulter` with room for MAX_FILES_PER_UPLOAD files (and one "image"). */
export const imageMulter = (limits: UploadLimits = {}) => uploadMulter({ files: MAX_FILES_PER_UPLOAD + 1, ...limits });

/** Upload, list, metadata, content, exists-by-name and delete of a user's images. */
@Module({
  imports: [imageMulter()],
  controllers: [ImagesController],
  providers: [ImagesService, ImageContent, ImageJobIntake],
  exports: [ImagesService, ImageContent, ImageJobIntake],
})
export class ImagesModule {}
