import { Module } from '@nestjs/common';
import { ImagesModule, imageMulter } from '../images/images.module.js';
import { ModelsModule } from '../models/models.module.js';
import { TasksController } from './tasks.controller.js';
import { TasksService } from './tasks.service.js';

/** Prediction tasks and fragment analyses over the job engine. */
@Module({
  imports: [imageMulter(), ImagesModule, ModelsModule],
  controllers: [TasksController],
  providers: [TasksService],
})
export class TasksModule {}
