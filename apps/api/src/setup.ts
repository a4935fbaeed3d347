import { type Server, STATUS_CODES } from 'node:http';
import { RequestMethod, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MikroORM, RequestContext } from '@mikro-orm/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import helmet from 'helmet';
import { Logger } from 'nestjs-pino';
import type { AppConfig } from '@aperture/config/config.js';
import { closeOnSignals } from '@aperture/common/bootstrap.js';
import { notFound } from '@aperture/common/problem.js';
import { ProblemDetailsFilter } from '@aperture/common/problem.filter.js';
import { createValidationPipe, RejectNulPipe } from '@aperture/common/validation.js';
import type { NextFunction, Request, Response } from 'express';
import { AuthGuard } from './auth/auth.guard.js';
import { addResultSchemas } from './jobs/job-result.schemas.js';
import { SchemaService } from '@aperture/database/schema.service.js';
import { EMBEDDING_HEADERS } from './embedding/embedding.dto.js';
import { requestCapByLength } from './uploads/upload-files.js';
import { httpMetricsMiddleware } from '@aperture/metrics/http-metrics.js';
import { Metrics } from '@aperture/metrics/metrics.js';
import { allowLongWaits } from './jobs/prefer-wait.js';

const API_PREFIX = 'api/v1';

/** Everything an API app needs besides its modules; used by main, the single-process mode, the tests and the spec writer. */
export function configureApp(app: NestExpressApplication, config: AppConfig): void {
  app.set('trust proxy', config.http.trustProxy);
  // First, so that every answer is timed (413s and 404s included).
  app.use(httpMetricsMiddleware(app.get(Metrics)));
  app.disable('x-powered-by');
  app.use(helmet());
  app.enableCors({
    origin: config.cors.origins,
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'Content-Disposition', 'ETag', ...Object.keys(EMBEDDING_HEADERS)],
  });
  // A multipart body over UPLOAD_MAX_REQUEST_MB by its Content-Length is refused before anything is read or
  // authenticated (after CORS, so that a browser can read the 413).
  app.use(requestCapByLength(config.uploads.maxRequestBytes));
  // A segmentation batch's JSON carries its images base64-encoded: that one route gets its own, larger limit.
  const batches = `/${API_PREFIX}/segment/batches`;
  app.useBodyParser('json', {
    limit: config.http.batchJsonBodyLimit,
    type: (req) => (req.url ?? '').split('?')[0] === batches && /\bjson\b/i.test(String(req.headers['content-type'] ?? '')),
  });
  app.useBodyParser('json', { limit: config.http.jsonBodyLimit });
  app.useBodyParser('urlencoded', { limit: '64kb', extended: false });
  app.setGlobalPrefix(API_PREFIX, {
    exclude: [
      { path: 'health', method: RequestMethod.GET },
      { path: 'health/live', method: RequestMethod.GET },
      { path: 'health/ready', method: RequestMethod.GET },
      { path: 'metrics', method: RequestMethod.GET },
      { path: 'booth/review', method: RequestMethod.GET },
      { path: 'booth/review.js', method: RequestMethod.GET },
    ],
  });
  app.useGlobalPipes(new RejectNulPipe(), createValidationPipe());
}

export function buildOpenApiDocument(app: NestExpressApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Aperture API')
    .setDescription(
      'One backend for ONNX image models: detection, scene classification, segmentation, fragment sizing and an X-ray effect, ' +
        'with users, projects, queued jobs and model management. Errors are RFC 9457 problem+json with a `code`.',
    )
    .setVersion('0.1.0')
    .setLicense('MIT', 'https://opensource.org/licenses/MIT')
    .addServer('/', 'This server')
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Access token from POST /api/v1/auth/login' },
      'bearer',
    )
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'API key from POST /api/v1/auth/api-keys' }, 'api-key')
    .addOAuth2(
      {
        type: 'oauth2',
        description: "Username and password through the OAuth2 token endpoint (what Swagger UI's Authorize does)",
        flows: { password: { tokenUrl: `/${API_PREFIX}/auth/token`, refreshUrl: `/${API_PREFIX}/auth/token`, scopes: {} } },
      },
      'oauth2',
    )
    .build();
  const doc = SwaggerModule.createDocument(app, config, {
    operationIdFactory: (_controllerKey: string, methodKey: string) => methodKey,
  });
  return sortDocument(normalizeOperations(addResultSchemas(doc)));
}

