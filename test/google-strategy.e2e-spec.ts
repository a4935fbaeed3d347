import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { FakeGoogle } from './support/fake-google.js';
import { expectProblem, registerAndLogin } from './support/http.js';

// The `google` passport strategy beyond the sign-in flows of accounts.e2e-spec.ts: registered only where Google
// sign-in is configured, one per app, and a callback passport-oauth2 would misread refused before it runs.

const googleEnv = (google: FakeGoogle): Record<string, string> => ({
  GOOGLE_CLIENT_ID: google.clientId,
  GOOGLE_CLIENT_SECRET: google.clientSecret,
  GOOGLE_REDIRECT_URI: 'http://127.0.0.1:3000/api/v1/auth/google/callback',
  GOOGLE_AUTH_URL: `${google.base}/authorize`,
  GOOGLE_TOKEN_URL: `${google.base}/token`,
  GOOGLE_USERINFO_URL: `${google.base}/userinfo`,
  FRONTEND_URL: 'https://app.example/signed-in',
});

const fragmentOf = (location: string | undefined): URLSearchParams => new URLSearchParams(new URL(location!).hash.slice(1));

describe('google strategy: not configured', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(testEnv('google-off'));
  });
  afterAll(() => t?.close());

  it('answers 404 problem+json on every Google route, sets no cookie and never reaches a strategy', async () => {
    const detail = 'Google sign-in is not configured on this server.';
    const start = await request(t.server).get('/api/v1/auth/google');
    expectProblem(start, 404, 'NOT_FOUND', detail);
    expect(start.headers['set-cookie']).toBeUndefined();
    expectProblem(await request(t.server).get('/api/v1/auth/google/callback?code=abc&state=def'), 404, 'NOT_FOUND', detail);
    const u = await registerAndLogin(t.server, 'gofflink');
    const link = await request(t.server).post('/api/v1/auth/google/link').set(u.auth);
    expectProblem(link, 404, 'NOT_FOUND', detail);
    expect(link.headers['set-cookie']).toBeUndefined();
  });
});

describe('google strategy: two apps in one process, each its own client', () => {
  const googleA = new FakeGoogle('client-a', 'secret-a');
  const googleB = new FakeGoogle('client-b', 'secret-b');
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    await googleA.start();
    await googleB.start();
    a = await createTestApp(testEnv('google-a', googleEnv(googleA)));
    b = await createTestApp(testEnv('google-b', googleEnv(googleB)));
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await googleA.stop();
    await googleB.stop();
  });

  it('each app sends the browser to its own provider with its own client id, S256 PKCE and a fresh state', async () => {
    for (const [app, google] of [
      [a, googleA],
      [b, googleB],
    ] as const) {
      const one = await request(app.server).get('/api/v1/auth/google');
      const two = await request(app.server).get('/api/v1/auth/google');
      expect(one.status).toBe(302);
      const url = new URL(one.headers.location!);
      const other = new URL(two.headers.location!);
      expect(url.origin + url.pathname).toBe(`${google.base}/authorize`);
      expect(url.searchParams.get('client_id')).toBe(google.clientId);
      expect(url.searchParams.get('redirect_uri')).toBe('http://127.0.0.1:3000/api/v1/auth/google/callback');
      expect(url.searchParams.get('scope')).toBe('openid email profile');
      expect(url.searchParams.get('prompt')).toBe('select_account');
      expect(url.searchParams.get('code_challenge_method')).toBe('S256');
      expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(url.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(other.searchParams.get('state')).not.toBe(url.searchParams.get('state'));
      expect(other.searchParams.get('code_challenge')).not.toBe(url.searchParams.get('code_challenge'));
    }
  });

  it('a state started on one app does not complete on the other (each keeps its own)', async () => {
    googleA.nextUser = { sub: `sub-cross-${Date.now()}`, email: `cross${Date.now()}@gmail.example`, email_verified: true, name: 'X' };
    const start = await request(a.server).get('/api/v1/auth/google');
    const cookie = (start.headers['set-cookie'] as unknown as string[])[0]!.split(';')[0]!;
    const provider = await fetch(start.headers.location!, { redirect: 'manual' });
    const back = new URL(provider.headers.get('location')!);
    // The other app's namespace in Redis has no such state: refused there, and it still completes where it started.
    const elsewhere = await request(b.server).get(`${back.pathname}${back.search}`).set('Cookie', cookie);
    expect(fragmentOf(elsewhere.headers.location).get('error')).toBe('invalid_state');
    const home = await request(a.server).get(`${back.pathname}${back.search}`).set('Cookie', cookie);
    expect(fragmentOf(home.headers.location).get('access_token')).toBeTruthy();
    expect(home.headers['set-cookie']?.[0]).toMatch(/^aperture_google_oauth=;/); // the binding cookie is cleared
  });

  it('refuses a callback whose code or state is repeated or empty with a fixed text, before the strategy runs', async () => {
    const before = googleA.requests.length;
    for (const query of ['code=a&code=b&state=s', 'code=a&state=s&state=t', 'code=&state=s', 'state=s', 'code=a']) {
      const res = await request(a.server).get(`/api/v1/auth/google/callback?${query}`);
      expect(res.status, query).toBe(302);
      const f = fragmentOf(res.headers.location);
      expect([f.get('error'), f.get('error_description')], query).toEqual([
        'invalid_request',
        'The callback is missing its code or state.',
      ]);
    }
    // Without a code passport-oauth2 would have started a new sign-in; nothing reached the provider either way.
    expect(googleA.requests.length).toBe(before);
  });
});
