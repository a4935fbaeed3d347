import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Logger } from 'nestjs-pino';
import { closeOnSignals, loadConfigOrExit } from '@aperture/common/bootstrap.js';
import { SchemaService } from '@aperture/database/schema.service.js';
import { JobRunner } from './job-runner.service.js';
import { WorkerHealth } from './worker-health.service.js';
import { WorkerModule } from './worker.module.js';

const config = loadConfigOrExit();
const app = await NestFactory.createApplicationContext(WorkerModule, { bufferLogs: true });
app.useLogger(app.get(Logger));
closeOnSignals(app, config.http.shutdownTimeoutMs);
const health = app.get(WorkerHealth);
await health.listen(config.worker.healthPort);
await app.get(SchemaService).waitUntilCurrent(config.worker.migrationsWaitMs);
await app.get(JobRunner).start();
