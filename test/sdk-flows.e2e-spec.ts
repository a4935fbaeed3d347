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
const ADMIN_PASSWORD = `admin-${randomBytes(6).toString('hex')}`;

describe('flows through the SDK', () => {
  let t: TestApp;
  let baseUrl: string;
  const username = `sdk_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(6).toString('hex')}`;
  let ap: Aperture;
  /** The same user, with every job-creating POST held until its jobs are final (Prefer: wait=60). */
  const waitingClient = (): Aperture => {
    const tokens = ap.tokens();
    if (!tokens) throw new Error('signed in with tokens first');
    return createAperture({ baseUrl, credentials: { accessToken: tokens.accessToken }, preferWait: 60 });
  };

  beforeAll(async () => {
    t = await createTestApp(testEnv('sdkflows', { ADMIN_USERNAME: 'sdk_admin', ADMIN_PASSWORD: ADMIN_PASSWORD }), { worker: true });
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

  it('project: create, upload, start (held until done), results, start-rest only for the new image', async () => {
    const waiting = waitingClient();
    const project = unwrap(await ap.api.POST('/api/v1/projects', { body: { name: 'sdk shelves', description: 'through the SDK' } }));
    expect(project.status).toBe('PENDING');
    const upload = async (files: string[]) =>
      unwrap(
        await ap.api.POST('/api/v1/projects/{id}/images', {
          params: { path: { id: project.id } },
          body: { images: await Promise.all(files.map((f) => fileFrom(resolve(fixtures, 'primitives', f)))) },
          bodySerializer: multipart,
        }),
      );
    const first = await upload(['greenhouse-09-800x600.jpg', 'office-00-800x600.jpg']);
    expect(first.data).toHaveLength(2);

    const start = await waiting.api.POST('/api/v1/projects/{id}/start', { params: { path: { id: project.id } } });
    expect(start.response.status).toBe(200);
    const started = unwrap(start);
    // The body is the 200 or the 202 schema (openapi-fetch types every 2xx); the held answer is the one with results.
    if (!('results' in started)) throw new Error('expected the 200 answer of Prefer: wait, with the results');
    expect(started.queued).toBe(2);
    expect(started.results.map((r) => r.image_id).sort()).toEqual(first.data.map((d) => d.id).sort());
    const results = unwrap(await ap.api.GET('/api/v1/projects/{id}/results', { params: { path: { id: project.id } } }));
    expect(results).toHaveLength(2);
    expect(results.every((r) => Array.isArray(r.detections))).toBe(true);
    const one = unwrap(
      await ap.api.GET('/api/v1/projects/{id}/results/{imageId}', { params: { path: { id: project.id, imageId: results[0]!.image_id } } }),
    );
    expect(one.image_id).toBe(results[0]!.image_id);

    const second = await upload(['livingroom-03-800x600.jpg']);
    const rest = await waiting.api.POST('/api/v1/projects/{id}/start-rest', { params: { path: { id: project.id } } });
    expect(rest.response.status).toBe(200);
    const restDone = unwrap(rest);
    expect(restDone.image_ids).toEqual([second.data[0]!.id]);
    const after = unwrap(await ap.api.GET('/api/v1/projects/{id}/results', { params: { path: { id: project.id } } }));
    expect(after).toHaveLength(3);
  });

  it('QR batch: created and rendered within Prefer: wait, then its PDF', async () => {
    const created = await waitingClient().api.POST('/api/v1/qr/batches', { body: { n: 3 } });
    expect(created.response.status).toBe(200);
    const batch = unwrap(created);
    expect(batch.status).toBe('completed');
    expect(batch.pdf_url).not.toBeNull();
    const pdf = await ap.api.GET('/api/v1/qr/batches/{id}/pdf', { params: { path: { id: batch.id } }, parseAs: 'arrayBuffer' });
    expect(pdf.response.status).toBe(200);
    expect(pdf.response.headers.get('content-type')).toBe('application/pdf');
    expect(new TextDecoder().decode(new Uint8Array(pdf.data!).subarray(0, 5))).toBe('%PDF-');
  });

  it('models as admin: list, stats, load and unload on the worker; a user may not load', async () => {
    const admin = createAperture({ baseUrl, credentials: { username: 'sdk_admin', password: ADMIN_PASSWORD } });
    const models = unwrap(await admin.api.GET('/api/v1/models'));
    expect(models.map((m) => m.name)).toContain('scene-gru');
    const stats = unwrap(await admin.api.GET('/api/v1/models/{name}/stats', { params: { path: { name: 'scene-gru' } } }));
    expect(stats.name).toBe('scene-gru');
    const load = await admin.api.POST('/api/v1/models/{name}/load', { params: { path: { name: 'scene-gru' } } });
    expect(load.response.status).toBe(200);
    expect(unwrap(load)).toMatchObject({ name: 'scene-gru', op: 'load', settled: true });
    const unload = unwrap(await admin.api.POST('/api/v1/models/{name}/unload', { params: { path: { name: 'scene-gru' } } }));
    expect(unload.op).toBe('unload');
    const refused = await ap.api.POST('/api/v1/models/{name}/load', { params: { path: { name: 'scene-gru' } } });
    expect(refused.response.status).toBe(403);
    expect(refused.error?.code).toBe('FORBIDDEN');
  });
});
