import { Module } from '@nestjs/common';
import { ModelsModule } from '../models/models.module.js';
import { JobAccessService } from './job-access.service.js';
import { JobsController } from './jobs.controller.js';

@Module({ imports: [ModelsModule], controllers: [JobsController], providers: [JobAccessService] })
export class JobsModule {}
