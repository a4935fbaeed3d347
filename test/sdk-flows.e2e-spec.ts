import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAperture, fileFrom, multipart, unwrap, type Aperture } from '../packages/sdk/src/index.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';

/**
 * Every flow a client runs, through the SDK only (no supertest, no casts): the real server on a real port, the worker in the
 * same process. A flow that needs a cast means the contract is wrong.
 */
describe('flows through the SDK', () => {
  let t: TestApp;
  let baseUrl: string;
  const username = `sdk_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(6).toString('hex')}`;
  let ap: Aperture;

  beforeAll(async () => {
    t = await createTestApp(testEnv('sdkflows'), { worker: true });
    await t.app.listen(0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(() => t?.close());

  it('accounts: register, login, me, refresh (and a 401 renewed once), an API key', async () => {
    const anon = createAperture({ baseUrl });
    const user = unwrap(await anon.api.POST('/api/v1/auth/register', { body: { username, email: `${username}@example.com`, password } }));
    expect(user.username).toBe(username);

    let renewals = 0;
    ap = createAperture({ baseUrl, onTokens: () => renewals++ });
    const tokens = await ap.login(username, password);
    expect(tokens.token_type).toBe('bearer');
    expect(unwrap(await ap.api.GET('/api/v1/auth/me')).username).toBe(username);

    const refreshed = await ap.refresh();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);

    // A stale access token with a valid refresh token: the 401 is renewed once and the request sent again.
    const stale = createAperture({ baseUrl, credentials: { accessToken: 'not-a-jwt', refreshToken: refreshed.refresh_token } });
    expect(unwrap(await stale.api.GET('/api/v1/auth/me')).username).toBe(username);
    ap = stale;
    expect(renewals).toBe(2);

    const key = unwrap(await ap.api.POST('/api/v1/auth/api-keys', { body: { name: 'sdk test' } }));
    const byKey = createAperture({ baseUrl, credentials: { apiKey: key.key } });
    expect(unwrap(await byKey.api.GET('/api/v1/auth/me')).username).toBe(username);
  });

  it('images: upload from a path and from bytes, list, get, delete', async () => {
    const up = unwrap(
      await ap.api.POST('/api/v1/images', {
        body: { images: [await fileFrom(resolve(fixtures, 'primitives/greenhouse-09-800x600.jpg'))] },
        bodySerializer: multipart,
      }),
    );
    expect(up.data).toHaveLength(1);
    const image = up.data[0]!;
    const got = unwrap(await ap.api.GET('/api/v1/images/{id}', { params: { path: { id: image.id } } }));
    expect(got.id).toBe(image.id);
    const list = unwrap(await ap.api.GET('/api/v1/images', {}));
    expect(list.items.map((i) => i.id)).toContain(image.id);
    const bad = await ap.api.POST('/api/v1/images', {
      body: { images: [await fileFrom(new Uint8Array([1, 2, 3]), 'x.jpg')] },
      bodySerializer: multipart,
    });
    expect(bad.response.status).toBe(400);
    expect(bad.error?.code).toBe('IMAGE_VALIDATION_ERROR');
  });

  it('prediction task: scene and primitives with their oriented box, typed by the task type', async () => {
    const created = await ap.api.POST('/api/v1/tasks', {
      body: { type: 'prediction', image: await fileFrom(resolve(fixtures, 'primitives/greenhouse-09-800x600.jpg')) },
      bodySerializer: multipart,
    });
    const done = await ap.settleTask(created);
    if (done.type !== 'prediction' || !done.result) throw new Error(`expected a prediction result, got ${done.type}`);
    expect(done.result.primitives.length).toBeGreaterThan(0);
    expect(done.result.primitives[0]!.corners).toHaveLength(4);
    expect(typeof done.result.image_class).toBe('string');
  });

  it('fragment task with its ZIP: calibrated sizes and the files it lists', async () => {
    const created = await ap.api.POST('/api/v1/tasks', {
      body: {
        type: 'fragments',
        real_radius: 20,
        unit: 'mm',
        image: await fileFrom(resolve(fixtures, 'fragments/fragments-00-640x480.png')),
      },
      bodySerializer: multipart,
    });
    const done = await ap.settleTask(created);
    if (done.type !== 'fragments' || !done.result) throw new Error(`expected a fragments result, got ${done.type}`);
    expect(done.result.calibrated).toBe(true);
    expect(done.result.d50).toBeGreaterThan(0);
    const task = unwrap(await ap.api.GET('/api/v1/tasks/{id}', { params: { path: { id: done.id } } }));
    const zip = await ap.api.GET('/api/v1/tasks/{id}/artifacts.zip', { params: { path: { id: done.id } }, parseAs: 'arrayBuffer' });
    expect(zip.response.status).toBe(200);
    const files = Object.keys(unzipSync(new Uint8Array(zip.data!))).sort();
    expect(files).toEqual(task.artifacts.map((a) => a.name).sort());
  });

  it('Prefer: wait: the task create answers 200 with the typed result, and the SDK sends nothing more', async () => {
    const tokens = ap.tokens();
    if (!tokens) throw new Error('signed in with tokens above');
    const sent: string[] = [];
    const waiting = createAperture({
      baseUrl,
      credentials: { accessToken: tokens.accessToken },
      preferWait: 60,
      fetch: (req) => {
        sent.push(`${req.method} ${new URL(req.url).pathname} ${req.headers.get('Prefer') ?? '-'}`);
        return globalThis.fetch(req);
      },
    });
    const created = await waiting.api.POST('/api/v1/tasks', {
      body: { type: 'prediction', image: await fileFrom(resolve(fixtures, 'primitives/greenhouse-09-800x600.jpg')) },
      bodySerializer: multipart,
    });
    expect(created.response.status).toBe(200);
    expect(created.response.headers.get('Preference-Applied')).toBe('wait=60');
    const done = await waiting.settleTask(created);
    expect(sent).toEqual(['POST /api/v1/tasks wait=60']);
    expect(done.status).toBe('completed');
    if (done.type !== 'prediction' || !done.result) throw new Error(`expected a prediction result, got ${done.type}`);
    expect(done.result.primitives.length).toBeGreaterThan(0);
    expect(done.result.primitives[0]!.corners).toHaveLength(4);
  });

  it('Prefer: wait that runs out: the 202 answer, then the SDK waits on the task result', async () => {
    const sent: string[] = [];
    const tokens = ap.tokens();
    if (!tokens) throw new Error('signed in with tokens above');
    const client = createAperture({
      baseUrl,
      credentials: { accessToken: tokens.accessToken },
      fetch: (req) => {
        sent.push(`${req.method} ${new URL(req.url).pathname}`);
        return globalThis.fetch(req);
      },
    });
    // wait=0: the job is queued when the wait is judged, so the answer is the usual 202.
    const created = await client.api.POST('/api/v1/tasks', {
      body: {
        type: 'fragments',
        real_radius: 20,
        unit: 'mm',
        image: await fileFrom(resolve(fixtures, 'fragments/fragments-00-640x480.png')),
      },
      bodySerializer: multipart,
      headers: { Prefer: 'wait=0' },
    });
    expect(created.response.status).toBe(202);
    expect(created.response.headers.get('Preference-Applied')).toBe('wait=0');
    const id = unwrap(created).id;
    const done = await client.settleTask(created);
    expect(done.id).toBe(id);
    expect(sent[0]).toBe('POST /api/v1/tasks');
    expect(sent.slice(1).length).toBeGreaterThan(0);
    expect(sent.slice(1).every((s) => s === `GET /api/v1/tasks/${id}/result`)).toBe(true);
    if (done.type !== 'fragments' || !done.result) throw new Error(`expected a fragments result, got ${done.type}`);
    expect(done.result.d50).toBeGreaterThan(0);
  });
});
