import type { INestApplication, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { ApiModule } from '@apps/api/api.module.js';
import { configureApp, prepareDatabase, setupSwagger } from '@apps/api/setup.js';
import { StandaloneModule } from '@apps/standalone/standalone.module.js';
import { JobRunner } from '@apps/worker/job-runner.service.js';
import { loadConfig } from '@aperture/config/config.js';
import { applyEnv, type Env, testEnv } from './env.js';
import { type LoggedIn, registerAndLogin } from './http.js';

export interface TestApp {
  app: NestExpressApplication;
  server: ReturnType<INestApplication['getHttpServer']>;
  close(): Promise<void>;
}

/**
 * Boots the real API (and, with worker: true, the worker in the same process, as `npm start` does)
 * on the given environment, with migrations applied. Requests go through real HTTP via supertest.
 */
export async function createTestApp(env: Env, opts: { worker?: boolean } = {}): Promise<TestApp> {
  applyEnv(env);
  const config = loadConfig();
  const root: Type<unknown> = opts.worker ? StandaloneModule : ApiModule;
  const moduleRef = await Test.createTestingModule({ imports: [root] }).compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({ bodyParser: false, logger: false });
  configureApp(app, config);
  setupSwagger(app, config);
  await prepareDatabase(app);
  await app.init();
  if (opts.worker) await app.get(JobRunner).start();
  return { app, server: app.getHttpServer(), close: () => app.close() };
}

/** The single-process app (API + worker) on the run's database, with two signed-in users, alice and bob. */
export async function workerAppWithTwoUsers(name: string): Promise<{ t: TestApp; alice: LoggedIn; bob: LoggedIn }> {
  const t = await createTestApp(testEnv(name), { worker: true });
  return { t, alice: await registerAndLogin(t.server, `${name}_a`), bob: await registerAndLogin(t.server, `${name}_b`) };
}
