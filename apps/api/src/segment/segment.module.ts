import { Module } from '@nestjs/common';
import { ImagesModule, imageMulter } from '../images/images.module.js';
import { ModelsModule } from '../models/models.module.js';
import { SegmentController } from './segment.controller.js';
import { SegmentService } from './segment.service.js';

/** Prompt segmentation (SAM points and boxes) over the job engine: POST /segment/points, /segment/box and their /async forms. */
@Module({
  imports: [imageMulter(), ImagesModule, ModelsModule],
  controllers: [SegmentController],
  providers: [SegmentService],
})
export class SegmentModule {}
