import { Module } from '@nestjs/common';
import { ApiModule } from '../../api/src/api.module.js';
import { WorkerModule } from '../../worker/src/worker.module.js';

/** `npm start`: the API and the worker in one process, for a simple single-machine start. */
@Module({ imports: [ApiModule, WorkerModule] })
export class StandaloneModule {}
