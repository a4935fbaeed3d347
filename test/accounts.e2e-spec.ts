import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { FakeGoogle } from './support/fake-google.js';
import { expectProblem, login, registerAndLogin, uniqueName } from './support/http.js';

const STATION_PASSWORD = 'booth-password-42';

describe('accounts: token endpoint, station, API keys, profile, admin, Google', () => {
  let t: TestApp;
  const google = new FakeGoogle('client-123', 'secret-456');
  const adminName = uniqueName('admin');
  beforeAll(async () => {
    await google.start();
    t = await createTestApp(
      testEnv('accounts', {
        ADMIN_USERNAME: adminName,
        ADMIN_PASSWORD: 'admin-password-1',
        STATION_PASSWORD,
        GOOGLE_CLIENT_ID: google.clientId,
        GOOGLE_CLIENT_SECRET: google.clientSecret,
        GOOGLE_REDIRECT_URI: 'http://127.0.0.1:3000/api/v1/auth/google/callback',
        GOOGLE_AUTH_URL: `${google.base}/authorize`,
        GOOGLE_TOKEN_URL: `${google.base}/token`,
        GOOGLE_USERINFO_URL: `${google.base}/userinfo`,
        FRONTEND_URL: 'https://app.example/signed-in',
      }),
    );
  });
  afterAll(async () => {
    await t?.close();
    await google.stop();
  });

  const me = (auth: Record<string, string>) => request(t.server).get('/api/v1/auth/me').set(auth);

  describe('OAuth2 token endpoint (form)', () => {
    it('grants tokens for grant_type=password and rotates with grant_type=refresh_token', async () => {
      const u = await registerAndLogin(t.server);
      const res = await request(t.server)
        .post('/api/v1/auth/token')
        .type('form')
        .send({ grant_type: 'password', username: u.username, password: u.password, scope: '' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        token_type: 'bearer',
        expires_in: 900,
        access_token: expect.any(String),
        refresh_token: expect.any(String),
      });
      expect((await me({ Authorization: `Bearer ${res.body.access_token}` })).body.username).toBe(u.username);
      const again = await request(t.server)
        .post('/api/v1/auth/token')
        .type('form')
        .send({ grant_type: 'refresh_token', refresh_token: res.body.refresh_token });
      expect(again.status).toBe(200);
      expect(again.body.refresh_token).not.toBe(res.body.refresh_token);
    });

    it('answers wrong credentials with "Incorrect username or password" and a missing grant field with 400', async () => {
      const u = await registerAndLogin(t.server);
      expectProblem(
        await request(t.server).post('/api/v1/auth/token').type('form').send({ username: u.username, password: 'nope-nope' }),
        401,
        'UNAUTHORIZED',
        'Incorrect username or password',
      );
      expectProblem(
        await request(t.server).post('/api/v1/auth/token').type('form').send({ grant_type: 'refresh_token' }),
        400,
        'VALIDATION_ERROR',
      );
      expectProblem(
        await request(t.server).post('/api/v1/auth/token').type('form').send({ grant_type: 'client_credentials', password: 'x' }),
        400,
        'VALIDATION_ERROR',
      );
    });
  });

  describe('station password', () => {
    it('signs in the station principal with only a password; it may use the booth endpoints and nothing else', async () => {
      const res = await request(t.server).post('/api/v1/auth/token').type('form').send({ password: STATION_PASSWORD });
      expect(res.status).toBe(200);
      const auth = { Authorization: `Bearer ${res.body.access_token}` };
      expect((await me(auth)).body).toMatchObject({ username: 'station', role: 'station' });
      expect((await request(t.server).post('/api/v1/qr/batches').set(auth).send({ n: 1 })).status).toBe(202);
      expectProblem(
        await request(t.server).get('/api/v1/jobs').set(auth),
        403,
        'FORBIDDEN',
        'The station account may only use the booth endpoints.',
      );
      expectProblem(await request(t.server).post('/api/v1/auth/api-keys').set(auth).send({ name: 'x' }), 403, 'FORBIDDEN');
      expectProblem(await request(t.server).get('/api/v1/users/me').set(auth), 403, 'FORBIDDEN');
    });

    it('refuses a wrong station password, and nobody can sign in as "station" with a username', async () => {
      expectProblem(
        await request(t.server).post('/api/v1/auth/token').type('form').send({ password: 'wrong-password' }),
        401,
        'UNAUTHORIZED',
        'Incorrect password',
      );
      expectProblem(
        await request(t.server).post('/api/v1/auth/login').send({ username: 'station', password: STATION_PASSWORD }),
        401,
        'UNAUTHORIZED',
      );
      expectProblem(
        await request(t.server).post('/api/v1/auth/register').send({ username: 'station', email: 's@x.io', password: 'long-enough-1' }),
        409,
        'CONFLICT',
      );
    });
  });

  describe('log out everywhere', () => {
    it('revokes every refresh token and stops every access token issued so far', async () => {
      const u = await registerAndLogin(t.server);
      const second = await login(t.server, u.username, u.password);
      expect((await request(t.server).post('/api/v1/auth/logout-all').set(u.auth)).status).toBe(204);
      expectProblem(await me(u.auth), 401, 'UNAUTHORIZED', 'Not authenticated');
      expectProblem(await me(second.auth), 401, 'UNAUTHORIZED', 'Not authenticated');
      expectProblem(await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: second.refresh }), 401, 'UNAUTHORIZED');
      const fresh = await login(t.server, u.username, u.password);
      expect((await me(fresh.auth)).status).toBe(200);
    });
  });

  describe('API keys', () => {
    it('creates a key shown once, lists it by prefix, authenticates with X-API-Key, and revokes it', async () => {
      const u = await registerAndLogin(t.server);
      const created = await request(t.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'scanner' });
      expect(created.status).toBe(201);
      const key: string = created.body.key;
      expect(key).toMatch(/^apk_/);
      expect(created.body.prefix).toBe(key.slice(0, 12));
      const list = await request(t.server).get('/api/v1/auth/api-keys').set(u.auth);
      expect(list.body).toHaveLength(1);
      expect(list.body[0]).toMatchObject({ name: 'scanner', prefix: key.slice(0, 12), last_used_at: null });
      expect(JSON.stringify(list.body)).not.toContain(key);
      const viaKey = await me({ 'X-API-Key': key });
      expect(viaKey.status).toBe(200);
      expect(viaKey.body.username).toBe(u.username);
      expect((await request(t.server).get('/api/v1/auth/api-keys').set(u.auth)).body[0].last_used_at).not.toBeNull();
      expect((await request(t.server).delete(`/api/v1/auth/api-keys/${created.body.id}`).set(u.auth)).status).toBe(204);
      expectProblem(await me({ 'X-API-Key': key }), 401, 'UNAUTHORIZED', 'Not authenticated');
      expect((await request(t.server).get('/api/v1/auth/api-keys').set(u.auth)).body).toEqual([]);
      expectProblem(await me({ 'X-API-Key': 'apk_made_up' }), 401, 'UNAUTHORIZED', 'Not authenticated');
    });

    it('scopes: read-only keys cannot write, keys cannot make keys, an admin key is an admin only with the admin scope', async () => {
      const u = await registerAndLogin(t.server);
      const make = (auth: Record<string, string>, body: object) => request(t.server).post('/api/v1/auth/api-keys').set(auth).send(body);
      const reader = await make(u.auth, { name: 'reader', scopes: ['read'] });
      expect(reader.status, JSON.stringify(reader.body)).toBe(201);
      expect(reader.body).toMatchObject({ scopes: ['read'], expires_at: null });
      const rk = { 'X-API-Key': reader.body.key as string };
      expect((await request(t.server).get('/api/v1/jobs').set(rk)).status).toBe(200);
      expectProblem(await request(t.server).post('/api/v1/qr/batches').set(rk).send({ n: 1 }), 403, 'FORBIDDEN', /"write" scope/);
      // The default (read + write) key may write, but never make another key.
      const writer = await make(u.auth, { name: 'writer' });
      expect(writer.body.scopes).toEqual(['read', 'write']);
      const wk = { 'X-API-Key': writer.body.key as string };
      expectProblem(await make(wk, { name: 'child' }), 403, 'FORBIDDEN', /cannot create API keys/);
      // Scopes the owner's role cannot grant.
      expectProblem(await make(u.auth, { name: 'x', scopes: ['admin'] }), 400, 'VALIDATION_ERROR', /cannot grant the scope admin/);
      expectProblem(await make(u.auth, { name: 'x', scopes: ['booth-worker'] }), 400, 'VALIDATION_ERROR', /booth-worker/);
      expectProblem(await make(u.auth, { name: 'x', scopes: ['everything'] }), 400, 'VALIDATION_ERROR');
      // An admin's key: a plain user without the admin scope, an admin with it.
      const admin = await login(t.server, adminName, 'admin-password-1');
      const plain = { 'X-API-Key': (await make(admin.auth, { name: 'plain' })).body.key as string };
      expectProblem(await request(t.server).get('/api/v1/users').set(plain), 403, 'FORBIDDEN');
      const full = await make(admin.auth, { name: 'full', scopes: ['read', 'write', 'admin'] });
      expect(
        (
          await request(t.server)
            .get('/api/v1/users')
            .set({ 'X-API-Key': full.body.key as string })
        ).status,
      ).toBe(200);
    });

    it('expiry: a key stops working at expires_at; a past expiry is refused', async () => {
      const u = await registerAndLogin(t.server);
      const soon = new Date(Date.now() + 1500).toISOString();
      const created = await request(t.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'brief', expires_at: soon });
      expect(created.body.expires_at).toBe(soon);
      expect((await me({ 'X-API-Key': created.body.key })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1600));
      expectProblem(await me({ 'X-API-Key': created.body.key }), 401, 'UNAUTHORIZED');
      expect((await request(t.server).get('/api/v1/auth/api-keys').set(u.auth)).body).toEqual([]);
      const past = await request(t.server)
        .post('/api/v1/auth/api-keys')
        .set(u.auth)
        .send({ name: 'old', expires_at: '2020-01-01T00:00:00Z' });
      expectProblem(past, 400, 'VALIDATION_ERROR', 'expires_at must be in the future.');
    });

    it('keeps keys private: another user cannot revoke them', async () => {
      const a = await registerAndLogin(t.server);
      const b = await registerAndLogin(t.server);
      const created = await request(t.server).post('/api/v1/auth/api-keys').set(a.auth).send({ name: 'mine' });
      expectProblem(await request(t.server).delete(`/api/v1/auth/api-keys/${created.body.id}`).set(b.auth), 404, 'NOT_FOUND');
      expect((await me({ 'X-API-Key': created.body.key })).status).toBe(200);
    });
  });

  describe('profile', () => {
    it('reads and updates names, phone, birth date and picture; null clears', async () => {
      const u = await registerAndLogin(t.server);
      const patch = await request(t.server).patch('/api/v1/users/me').set(u.auth).send({
        first_name: 'Ada',
        last_name: 'Lovelace',
        phone: '+44 20 7946 0958',
        birth_date: '1990-12-10',
        picture_url: 'https://img.example/ada.png',
      });
      expect(patch.status).toBe(200);
      expect(patch.body).toMatchObject({
        first_name: 'Ada',
        last_name: 'Lovelace',
        phone: '+44 20 7946 0958',
        birth_date: '1990-12-10',
        picture_url: 'https://img.example/ada.png',
      });
      const cleared = await request(t.server).patch('/api/v1/users/me').set(u.auth).send({ phone: null });
      expect(cleared.body.phone).toBeNull();
      expect((await request(t.server).get('/api/v1/users/me').set(u.auth)).body.first_name).toBe('Ada');
    });

    it('validates birth date (past ISO date), phone, picture URL and e-mail uniqueness', async () => {
      const u = await registerAndLogin(t.server);
      const other = await registerAndLogin(t.server);
      const future = new Date(Date.now() + 86400000 * 2).toISOString().slice(0, 10);
      for (const body of [
        { birth_date: future },
        { birth_date: '2023-02-30' },
        { birth_date: '10/12/1990' },
        { phone: 'call me' },
        { picture_url: 'javascript:alert(1)' },
        { role: 'admin' },
      ]) {
        expectProblem(await request(t.server).patch('/api/v1/users/me').set(u.auth).send(body), 400, 'VALIDATION_ERROR');
      }
      expectProblem(
        await request(t.server)
          .patch('/api/v1/users/me')
          .set(u.auth)
          .send({ email: `${other.username}@example.com` }),
        409,
        'CONFLICT',
        'A user with this email already exists.',
      );
    });

    it('changes the password only with the current one', async () => {
      const u = await registerAndLogin(t.server);
      expectProblem(
        await request(t.server)
          .post('/api/v1/users/me/password')
          .set(u.auth)
          .send({ current_password: 'wrong-one', new_password: 'brand-new-pass' }),
        401,
        'UNAUTHORIZED',
        'Current password is incorrect',
      );
      expectProblem(
        await request(t.server).post('/api/v1/users/me/password').set(u.auth).send({ current_password: u.password, new_password: 'short' }),
        400,
        'VALIDATION_ERROR',
      );
      const key = (await request(t.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'old' })).body.key as string;
      const changed = await request(t.server)
        .post('/api/v1/users/me/password')
        .set(u.auth)
        .send({ current_password: u.password, new_password: 'brand-new-pass' });
      expect(changed.status, JSON.stringify(changed.body)).toBe(200);
      await login(t.server, u.username, 'brand-new-pass');
      // Every credential issued before is dead at once: refresh token, access token, API key. The new pair works.
      expectProblem(await request(t.server).post('/api/v1/auth/refresh').send({ refresh_token: u.refresh }), 401, 'UNAUTHORIZED');
      expectProblem(await request(t.server).get('/api/v1/auth/me').set(u.auth), 401, 'UNAUTHORIZED');
      expectProblem(await request(t.server).get('/api/v1/auth/me').set('X-API-Key', key), 401, 'UNAUTHORIZED');
      const me = await request(t.server).get('/api/v1/auth/me').set('Authorization', `Bearer ${changed.body.access_token}`);
      expect(me.body.username).toBe(u.username);
    });

    it('keeps API keys through a password change only when asked to', async () => {
      const u = await registerAndLogin(t.server);
      const key = (await request(t.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'kept' })).body.key as string;
      const changed = await request(t.server)
        .post('/api/v1/users/me/password')
        .set(u.auth)
        .send({ current_password: u.password, new_password: 'brand-new-pass', keep_api_keys: true });
      expect(changed.status).toBe(200);
      expect((await request(t.server).get('/api/v1/auth/me').set('X-API-Key', key)).body.username).toBe(u.username);
      expectProblem(await request(t.server).get('/api/v1/auth/me').set(u.auth), 401, 'UNAUTHORIZED');
    });
  });

  describe('admin', () => {
    it('lists and searches users, changes roles, and disabling stops tokens and API keys at once', async () => {
      const admin = await login(t.server, adminName, 'admin-password-1');
      const u = await registerAndLogin(t.server, 'findme');
      const key = (await request(t.server).post('/api/v1/auth/api-keys').set(u.auth).send({ name: 'k' })).body.key as string;
      expectProblem(await request(t.server).get('/api/v1/users').set(u.auth), 403, 'FORBIDDEN');
      expectProblem(await request(t.server).patch(`/api/v1/users/${u.userId}`).set(u.auth).send({ role: 'admin' }), 403, 'FORBIDDEN');
      const found = await request(t.server).get(`/api/v1/users?search=${u.username.toUpperCase()}&page_size=5`).set(admin.auth);
      expect(found.status).toBe(200);
      expect(found.body.items.map((x: { username: string }) => x.username)).toEqual([u.username]);
      const promoted = await request(t.server).patch(`/api/v1/users/${u.userId}`).set(admin.auth).send({ role: 'admin' });
      expect(promoted.body.role).toBe('admin');
      expect((await request(t.server).get('/api/v1/users').set(u.auth)).status).toBe(200);
      const disabled = await request(t.server).patch(`/api/v1/users/${u.userId}`).set(admin.auth).send({ disabled: true });
      expect(disabled.body.disabled).toBe(true);
      expectProblem(await me(u.auth), 401, 'UNAUTHORIZED', 'Not authenticated');
      expectProblem(await me({ 'X-API-Key': key }), 401, 'UNAUTHORIZED', 'Not authenticated');
      expectProblem(
        await request(t.server).post('/api/v1/auth/login').send({ username: u.username, password: u.password }),
        401,
        'UNAUTHORIZED',
      );
      expectProblem(
        await request(t.server).patch(`/api/v1/users/${admin.userId}`).set(admin.auth).send({ disabled: true }),
        400,
        'VALIDATION_ERROR',
      );
      expectProblem(
        await request(t.server).patch('/api/v1/users/00000000-0000-4000-8000-000000000000').set(admin.auth).send({ role: 'user' }),
        404,
        'NOT_FOUND',
      );
    });
  });

  describe('Google sign-in (against a local fake provider)', () => {
    /** The browser's sign-in: start (cookie set), the provider, the callback with the cookie (or `cookie` instead). */
    async function signInWithGoogle(opts: { auth?: Record<string, string>; cookie?: string } = {}): Promise<URL> {
      let location: string;
      let setCookie: string[];
      if (opts.auth) {
        const linking = await request(t.server).post('/api/v1/auth/google/link').set(opts.auth);
        expect(linking.status, JSON.stringify(linking.body)).toBe(200);
        location = linking.body.authorization_url as string;
        setCookie = linking.headers['set-cookie'] as unknown as string[];
      } else {
        const start = await request(t.server).get('/api/v1/auth/google');
        expect(start.status).toBe(302);
        location = start.headers.location!;
        setCookie = start.headers['set-cookie'] as unknown as string[];
      }
      const cookie = setCookie.find((c) => c.startsWith('aperture_google_oauth='))!;
      expect(cookie).toMatch(/; Path=\/api\/v1\/auth\/google;.*HttpOnly; SameSite=Lax$/);
      const authorize = new URL(location);
      expect(authorize.origin + authorize.pathname).toBe(`${google.base}/authorize`);
      expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
      // The "browser" visits the provider, which redirects back to our callback.
      const provider = await fetch(authorize, { redirect: 'manual' });
      expect(provider.status).toBe(302);
      const back = new URL(provider.headers.get('location')!);
      const done = await request(t.server)
        .get(`${back.pathname}${back.search}`)
        .set('Cookie', opts.cookie ?? cookie.split(';')[0]!);
      expect(done.status).toBe(302);
      return new URL(done.headers.location!);
    }
    const fragmentOf = (u: URL): URLSearchParams => new URLSearchParams(u.hash.slice(1));

    it('never links by e-mail on its own: an existing account links Google from inside, then signs in with it', async () => {
      const u = await registerAndLogin(t.server, 'gmail');
      google.nextUser = {
        sub: `sub-${u.username}`,
        email: `${u.username.toUpperCase()}@example.com`,
        email_verified: true,
        name: 'G User',
      };
      // Someone registered this e-mail; that proves nothing about who owns it, so Google sign-in refuses to take it over.
      const refused = fragmentOf(await signInWithGoogle());
      expect(refused.get('error')).toBe('account_exists');
      expect(refused.get('access_token')).toBeNull();
      // The signed-in owner links it.
      const landing = await signInWithGoogle({ auth: u.auth });
      expect(landing.origin + landing.pathname).toBe('https://app.example/signed-in');
      expect(landing.search).toBe('');
      const frag = fragmentOf(landing);
      expect(frag.get('token_type')).toBe('bearer');
      const who = await me({ Authorization: `Bearer ${frag.get('access_token')}` });
      expect(who.body).toMatchObject({ username: u.username, google_linked: true });
      // From now on: found by the linked Google id.
      const again = fragmentOf(await signInWithGoogle());
      expect((await me({ Authorization: `Bearer ${again.get('access_token')}` })).body.username).toBe(u.username);
      expect(
        (
          await request(t.server)
            .post('/api/v1/auth/refresh')
            .send({ refresh_token: again.get('refresh_token') })
        ).status,
      ).toBe(200);
    });

    it("refuses a callback opened in another browser (no cookie, or another sign-in's cookie): no login CSRF", async () => {
      google.nextUser = { sub: `sub-csrf-${Date.now()}`, email: `csrf${Date.now()}@gmail.example`, email_verified: true, name: 'C' };
      for (const cookie of ['', 'aperture_google_oauth=someone-elses-cookie']) {
        const frag = fragmentOf(await signInWithGoogle({ cookie }));
        expect(frag.get('error')).toBe('invalid_state');
        expect(frag.get('access_token')).toBeNull();
      }
    });

    it('creates a new user for an unknown Google account', async () => {
      google.nextUser = {
        sub: `sub-new-${Date.now()}`,
        email: `newcomer${Date.now()}@gmail.example`,
        email_verified: true,
        name: 'New Comer',
      };
      const frag = fragmentOf(await signInWithGoogle());
      const who = await me({ Authorization: `Bearer ${frag.get('access_token')}` });
      expect(who.body).toMatchObject({ email: google.nextUser.email, full_name: 'New Comer', google_linked: true, role: 'user' });
    });

    it('does not link by an unverified e-mail: a new account without that e-mail', async () => {
      const u = await registerAndLogin(t.server, 'unverified');
      google.nextUser = { sub: `sub-unv-${u.username}`, email: `${u.username}@example.com`, email_verified: false, name: 'X' };
      const frag = fragmentOf(await signInWithGoogle());
      const who = await me({ Authorization: `Bearer ${frag.get('access_token')}` });
      expect(who.body.username).not.toBe(u.username);
      expect(who.body.email).toBeNull();
    });

    it('redirects with an error, never a 500, for a bad state, a refused consent or a code the provider rejects', async () => {
      const badState = await request(t.server).get('/api/v1/auth/google/callback?code=abc&state=forged');
      expect(badState.status).toBe(302);
      expect(new URLSearchParams(new URL(badState.headers.location!).hash.slice(1)).get('error')).toBe('invalid_state');
      const denied = await request(t.server).get('/api/v1/auth/google/callback?error=access_denied&state=x');
      expect(new URLSearchParams(new URL(denied.headers.location!).hash.slice(1)).get('error')).toBe('access_denied');
      // A caller-supplied error text never reaches the front end.
      const planted = await request(t.server).get(
        `/api/v1/auth/google/callback?error=${encodeURIComponent('<img src=x onerror=alert(1)>')}`,
      );
      const fragment = new URLSearchParams(new URL(planted.headers.location!).hash.slice(1));
      expect([fragment.get('error'), fragment.get('error_description')]).toEqual(['access_denied', 'Google sign-in was not completed.']);
      // A valid state but a code the provider never issued.
      const started = await request(t.server).get('/api/v1/auth/google');
      const start = new URL(started.headers.location!);
      const browser = (started.headers['set-cookie'] as unknown as string[])[0]!.split(';')[0]!;
      const bogus = await request(t.server)
        .get(`/api/v1/auth/google/callback?code=never-issued&state=${start.searchParams.get('state')}`)
        .set('Cookie', browser);
      const refused = new URLSearchParams(new URL(bogus.headers.location!).hash.slice(1));
      expect([refused.get('error'), refused.get('error_description')]).toEqual([
        'invalid_grant',
        'Google did not accept the sign-in code; please start again.',
      ]);
      // The state is single-use.
      const reuse = await request(t.server)
        .get(`/api/v1/auth/google/callback?code=never-issued&state=${start.searchParams.get('state')}`)
        .set('Cookie', browser);
      expect(new URLSearchParams(new URL(reuse.headers.location!).hash.slice(1)).get('error')).toBe('invalid_state');
    });
  });
});

