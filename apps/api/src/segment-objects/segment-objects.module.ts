import { Module } from '@nestjs/common';
import { ImagesModule, imageMulter } from '../images/images.module.js';
import { ModelsModule } from '../models/models.module.js';
import { SegmentObjectsController } from './segment-objects.controller.js';
import { SegmentObjectsService } from './segment-objects.service.js';

/** Object extraction (POST /segment/objects and /segment/objects/async) over the job engine: the worker cuts the objects. */
@Module({
  imports: [imageMulter(), ImagesModule, ModelsModule],
  controllers: [SegmentObjectsController],
  providers: [SegmentObjectsService],
})
export class SegmentObjectsModule {}
