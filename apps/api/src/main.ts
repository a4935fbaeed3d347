import 'reflect-metadata';
import { Logger } from 'nestjs-pino';
import { loadConfigOrExit } from '@aperture/common/bootstrap.js';
import { ApiModule } from './api.module.js';
import { startHttpApp } from './setup.js';

const config = loadConfigOrExit();
const app = await startHttpApp(ApiModule, config);
app.get(Logger).log(`Aperture API listening on http://${config.host}:${config.port} (docs at /docs)`);
