import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Logger } from 'nestjs-pino';
import { loadConfigOrExit } from '@aperture/common/bootstrap.js';
import { startHttpApp } from '@apps/api/setup.js';
import { JobRunner } from '@apps/worker/job-runner.service.js';
import { readyLine } from './ready-line.js';
import { StandaloneModule } from './standalone.module.js';

const config = loadConfigOrExit();
const app = await startHttpApp(StandaloneModule, config);
await app.get(JobRunner).start();
const port = (app.getHttpServer().address() as AddressInfo | null)?.port ?? config.port;
const logger = app.get(Logger);
logger.log(
  `Aperture (API + worker in one process) listening on ${config.host}:${port}, database ${config.database.dialect}, data in ` +
    `${config.dataDir}`,
);
// Through the logger, so that it comes after every start-up line (pretty logs are written by a worker thread).
logger.log(readyLine(config, port));
