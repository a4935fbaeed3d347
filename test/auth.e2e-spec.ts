import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { expectProblem, login, registerAndLogin, uniqueName } from './support/http.js';

describe('auth core (PostgreSQL + Redis)', () => {
  let t: TestApp;
  const adminName = uniqueName('admin');
  beforeAll(async () => {
    t = await createTestApp(testEnv('auth', { ADMIN_USERNAME: adminName, ADMIN_PASSWORD: 'admin-password-1' }));
  });
  afterAll(() => t?.close());

  it('registers, logs in with JSON and returns the current user', async () => {
    const u = await registerAndLogin(t.server);
    const me = await request(t.server).get('/api/v1/auth/me').set(u.auth);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ username: u.username, role: 'user', email: `${u.username}@example.com` });
    expect(me.body).not.toHaveProperty('passwordHash');
    expect(me.body).not.toHaveProperty('password_hash');
  });

  it('stores the password hashed with argon2id', async () => {
    const u = await registerAndLogin(t.server);
    const { MikroORM } = await import('@mikro-orm/core');
    const { User } = await import('@aperture/database/entities/user.entity.js');
    const user = await t.app.get(MikroORM).em.fork().findOneOrFail(User, { username: u.username });
    expect(user.passwordHash).toMatch(/^\$argon2id\$/);
    expect(user.passwordHash).not.toContain(u.password);
  });

  it('refuses a wrong password or unknown user with the same message', async () => {
    const u = await registerAndLogin(t.server);
    const wrong = await request(t.server).post('/api/v1/auth/login').send({ username: u.username, password: 'not-the-password' });
    expectProblem(wrong, 401, 'UNAUTHORIZED', 'Incorrect username or password');
    const unknown = await request(t.server)
      .post('/api/v1/auth/login')
      .send({ username: uniqueName('ghost'), password: 'whatever123' });
    expectProblem(unknown, 401, 'UNAUTHORIZED', 'Incorrect username or password');
  });

  it('validates registration: short password, bad e-mail, password equal to username', async () => {
    const short = await request(t.server)
      .post('/api/v1/auth/register')
      .send({ username: uniqueName(), email: 'a@b.co', password: 'short' });
    expectProblem(short, 400, 'VALIDATION_ERROR');
    expect(short.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'password' })]));
    const mail = await request(t.server)
      .post('/api/v1/auth/register')
      .send({ username: uniqueName(), email: 'not-an-email', password: 'long-enough-1' });
    expectProblem(mail, 400, 'VALIDATION_ERROR');
    expect(mail.body.errors[0].field).toBe('email');
    const name = uniqueName();
    const same = await request(t.server)
      .post('/api/v1/auth/register')
      .send({ username: name, email: `${name}@x.io`, password: name });
    expectProblem(same, 400, 'VALIDATION_ERROR', 'password must not be the same as the username');
  });

  it('answers 409 naming the field for a duplicate username or e-mail', async () => {
    const u = await registerAndLogin(t.server);
    const dupName = await request(t.server)
      .post('/api/v1/auth/register')
      .send({ username: u.username, email: `${uniqueName()}@x.io`, password: 'long-enough-1' });
    expectProblem(dupName, 409, 'CONFLICT', 'A user with this username already exists.');
    expect(dupName.body.errors[0].field).toBe('username');
    const dupMail = await request(t.server)
      .post('/api/v1/auth/register')
      .send({ username: uniqueName(), email: `${u.username}@example.com`, password: 'long-enough-1' });
    expectProblem(dupMail, 409, 'CONFLICT', 'A user with this email already exists.');
  });

  it('treats usernames case-insensitively: one name whatever its case, and sign-in in any case', async () => {
    const name = uniqueName('Casey');
    const body = { username: name, email: `${name}@x.io`, password: 'long-enough-1' };
    expect((await request(t.server).post('/api/v1/auth/register').send(body)).status).toBe(201);
    const upper = { ...body, username: name.toUpperCase(), email: `${name}-2@x.io` };
    expectProblem(
      await request(t.server).post('/api/v1/auth/register').send(upper),
      409,
      'CONFLICT',
      'A user with this username already exists.',
    );
    const lower = await request(t.server).post('/api/v1/auth/login').send({ username: name.toLowerCase(), password: 'long-enough-1' });
    expect(lower.status).toBe(200);
    const me = await request(t.server).get('/api/v1/auth/me').set('Authorization', `Bearer ${lower.body.access_token}`);
    expect(me.body.username).toBe(name); // kept as registered
  });

  it('rotates refresh tokens and revokes the family when an old one is reused', async () => {
    const u = await registerAndLogin(t.server);
    const r1 = await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: u.refresh });
    expect(r1.status).toBe(200);
    expect(r1.body.refresh_token).not.toBe(u.refresh);
    expect((await request(t.server).get('/api/v1/auth/me').set('Authorization', `Bearer ${r1.body.access_token}`)).status).toBe(200);
    // Reusing the rotated token is refused and revokes the newer one too.
    expectProblem(await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: u.refresh }), 401, 'UNAUTHORIZED');
    expectProblem(await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: r1.body.refresh_token }), 401, 'UNAUTHORIZED');
  });

  it('rotates a refresh token once when 8 requests race with it; the rest count as reuse and revoke the family', async () => {
    const u = await registerAndLogin(t.server);
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: u.refresh })),
    );
    const ok = answers.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    for (const r of answers.filter((a) => a.status !== 200)) expectProblem(r, 401, 'UNAUTHORIZED');
    const winner = ok[0]!.body as { refresh_token: string };
    expectProblem(await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: winner.refresh_token }), 401, 'UNAUTHORIZED');
  });

  it('logout revokes the refresh token', async () => {
    const u = await registerAndLogin(t.server);
    expect((await request(t.server).post('/api/v1/auth/logout').set(u.auth).send({ refresh_token: u.refresh })).status).toBe(204);
    expectProblem(await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: u.refresh }), 401, 'UNAUTHORIZED');
  });

  it('rejects missing, tampered and foreign-audience tokens with 401 "Not authenticated"', async () => {
    const u = await registerAndLogin(t.server);
    expectProblem(await request(t.server).get('/api/v1/auth/me'), 401, 'UNAUTHORIZED', 'Not authenticated');
    const [h, p, s] = u.access.split('.');
    const tampered = `${h}.${p}.${s!.slice(0, -2)}${s!.endsWith('AA') ? 'BB' : 'AA'}`;
    expectProblem(
      await request(t.server).get('/api/v1/auth/me').set('Authorization', `Bearer ${tampered}`),
      401,
      'UNAUTHORIZED',
      'Not authenticated',
    );
    const { JwtService } = await import('@nestjs/jwt');
    const other = new JwtService({ secret: 'test-secret-that-is-long-enough-0123456789' });
    const foreign = await other.signAsync(
      { sub: u.userId, role: 'admin', typ: 'access' },
      { audience: 'someone-else', issuer: 'aperture' },
    );
    expectProblem(
      await request(t.server).get('/api/v1/auth/me').set('Authorization', `Bearer ${foreign}`),
      401,
      'UNAUTHORIZED',
      'Not authenticated',
    );
    const expired = await other.signAsync(
      { sub: u.userId, role: 'user', typ: 'access' },
      { audience: 'aperture-api', issuer: 'aperture', expiresIn: -10 },
    );
    expectProblem(
      await request(t.server).get('/api/v1/auth/me').set('Authorization', `Bearer ${expired}`),
      401,
      'UNAUTHORIZED',
      'Not authenticated',
    );
  });

  it('has no station login when STATION_PASSWORD is not configured', async () => {
    expectProblem(
      await request(t.server).post('/api/v1/auth/token').type('form').send({ password: 'anything-at-all' }),
      401,
      'UNAUTHORIZED',
    );
  });

  it('creates the first admin from the environment, once', async () => {
    const admin = await login(t.server, adminName, 'admin-password-1');
    const me = await request(t.server).get('/api/v1/auth/me').set(admin.auth);
    expect(me.body.role).toBe('admin');
  });

  it("lets only admins list every user's jobs", async () => {
    const u = await registerAndLogin(t.server);
    expectProblem(await request(t.server).get('/api/v1/jobs?all=true').set(u.auth), 403, 'FORBIDDEN');
    const admin = await login(t.server, adminName, 'admin-password-1');
    expect((await request(t.server).get('/api/v1/jobs?all=true').set(admin.auth)).status).toBe(200);
  });

  it("stops a disabled user's tokens at once", async () => {
    const u = await registerAndLogin(t.server);
    const { MikroORM } = await import('@mikro-orm/core');
    const { User } = await import('@aperture/database/entities/user.entity.js');
    const { AuthService } = await import('@apps/api/auth/auth.service.js');
    expect((await request(t.server).get('/api/v1/auth/me').set(u.auth)).status).toBe(200); // now in the principal cache
    await t.app.get(MikroORM).em.fork().nativeUpdate(User, { id: u.userId }, { disabled: true });
    // A change made behind the API's back must announce itself, as the API's own routes do (else it waits out
    // PRINCIPAL_CACHE_SECONDS).
    await t.app.get(AuthService).principalChanged(u.userId);
    expectProblem(await request(t.server).get('/api/v1/auth/me').set(u.auth), 401, 'UNAUTHORIZED', 'Not authenticated');
    expectProblem(await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: u.refresh }), 401, 'UNAUTHORIZED');
  });
});
