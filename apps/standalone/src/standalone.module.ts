import { Module } from '@nestjs/common';
import { ApiModule } from '@apps/api/api.module.js';
import { WorkerModule } from '@apps/worker/worker.module.js';

/** `npm start`: the API and the worker in one process, for a simple single-machine start. */
@Module({ imports: [ApiModule, WorkerModule] })
export class StandaloneModule {}
