import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer, Reflector } from '@nestjs/core';
import { JwtService } from '@nestjs/jwt';
import { MikroORM } from '@mikro-orm/core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IS_PUBLIC } from '@aperture/common/auth.decorators.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, registerAndLogin } from './support/http.js';

interface Route {
  method: string;
  path: string;
  isPublic: boolean;
}

const SECRET = 'test-secret-that-is-long-enough-0123456789';

/** Every route of the running app, read from the controllers Nest registered (new routes are covered automatically). */
function discoverRoutes(t: TestApp): Route[] {
  const reflector = t.app.get(Reflector);
  const routes: Route[] = [];
  for (const mod of t.app.get(ModulesContainer).values()) {
    for (const wrapper of mod.controllers.values()) {
      const cls = wrapper.metatype as (new (...args: never[]) => object) | null;
      if (!cls) continue;
      const base = String(Reflect.getMetadata(PATH_METADATA, cls) ?? '');
      for (const name of Object.getOwnPropertyNames(cls.prototype)) {
        const handler = (cls.prototype as Record<string, unknown>)[name];
        if (typeof handler !== 'function' || name === 'constructor') continue;
        const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
        const verb = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (sub === undefined || verb === undefined) continue;
        const joined = [base, sub]
          .map((s) => s.replace(/^\/|\/$/g, ''))
          .filter(Boolean)
          .join('/');
        const prefixed = joined.startsWith('health') || joined === 'metrics' ? `/${joined}` : `/api/v1/${joined}`;
        routes.push({
          method: RequestMethod[verb]!.toLowerCase(),
          path: prefixed.replace(/:[A-Za-z]+/g, '3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c'),
          isPublic: reflector.getAllAndOverride<boolean>(IS_PUBLIC, [handler as () => void, cls]) === true,
        });
      }
    }
  }
  return routes;
}

describe('route matrix: every non-public route refuses every kind of bad credential', () => {
  let t: TestApp;
  let routes: Route[];
  let victim: LoggedIn;
  let disabledUser: LoggedIn;
  let revokedKey: string;
  beforeAll(async () => {
    t = await createTestApp(testEnv('matrix'));
    routes = discoverRoutes(t);
    victim = await registerAndLogin(t.server, 'matrix');
    const k = await request(t.server).post('/api/v1/auth/api-keys').set(victim.auth).send({ name: 'to revoke' });
    revokedKey = k.body.key;
    await request(t.server).delete(`/api/v1/auth/api-keys/${k.body.id}`).set(victim.auth);
    disabledUser = await registerAndLogin(t.server, 'disabled');
    await t.app.get(MikroORM).em.fork().nativeUpdate(User, { id: disabledUser.userId }, { disabled: true });
  });
  afterAll(() => t?.close());

  it("discovers the app's routes", () => {
    expect(routes.length).toBeGreaterThan(25);
    expect(routes).toContainEqual({ method: 'post', path: '/api/v1/qr/batches', isPublic: false });
    expect(routes).toContainEqual({ method: 'get', path: '/health/live', isPublic: true });
    expect(routes).toContainEqual({ method: 'post', path: '/api/v1/auth/token', isPublic: true });
    expect(routes).toContainEqual({ method: 'post', path: '/api/v1/storage/drive/upload', isPublic: false });
  });

  it('answers 401 "Not authenticated" to missing, tampered, expired, wrong-audience, revoked-key, disabled-user credentials', async () => {
    const jwt = new JwtService({ secret: SECRET });
    const [h, p, s] = victim.access.split('.');
    const user = () => ({ sub: victim.userId, role: 'user', typ: 'access', ver: 0 });
    const wrongSecret = new JwtService({ secret: 'another-secret-entirely-0123456789' }).sign(
      { sub: victim.userId, role: 'admin', typ: 'access', ver: 0 },
      { audience: 'aperture-api', issuer: 'aperture' },
    );
    const expired = jwt.sign(user(), { audience: 'aperture-api', issuer: 'aperture', expiresIn: -60 });
    const wrongAudience = jwt.sign(user(), { audience: 'another-api', issuer: 'aperture' });
    const credentials: Record<string, Record<string, string>> = {
      none: {},
      tampered: { Authorization: `Bearer ${h}.${p}.${s!.slice(0, -3)}abc` },
      'wrong secret': { Authorization: `Bearer ${wrongSecret}` },
      expired: { Authorization: `Bearer ${expired}` },
      'wrong audience': { Authorization: `Bearer ${wrongAudience}` },
      'revoked API key': { 'X-API-Key': revokedKey },
      'disabled user': disabledUser.auth,
      'not a bearer': { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
    };
    const protectedRoutes = routes.filter((r) => !r.isPublic);
    expect(protectedRoutes.length).toBeGreaterThan(15);
    for (const route of protectedRoutes) {
      for (const [kind, headers] of Object.entries(credentials)) {
        const res = await request(t.server)[route.method as 'get'](route.path).set(headers).send({});
        try {
          expectProblem(res, 401, 'UNAUTHORIZED', 'Not authenticated');
        } catch (err) {
          throw new Error(`${route.method.toUpperCase()} ${route.path} with ${kind} credentials: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
    }
  });

  it('keeps public routes public', async () => {
    for (const route of routes.filter((r) => r.isPublic)) {
      const res = await request(t.server)[route.method as 'get'](route.path).send({});
      expect(res.status, `${route.method.toUpperCase()} ${route.path}`).not.toBe(401);
      expect(res.status, `${route.method.toUpperCase()} ${route.path}`).toBeLessThan(500);
    }
  });
});
