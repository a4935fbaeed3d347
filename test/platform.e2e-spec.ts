import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, login, registerAndLogin, uniqueName } from './support/http.js';

describe('platform: errors, health, docs, headers (PostgreSQL + Redis)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(testEnv('platform', { JSON_BODY_LIMIT: '2kb', CORS_ORIGINS: 'https://app.example' }));
  });
  afterAll(() => t?.close());

  it('answers unknown routes with a 404 problem', async () => {
    expectProblem(await request(t.server).get('/api/v1/does-not-exist'), 404, 'NOT_FOUND', 'No route GET /api/v1/does-not-exist.');
  });

  it('answers an oversized body with 413 and malformed JSON with 400', async () => {
    const big = await request(t.server)
      .post('/api/v1/auth/login')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ username: 'x'.repeat(5000), password: 'y' }));
    expectProblem(big, 413, 'PAYLOAD_TOO_LARGE');
    const bad = await request(t.server).post('/api/v1/auth/login').set('Content-Type', 'application/json').send('{"username": ');
    expectProblem(bad, 400, 'VALIDATION_ERROR', 'Request body is not valid JSON.');
  });

  it('rejects unknown fields (whitelist) with field details', async () => {
    const res = await request(t.server).post('/api/v1/auth/login').send({ username: 'a', password: 'b', admin: true });
    expectProblem(res, 400, 'VALIDATION_ERROR');
    expect(res.body.errors).toEqual([{ field: 'admin', messages: ['property admin should not exist'] }]);
  });

  it('returns a 404 JOB_NOT_FOUND for unknown or malformed job ids', async () => {
    const u = await registerAndLogin(t.server);
    expectProblem(await request(t.server).get('/api/v1/jobs/7').set(u.auth), 404, 'JOB_NOT_FOUND', 'Job with id 7 does not exist.');
    const id = '6f1c7d1e-3b7a-4c1e-9a55-0d5a4f1e2b3c';
    expectProblem(await request(t.server).get(`/api/v1/jobs/${id}`).set(u.auth), 404, 'JOB_NOT_FOUND', `Job with id ${id} does not exist.`);
  });

  it('serves liveness, readiness and a detailed health report without credentials', async () => {
    const live = await request(t.server).get('/health/live');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });
    const ready = await request(t.server).get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.details).toMatchObject({ database: { status: 'up' }, redis: { status: 'up' }, migrations: { status: 'up' } });
    const full = await request(t.server).get('/health');
    expect(full.status).toBe(200);
    expect(Object.keys(full.body.details)).toEqual(expect.arrayContaining(['database', 'redis', 'migrations', 'queue:default', 'disk']));
  });

  it('serves Swagger UI and the spec, with bearer and API-key schemes', async () => {
    const ui = await request(t.server).get('/docs/');
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger-ui');
    const spec = await request(t.server).get('/docs/openapi.json');
    expect(spec.status).toBe(200);
    expect(Object.keys(spec.body.components.securitySchemes)).toEqual(expect.arrayContaining(['bearer', 'api-key', 'oauth2']));
    // Swagger UI's Authorize button logs in through the OAuth2 password flow at the form token endpoint.
    expect(spec.body.components.securitySchemes.oauth2.flows.password.tokenUrl).toBe('/api/v1/auth/token');
    expect(spec.body.paths['/api/v1/qr/batches'].post.operationId).toBe('createQrBatch');
  });

  it('sets security headers, a request id and CORS for the configured origin only', async () => {
    const res = await request(t.server).get('/health/live').set('Origin', 'https://app.example').set('X-Request-Id', 'req-123');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-request-id']).toBe('req-123');
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example');
    const other = await request(t.server).get('/health/live').set('Origin', 'https://evil.example');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
  });
});

describe('HEALTH_DETAILS and API_DOCS: who may read the detailed health report and the docs', () => {
  const admin = { name: uniqueName('admin'), password: 'admin-password-1' };
  let restricted: TestApp;
  let off: TestApp;
  beforeAll(async () => {
    const adminEnv = { ADMIN_USERNAME: admin.name, ADMIN_PASSWORD: admin.password };
    restricted = await createTestApp(testEnv('exposure-admin', { HEALTH_DETAILS: 'admin', API_DOCS: 'admin', ...adminEnv }));
    off = await createTestApp(testEnv('exposure-off', { HEALTH_DETAILS: 'off', API_DOCS: 'off' }));
  });
  afterAll(async () => {
    await restricted?.close();
    await off?.close();
  });

  it('admin: 401 without credentials, 403 for a user, 200 for an admin; the probes stay public', async () => {
    const s = restricted.server;
    const user = await registerAndLogin(s);
    const root = await login(s, admin.name, admin.password);
    for (const path of ['/health', '/docs/', '/docs/openapi.json', '/docs/openapi.yaml']) {
      expectProblem(await request(s).get(path), 401, 'UNAUTHORIZED');
      expectProblem(await request(s).get(path).set(user.auth), 403, 'FORBIDDEN');
      expect((await request(s).get(path).set(root.auth)).status, path).toBe(200);
    }
    expect((await request(s).get('/health/live')).status).toBe(200);
    expect((await request(s).get('/health/ready')).status).toBe(200);
  });

  it('off: 404 for everyone; the probes stay public', async () => {
    for (const path of ['/health', '/docs/', '/docs/openapi.json']) expectProblem(await request(off.server).get(path), 404, 'NOT_FOUND');
    expect((await request(off.server).get('/health/live')).status).toBe(200);
    expect((await request(off.server).get('/health/ready')).status).toBe(200);
  });
});

describe('rate limiting (Redis-backed, per principal)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(testEnv('ratelimit', { RATE_LIMIT_PER_MINUTE: '5', RATE_LIMIT_PER_HOUR: '1000' }));
  });
  afterAll(() => t?.close());

  it('answers 429 with Retry-After after the per-minute limit, and counts users separately from their IP', async () => {
    const u = await registerAndLogin(t.server);
    // The user's bucket already holds the GET /auth/me of registerAndLogin: four more pass, the sixth request is refused.
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await request(t.server).get('/api/v1/jobs').set(u.auth)).status);
    expect(codes).toEqual([200, 200, 200, 200]);
    const limited = await request(t.server).get('/api/v1/jobs').set(u.auth);
    expectProblem(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Health probes are never throttled.
    expect((await request(t.server).get('/health/live')).status).toBe(200);
  });

  it('shares counters across API replicas (two apps, one Redis)', async () => {
    // Same REDIS_PREFIX for both (testEnv derives it from the name); anonymous callers are counted by IP.
    const second = await createTestApp(testEnv('ratelimit-shared', { RATE_LIMIT_PER_MINUTE: '3' }));
    const third = await createTestApp(testEnv('ratelimit-shared', { RATE_LIMIT_PER_MINUTE: '3' }));
    try {
      const statuses = [];
      for (const app of [second, third, second, third]) {
        statuses.push(
          (await request(app.server).post('/api/v1/auth/login').send({ username: 'nobody', password: 'wrong-password' })).status,
        );
      }
      expect(statuses).toEqual([401, 401, 401, 429]);
    } finally {
      await second.close();
      await third.close();
    }
  });
});
