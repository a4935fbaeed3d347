import { JwtService } from '@nestjs/jwt';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sha256 } from '@apps/api/auth/auth.service.js';
import { PrincipalCache } from '@apps/api/auth/principal-cache.js';
import { REDIS } from '@aperture/redis/redis.module.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, login, registerAndLogin, uniqueName } from './support/http.js';

/**
 * The principal cache of the API: two API replicas (two apps in this process) on one database and one Redis, as two
 * pods would be. A credential each replica has cached must stop working on both at once when it is ended on either.
 */
describe('principal cache across two API replicas', () => {
  let a: TestApp;
  let b: TestApp;
  let admin: LoggedIn;
  const adminName = uniqueName('admin');
  beforeAll(async () => {
    const env = testEnv('principals', { ADMIN_USERNAME: adminName, ADMIN_PASSWORD: 'admin-password-1' });
    a = await createTestApp(env);
    b = await createTestApp(env);
    admin = await login(a.server, adminName, 'admin-password-1');
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  const me = (t: TestApp, auth: Record<string, string>) => request(t.server).get('/api/v1/auth/me').set(auth);
  const cache = (t: TestApp) => t.app.get(PrincipalCache);

  /** Both replicas answer the credential and now hold it in memory (so a refusal later is the invalidation's). */
  async function cachedOnBoth(auth: Record<string, string>, userId: string, kind: 'user' | 'key'): Promise<void> {
    for (const t of [a, b]) {
      expect((await me(t, auth)).status).toBe(200);
      if (kind === 'user') expect(cache(t).user(userId)).toBeDefined();
      else expect(cache(t).key(sha256(auth['X-API-Key']!))).toBeDefined();
    }
  }

  it('serves a cached bearer token without a database read, from the second request on', async () => {
    const u = await registerAndLogin(a.server);
    expect((await me(a, u.auth)).status).toBe(200);
    expect(cache(a).user(u.userId)).toMatchObject({ userId: u.userId, username: u.username, role: 'user' });
  });

  it('a token that does not verify is refused even while its user is cached', async () => {
    const u = await registerAndLogin(a.server);
    await cachedOnBoth(u.auth, u.userId, 'user');
    const claims = { sub: u.userId, role: 'user', typ: 'access', ver: 0 };
    const sign = (secret: string, opts: object) =>
      new JwtService({ secret }).sign(claims, { issuer: 'aperture', audience: 'aperture-api', ...opts });
    const forged = [
      sign('another-secret-that-is-long-enough-0123456789', {}),
      sign('test-secret-that-is-long-enough-0123456789', { expiresIn: -10 }),
      sign('test-secret-that-is-long-enough-0123456789', { audience: 'someone-else' }),
      sign('test-secret-that-is-long-enough-0123456789', { algorithm: 'HS384' }),
      `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`,
    ];
    // The same claims with the right secret are accepted: the refusals below are the signature's and options' doing.
    expect((await me(a, { Authorization: `Bearer ${sign('test-secret-that-is-long-enough-0123456789', { expiresIn: 60 })}` })).status).toBe(
      200,
    );
    for (const token of forged) expectProblem(await me(a, { Authorization: `Bearer ${token}` }), 401, 'UNAUTHORIZED');
  });

  it('logout-all on one replica refuses the old token on the very next request, on both replicas', async () => {
    for (const [where, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const u = await registerAndLogin(a.server);
      await cachedOnBoth(u.auth, u.userId, 'user');
      expect((await request(where.server).post('/api/v1/auth/logout-all').set(u.auth)).status).toBe(204);
      expectProblem(await me(other, u.auth), 401, 'UNAUTHORIZED');
      expectProblem(await me(where, u.auth), 401, 'UNAUTHORIZED');
      // A token issued afterwards works on both.
      const again = await login(other.server, u.username, u.password);
      expect((await me(where, again.auth)).status).toBe(200);
      expect((await me(other, again.auth)).status).toBe(200);
    }
  });

  it('a password change ends the cached token everywhere', async () => {
    const u = await registerAndLogin(a.server);
    await cachedOnBoth(u.auth, u.userId, 'user');
    const changed = await request(b.server)
      .post('/api/v1/users/me/password')
      .set(u.auth)
      .send({ current_password: u.password, new_password: 'a-new-password-9' });
    expect(changed.status).toBe(200);
    expectProblem(await me(a, u.auth), 401, 'UNAUTHORIZED');
    expect((await me(a, { Authorization: `Bearer ${changed.body.access_token}` })).status).toBe(200);
  });

  it('a revoked API key is refused at once by the replica that did not revoke it', async () => {
    const u = await registerAndLogin(a.server);
    const made = await request(a.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'ci' });
    expect(made.status).toBe(201);
    const key = { 'X-API-Key': String(made.body.key) };
    await cachedOnBoth(key, u.userId, 'key');
    expect((await request(b.server).delete(`/api/v1/auth/api-keys/${made.body.id}`).set(u.auth)).status).toBe(204);
    expectProblem(await me(a, key), 401, 'UNAUTHORIZED');
    expectProblem(await me(b, key), 401, 'UNAUTHORIZED');
    // The owner's bearer token is not affected beyond a fresh read.
    expect((await me(a, u.auth)).status).toBe(200);
  });

  it('a role change holds at once on the other replica, for bearer tokens and API keys; disabling refuses both', async () => {
    const u = await registerAndLogin(a.server);
    const made = await request(a.server)
      .post('/api/v1/auth/api-keys')
      .set(u.auth)
      .send({ name: 'reader', scopes: ['read'] });
    const key = { 'X-API-Key': String(made.body.key) };
    const adminList = (t: TestApp, auth: Record<string, string>) => request(t.server).get('/api/v1/users').set(auth);
    expectProblem(await adminList(b, u.auth), 403, 'FORBIDDEN');
    await cachedOnBoth(u.auth, u.userId, 'user');
    await cachedOnBoth(key, u.userId, 'key');

    expect((await request(a.server).patch(`/api/v1/users/${u.userId}`).set(admin.auth).send({ role: 'admin' })).status).toBe(200);
    expect((await adminList(b, u.auth)).status).toBe(200);
    expect((await me(b, key)).body.role).toBe('admin'); // the key's principal is read afresh (the role is the owner's)

    expect((await request(a.server).patch(`/api/v1/users/${u.userId}`).set(admin.auth).send({ role: 'user' })).status).toBe(200);
    expectProblem(await adminList(b, u.auth), 403, 'FORBIDDEN');

    await cachedOnBoth(u.auth, u.userId, 'user');
    expect((await request(b.server).patch(`/api/v1/users/${u.userId}`).set(admin.auth).send({ disabled: true })).status).toBe(200);
    expectProblem(await me(a, u.auth), 401, 'UNAUTHORIZED');
    expectProblem(await me(a, key), 401, 'UNAUTHORIZED');
  });

  it('a deleted user is refused at once on the other replica', async () => {
    const u = await registerAndLogin(a.server);
    await cachedOnBoth(u.auth, u.userId, 'user');
    expect((await request(a.server).delete(`/api/v1/users/${u.userId}`).set(admin.auth)).status).toBe(204);
    expectProblem(await me(b, u.auth), 401, 'UNAUTHORIZED');
  });

  it('an authenticated request with a cached principal makes one Redis round trip (address check + rate limits)', async () => {
    const u = await registerAndLogin(a.server);
    const jobs = () => request(a.server).get('/api/v1/jobs').set(u.auth);
    expect((await jobs()).status).toBe(200); // the principal is cached now, and the script loaded
    const redis = a.app.get<Redis>(REDIS);
    const sent: string[] = [];
    const original = redis.sendCommand.bind(redis);
    redis.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], stream?: Parameters<Redis['sendCommand']>[1]) => {
      sent.push(command.name);
      return original(command, stream);
    }) as Redis['sendCommand'];
    try {
      const res = await jobs();
      expect(res.status).toBe(200);
      expect(res.headers['x-ratelimit-remaining-minute']).toBeDefined();
      expect(res.headers['x-ratelimit-remaining-hour']).toBeDefined();
      expect(sent).toEqual(['evalsha']);
    } finally {
      redis.sendCommand = original;
    }
  });

  it('a bearer token verified once is refused once it expires, though its user is still cached', async () => {
    const u = await registerAndLogin(a.server);
    const token = new JwtService({ secret: 'test-secret-that-is-long-enough-0123456789' }).sign(
      { sub: u.userId, role: 'user', typ: 'access', ver: 0 },
      { issuer: 'aperture', audience: 'aperture-api', expiresIn: 5 },
    );
    const auth = { Authorization: `Bearer ${token}` };
    expect((await me(a, auth)).status).toBe(200);
    expect((await me(a, auth)).status).toBe(200); // verified before: remembered, with the user cached
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      // Past the token's expiry, within the principal cache's 30 s: the user stays cached, the token does not pass
      vi.setSystemTime(Date.now() + 6_000);
      expect(cache(a).user(u.userId)).toBeDefined();
      expectProblem(await me(a, auth), 401, 'UNAUTHORIZED');
      expect((await me(a, u.auth)).status).toBe(200);
    } finally {
      vi.useRealTimers();
    }
  });
});
