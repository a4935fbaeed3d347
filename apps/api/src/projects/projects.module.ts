import { Module } from '@nestjs/common';
import { ImagesModule, imageMulter } from '../images/images.module.js';
import { ModelsModule } from '../models/models.module.js';
import { ProjectsController } from './projects.controller.js';
import { ProjectsService } from './projects.service.js';

/** Projects: images, start / start-rest through the queue, result sets. */
@Module({
  imports: [imageMulter(), ImagesModule, ModelsModule],
  controllers: [ProjectsController],
  providers: [ProjectsService],
})
export class ProjectsModule {}
