import { Module } from '@nestjs/common';
import { ImagesModule, imageMulter } from '../images/images.module.js';
import { ModelsModule } from '../models/models.module.js';
import { SegmentAutoController } from './segment-auto.controller.js';
import { SegmentAutoService } from './segment-auto.service.js';

/** Automatic segmentation (POST /segment/auto and /segment/auto/async) over the job engine: the worker runs SAM. */
@Module({
  imports: [imageMulter(), ImagesModule, ModelsModule],
  controllers: [SegmentAutoController],
  providers: [SegmentAutoService],
})
export class SegmentAutoModule {}