describe('brute-force protection', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(
      testEnv('bruteforce', {
        BRUTE_FORCE_MAX_FAILURES: '3',
        BRUTE_FORCE_MAX_FAILURES_PER_IP: '12',
        BAD_CREDENTIALS_PER_MINUTE: '5',
        STATION_PASSWORD,
        TRUST_PROXY: '1',
      }),
    );
  });
  afterAll(() => t?.close());

  it('locks a username after repeated failures (even for the right password), with Retry-After', async () => {
    const u = await registerAndLogin(t.server);
    for (let i = 0; i < 3; i++) {
      expectProblem(
        await request(t.server).post('/api/v1/auth/login').send({ username: u.username, password: 'wrong-guess' }),
        401,
        'UNAUTHORIZED',
      );
    }
    const locked = await request(t.server).post('/api/v1/auth/login').send({ username: u.username, password: u.password });
    expectProblem(locked, 429, 'RATE_LIMITED', /Too many failed sign-in attempts/);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The form endpoint shares the same protection.
    expectProblem(
      await request(t.server).post('/api/v1/auth/token').type('form').send({ username: u.username, password: u.password }),
      429,
      'RATE_LIMITED',
    );
    await new Promise((r) => setTimeout(r, 1100));
    expect((await request(t.server).post('/api/v1/auth/login').send({ username: u.username, password: u.password })).status).toBe(200);
  });

  it('protects the current-password check of a password change', async () => {
    const u = await registerAndLogin(t.server);
    for (let i = 0; i < 3; i++) {
      expectProblem(
        await request(t.server)
          .post('/api/v1/users/me/password')
          .set(u.auth)
          .send({ current_password: 'guess-guess', new_password: 'whatever-123' }),
        401,
        'UNAUTHORIZED',
      );
    }
    expectProblem(
      await request(t.server)
        .post('/api/v1/users/me/password')
        .set(u.auth)
        .send({ current_password: u.password, new_password: 'whatever-123' }),
      429,
      'RATE_LIMITED',
    );
  });

  it('protects the station password too', async () => {
    for (let i = 0; i < 3; i++) await request(t.server).post('/api/v1/auth/token').type('form').send({ password: 'guess' });
    expectProblem(
      await request(t.server).post('/api/v1/auth/token').type('form').send({ password: STATION_PASSWORD }),
      429,
      'RATE_LIMITED',
    );
  });

  // TRUST_PROXY=1: the test plays the one trusted proxy, whose X-Forwarded-For entry (the last) is the client.
  const from = (ip: string) => ({ 'X-Forwarded-For': ip });
  const loginFrom = (ip: string, username: string, password: string) =>
    request(t.server).post('/api/v1/auth/login').set(from(ip)).send({ username, password });

  it('locks a username only for the address that guessed: the owner elsewhere still signs in', async () => {
    const u = await registerAndLogin(t.server);
    for (let i = 0; i < 3; i++) expectProblem(await loginFrom('203.0.113.10', u.username, 'wrong-guess'), 401, 'UNAUTHORIZED');
    expectProblem(await loginFrom('203.0.113.10', u.username, u.password), 429, 'RATE_LIMITED');
    expect((await loginFrom('203.0.113.11', u.username, u.password)).status).toBe(200);
    // The shared station likewise: one remote address guessing cannot lock the booth out.
    for (let i = 0; i < 3; i++)
      await request(t.server).post('/api/v1/auth/token').set(from('203.0.113.12')).type('form').send({ password: 'x' });
    const station = await request(t.server)
      .post('/api/v1/auth/token')
      .set(from('203.0.113.13'))
      .type('form')
      .send({ password: STATION_PASSWORD });
    expect(station.status).toBe(200);
  });

  it('counts every guess before checking it: of 10 parallel guesses, only the first 3 are checked', async () => {
    const u = await registerAndLogin(t.server);
    const answers = await Promise.all(Array.from({ length: 10 }, () => loginFrom('203.0.113.20', u.username, 'wrong-guess')));
    expect(answers.filter((r) => r.status === 401)).toHaveLength(3);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(7);
  });

  it('with a hop count, a client rotating X-Forwarded-For cannot escape: only the proxy-added entry counts', async () => {
    const u = await registerAndLogin(t.server);
    for (let i = 0; i < 3; i++) {
      expectProblem(await loginFrom(`10.9.9.${i}, 198.51.100.7`, u.username, 'wrong-guess'), 401, 'UNAUTHORIZED');
    }
    expectProblem(await loginFrom('10.9.9.99, 198.51.100.7', u.username, u.password), 429, 'RATE_LIMITED');
  });

  it('limits bad bearer tokens and API keys per address before looking them up; others are unaffected', async () => {
    const u = await registerAndLogin(t.server);
    const flood = (ip: string, i: number) =>
      request(t.server)
        .get('/api/v1/auth/me')
        .set(from(ip))
        .set(i % 2 ? { 'X-API-Key': `apk_made_up_${i}` } : { Authorization: `Bearer made.up.${i}` });
    for (let i = 0; i < 5; i++) expectProblem(await flood('203.0.113.30', i), 401, 'UNAUTHORIZED');
    const limited = await flood('203.0.113.30', 5);
    expectProblem(limited, 429, 'RATE_LIMITED', /bad credentials/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Even a good token from that address waits; another address, and requests without credentials, are not limited.
    expectProblem(await request(t.server).get('/api/v1/auth/me').set(from('203.0.113.30')).set(u.auth), 429, 'RATE_LIMITED');
    expect((await request(t.server).get('/api/v1/auth/me').set(from('203.0.113.31')).set(u.auth)).status).toBe(200);
    expectProblem(await request(t.server).get('/api/v1/auth/me').set(from('203.0.113.32')), 401, 'UNAUTHORIZED');
  });

  it('locks a client address guessing across many usernames (a higher, per-IP limit)', async () => {
    // 9 failures so far from this address (three tests above); 3 more reach the per-IP limit of 12.
    for (let i = 0; i < 3; i++)
      await request(t.server)
        .post('/api/v1/auth/login')
        .send({ username: uniqueName('spray'), password: 'guess-guess' });
    const u = await registerAndLogin(t.server).catch((e: Error) => e);
    expect(u).toBeInstanceOf(Error); // even a correct login from this address now waits
    expectProblem(
      await request(t.server)
        .post('/api/v1/auth/login')
        .send({ username: uniqueName('spray'), password: 'x-x-x-x-x' }),
      429,
      'RATE_LIMITED',
    );
  });
});
