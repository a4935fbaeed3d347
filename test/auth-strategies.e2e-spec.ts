import { JwtService } from '@nestjs/jwt';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, type LoggedIn, registerAndLogin } from './support/http.js';

// What passport decides for the global guard and the sign-in routes, beyond what the auth, accounts and route tests
// already hold: each app its own strategies, the bearer header read as strictly as before, an API key header deciding
// alone, and sign-ins that passport-local refuses before verifying still counted.

const SECRET_A = 'strategies-secret-a-long-enough-0123456789';
const SECRET_B = 'strategies-secret-b-long-enough-0123456789';

describe('passport strategies: two apps in one process keep their own', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    a = await createTestApp(testEnv('strategies-a', { JWT_SECRET: SECRET_A }));
    b = await createTestApp(testEnv('strategies-b', { JWT_SECRET: SECRET_B }));
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it("each app verifies tokens with its own secret: its own token passes, the other app's is a 401", async () => {
    // One database: the same user exists for both; only the signing secret differs.
    const onA = await registerAndLogin(a.server, 'strat');
    const onB = await registerAndLogin(b.server, 'strat');
    const me = (app: TestApp, u: LoggedIn) => request(app.server).get('/api/v1/auth/me').set(u.auth);
    expect((await me(a, onA)).body.username).toBe(onA.username);
    expect((await me(b, onB)).body.username).toBe(onB.username);
    expectProblem(await me(b, onA), 401, 'UNAUTHORIZED', 'Not authenticated');
    expectProblem(await me(a, onB), 401, 'UNAUTHORIZED', 'Not authenticated');
  });
});

describe('passport strategies: what each accepts', () => {
  let t: TestApp;
  let u: LoggedIn;
  beforeAll(async () => {
    t = await createTestApp(testEnv('strategies', { JWT_SECRET: SECRET_A, BRUTE_FORCE_MAX_FAILURES: '3' }));
    u = await registerAndLogin(t.server, 'strat');
  });
  afterAll(() => t?.close());

  const me = (headers: Record<string, string>) => request(t.server).get('/api/v1/auth/me').set(headers);
  const sign = (claims: object, options: { algorithm?: 'HS256' | 'HS512'; issuer?: string; audience?: string; secret?: string }) =>
    new JwtService({ secret: options.secret ?? SECRET_A }).signAsync(
      { typ: 'access', role: 'user', ver: 0, ...claims },
      {
        algorithm: options.algorithm ?? 'HS256',
        issuer: options.issuer ?? 'aperture',
        audience: options.audience ?? 'aperture-api',
        expiresIn: 60,
      },
    );

  it('jwt: one bearer token, any case of the scheme; nothing after the token, no other scheme', async () => {
    expect((await me({ Authorization: `bearer ${u.access}` })).status).toBe(200);
    expect((await me({ Authorization: `Bearer   ${u.access}` })).status).toBe(200);
    for (const header of [`Bearer ${u.access} extra`, `JWT ${u.access}`, u.access, `Bearer`]) {
      expectProblem(await me({ Authorization: header }), 401, 'UNAUTHORIZED', 'Not authenticated');
    }
  });

  it('jwt: HS256 with our issuer and audience only, then a live user of the same token version', async () => {
    // A hand-signed token the server accepts, so that each refusal below differs from it in one thing only.
    expect((await me({ Authorization: `Bearer ${await sign({ sub: u.userId }, {})}` })).status).toBe(200);
    const refused = [
      await sign({ sub: u.userId }, { algorithm: 'HS512' }),
      await sign({ sub: u.userId }, { issuer: 'someone-else' }),
      await sign({ sub: u.userId }, { audience: 'another-api' }),
      await sign({ sub: u.userId }, { secret: SECRET_B }),
      await sign({ sub: u.userId, typ: 'refresh' }, {}),
      await sign({ sub: u.userId, ver: 1 }, {}),
      await sign({ sub: '00000000-0000-4000-8000-000000000000' }, {}),
    ];
    for (const token of refused) expectProblem(await me({ Authorization: `Bearer ${token}` }), 401, 'UNAUTHORIZED', 'Not authenticated');
  });

  it('api-key: the X-API-Key header decides alone; an empty one leaves it to the bearer token', async () => {
    const key = (await request(t.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'strategies' })).body.key as string;
    expect((await me({ 'X-API-Key': key })).body.username).toBe(u.username);
    expectProblem(await me({ ...u.auth, 'X-API-Key': 'apk_made_up' }), 401, 'UNAUTHORIZED', 'Not authenticated');
    expect((await me({ Authorization: 'Bearer not-a-token', 'X-API-Key': key })).status).toBe(200);
    expect((await me({ ...u.auth, 'X-API-Key': '' })).status).toBe(200);
  });

  it('local: an empty password, refused before any check, still counts towards the lock', async () => {
    const v = await registerAndLogin(t.server, 'strat');
    const login = (password: string) => request(t.server).post('/api/v1/auth/login').send({ username: v.username, password });
    for (let i = 0; i < 3; i++) expectProblem(await login(''), 401, 'UNAUTHORIZED', 'Incorrect username or password');
    expectProblem(await login(v.password), 429, 'RATE_LIMITED', /Too many failed sign-in attempts/);
  });

  it('local: the token form signs in through the same strategy; a body the DTO refuses never reaches it', async () => {
    const form = await request(t.server).post('/api/v1/auth/token').type('form').send({ username: u.username, password: u.password });
    expect(form.status).toBe(200);
    expect((await me({ Authorization: `Bearer ${form.body.access_token}` })).body.username).toBe(u.username);
    expectProblem(
      await request(t.server)
        .post('/api/v1/auth/login')
        .send({ username: [u.username], password: u.password }),
      400,
      'VALIDATION_ERROR',
    );
    expectProblem(await request(t.server).post('/api/v1/auth/login').send({ username: u.username }), 400, 'VALIDATION_ERROR');
  });
});