type Operation = {
  security?: Record<string, string[]>[];
  responses?: Record<string, { description?: string; content?: Record<string, unknown> }>;
};

/**
 * Spec details Nest's generator leaves implicit: public operations say `security: []`, error bodies are
 * `application/problem+json`, and every response has a description.
 */
function normalizeOperations(doc: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(doc.paths)) {
    for (const method of ['get', 'put', 'post', 'delete', 'patch'] as const) {
      const op = (item as Record<string, Operation | undefined>)[method];
      if (!op) continue;
      op.security ??= [];
      for (const [status, res] of Object.entries(op.responses ?? {})) {
        if (!res.description) res.description = STATUS_CODES[Number(status)] ?? 'Response';
        if (Number(status) >= 400 && res.content?.['application/json']) {
          res.content = { 'application/problem+json': res.content['application/json'] };
        }
      }
    }
  }
  return doc;
}

/** Stable ordering (paths, schemas, tags) so the committed spec only changes when the API does. */
function sortDocument(doc: OpenAPIObject): OpenAPIObject {
  const sortKeys = <T extends object>(o: T | undefined): T | undefined =>
    o === undefined ? undefined : (Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))) as T);
  doc.paths = sortKeys(doc.paths)!;
  if (doc.components?.schemas) doc.components.schemas = sortKeys(doc.components.schemas);
  if (doc.tags) doc.tags.sort((a, b) => a.name.localeCompare(b.name));
  return doc;
}

/**
 * Swagger UI at /docs and the document at /docs/openapi.json|yaml, for the audience API_DOCS names: anyone, admins
 * (a bearer token or API key of an admin, checked by the global guard's own logic), or nobody (not mounted: 404).
 */
export function setupSwagger(app: NestExpressApplication, config: AppConfig): void {
  const problems = new ProblemDetailsFilter();
  if (config.exposure.apiDocs === 'off') {
    app.use('/docs', (req: Request, res: Response) => problems.write(notFound('Not found.'), req, res));
    return;
  }
  if (config.exposure.apiDocs === 'admin') {
    const guard = app.get(AuthGuard);
    const orm = app.get(MikroORM);
    // Plain Express middleware, outside Nest's pipeline: it needs its own request context for the credential lookup.
    app.use('/docs', (req: Request, res: Response, next: NextFunction) => {
      RequestContext.create(orm.em, () => guard.assertExposed(req, 'apiDocs')).then(
        () => next(),
        (err: unknown) => problems.write(err, req, res),
      );
    });
  }
  SwaggerModule.setup('docs', app, () => buildOpenApiDocument(app), {
    jsonDocumentUrl: 'docs/openapi.json',
    yamlDocumentUrl: 'docs/openapi.yaml',
    swaggerOptions: { persistAuthorization: true },
    customSiteTitle: 'Aperture API',
  });
}

/** Applies migrations under the cluster lock before the app starts answering. */
export async function prepareDatabase(app: NestExpressApplication): Promise<void> {
  await app.get(SchemaService).migrate();
}

/** Creates, configures and starts an HTTP app for a root module (the API alone, or API + worker in one process). */
export async function startHttpApp(rootModule: Type<unknown>, config: AppConfig): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(rootModule, { bufferLogs: true, bodyParser: false });
  app.useLogger(app.get(Logger));
  configureApp(app, config);
  setupSwagger(app, config);
  await prepareDatabase(app);
  closeOnSignals(app, config.http.shutdownTimeoutMs);
  allowLongWaits(app.getHttpServer() as Server);
  await app.listen(config.port, config.host);
  return app;
}
