import 'reflect-metadata';
import { Logger } from 'nestjs-pino';
import { loadConfigOrExit } from '@aperture/common/bootstrap.js';
import { startHttpApp } from '@apps/api/setup.js';
import { JobRunner } from '@apps/worker/job-runner.service.js';
import { StandaloneModule } from './standalone.module.js';

const config = loadConfigOrExit();
const app = await startHttpApp(StandaloneModule, config);
await app.get(JobRunner).start();
app
  .get(Logger)
  .log(
    `Aperture (API + worker in one process) listening on http://${config.host}:${config.port} — docs at /docs, database ` +
      `${config.database.dialect}, data in ${config.dataDir}`,
  );
