import { Module } from '@nestjs/common';
import { imageMulter } from '../images/images.module.js';
import { ModelsModule } from '../models/models.module.js';
import { UploadsModule } from '../uploads/uploads.module.js';
import { MAX_BATCH_IMAGES } from './segment-batches.dto.js';
import { SegmentBatchesController } from './segment-batches.controller.js';
import { SegmentBatchesService } from './segment-batches.service.js';

/** Segmentation batches: POST /segment/batches (multipart or JSON), GET /segment/batches and /segment/batches/{id}. */
@Module({
  imports: [imageMulter({ files: MAX_BATCH_IMAGES + 1, fields: 40, fieldSize: 512 * 1024 }), ModelsModule, UploadsModule],
  controllers: [SegmentBatchesController],
  providers: [SegmentBatchesService],
})
export class SegmentBatchesModule {}
