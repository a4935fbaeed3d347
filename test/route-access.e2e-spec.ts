import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { expectProblem, type LoggedIn, login, registerAndLogin, uniqueName } from './support/http.js';

/**
 * The access matrix, built from openapi.yaml so that every operation is in it the day it lands: the station principal
 * gets 403 outside the booth routes, a non-admin 403 on admin routes, and user B a 404 (or the 403 of a role check) on
 * every operation that names one of user A's objects. An operation with a path parameter that the table below does not
 * place fails the test: a new route must say how its objects are owned.
 */

interface Operation {
  security?: unknown[];
  responses?: Record<string, { description?: string }>;
}
const doc = parse(readFileSync(resolve(import.meta.dirname, '../openapi.yaml'), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>;
};
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
  Object.entries(ops)
    .filter(([m]) => METHODS.includes(m))
    .map(([method, op]) => ({ method, path, op, isPublic: !op.security || op.security.length === 0 })),
);

/** What user B gets on an operation naming user A's object: 404, or 403 where a role check comes first. */
type Owned = { kind: 'image' | 'job' | 'project' | 'qr' | 'key' | 'task' | 'batch'; expect: 404 | 403 };
const OWNED: Record<string, Owned> = {
  'delete /api/v1/auth/api-keys/{id}': { kind: 'key', expect: 404 },
  'get /api/v1/images/{id}': { kind: 'image', expect: 404 },
  'delete /api/v1/images/{id}': { kind: 'image', expect: 404 },
  'get /api/v1/images/{id}/content': { kind: 'image', expect: 404 },
  'get /api/v1/images/{id}/embedding': { kind: 'image', expect: 404 },
  'get /api/v1/jobs/{id}': { kind: 'job', expect: 404 },
  'delete /api/v1/jobs/{id}': { kind: 'job', expect: 404 },
  'get /api/v1/jobs/{id}/artifacts/{artifactId}': { kind: 'job', expect: 404 },
  'get /api/v1/jobs/{id}/options/{n}': { kind: 'job', expect: 404 },
  'get /api/v1/jobs/{id}/original': { kind: 'job', expect: 404 },
  'get /api/v1/jobs/{id}/result': { kind: 'job', expect: 404 },
  'post /api/v1/jobs/{id}/review': { kind: 'job', expect: 404 },
  'get /api/v1/jobs/{id}/status': { kind: 'job', expect: 404 },
  'get /api/v1/jobs/{id}/visualization.svg': { kind: 'job', expect: 404 },
  // The booth worker routes check the role before they look at the job.
  'post /api/v1/jobs/{id}/heartbeat': { kind: 'job', expect: 403 },
  'post /api/v1/jobs/{id}/options': { kind: 'job', expect: 403 },
  'get /api/v1/projects/{id}': { kind: 'project', expect: 404 },
  'patch /api/v1/projects/{id}': { kind: 'project', expect: 404 },
  'delete /api/v1/projects/{id}': { kind: 'project', expect: 404 },
  'post /api/v1/projects/{id}/images': { kind: 'project', expect: 404 },
  'get /api/v1/projects/{id}/images': { kind: 'project', expect: 404 },
  'get /api/v1/projects/{id}/images/{imageId}': { kind: 'project', expect: 404 },
  'delete /api/v1/projects/{id}/images/{imageId}': { kind: 'project', expect: 404 },
  'get /api/v1/projects/{id}/results': { kind: 'project', expect: 404 },
  'get /api/v1/projects/{id}/results/{imageId}': { kind: 'project', expect: 404 },
  'post /api/v1/projects/{id}/start': { kind: 'project', expect: 404 },
  'post /api/v1/projects/{id}/start-rest': { kind: 'project', expect: 404 },
  'get /api/v1/qr/batches/{id}': { kind: 'qr', expect: 404 },
  'get /api/v1/qr/batches/{id}/pdf': { kind: 'qr', expect: 404 },
  'get /api/v1/segment/batches/{id}': { kind: 'batch', expect: 404 },
  'get /api/v1/tasks/{id}': { kind: 'task', expect: 404 },
  'delete /api/v1/tasks/{id}': { kind: 'task', expect: 404 },
  'get /api/v1/tasks/{id}/artifacts.zip': { kind: 'task', expect: 404 },
  'get /api/v1/tasks/{id}/input': { kind: 'task', expect: 404 },
  'post /api/v1/tasks/{id}/rerun': { kind: 'task', expect: 404 },
  'get /api/v1/tasks/{id}/result': { kind: 'task', expect: 404 },
  'get /api/v1/tasks/{id}/status': { kind: 'task', expect: 404 },
};
/** Operations with a path parameter that names no user's object, and why. */
const NOT_OWNED: Record<string, string> = {
  'get /api/v1/booth/results/{qr}': 'public: the unguessable QR code is the key',
  'get /api/v1/booth/results/{qr}/{file}': 'public: the unguessable QR code is the key',
  'get /api/v1/carousel/{index}': 'public showcase',
  'get /api/v1/models/{name}': 'models are shared by every user',
  'get /api/v1/models/{name}/files/{file}': 'models are shared by every user',
  'post /api/v1/models/{name}/infer': 'models are shared by every user',
  'get /api/v1/models/{name}/stats': 'models are shared by every user',
  'post /api/v1/models/{name}/load': 'admin only (the admin matrix covers it)',
  'post /api/v1/models/{name}/unload': 'admin only (the admin matrix covers it)',
  'delete /api/v1/models/{name}': 'admin only (the admin matrix covers it)',
  'patch /api/v1/users/{id}': 'admin only (the admin matrix covers it)',
  'delete /api/v1/users/{id}': 'admin only (the admin matrix covers it)',
};

/** Well-formed bodies, so that the access check answers rather than validation. */
const BODIES: Record<string, object> = {
  'post /api/v1/jobs/{id}/review': { decision: 'cancel' },
  'patch /api/v1/projects/{id}': { name: 'renamed' },
};

const STATION_PASSWORD = 'route-access-station-password';
const key = (o: { method: string; path: string }): string => `${o.method} ${o.path}`;
const call = (t: TestApp, method: string, url: string): request.Test => {
  const agent = request(t.server);
  if (method === 'post') return agent.post(url);
  if (method === 'put') return agent.put(url);
  if (method === 'patch') return agent.patch(url);
  if (method === 'delete') return agent.delete(url);
  return agent.get(url);
};

describe('access matrix from openapi.yaml: station, non-admin, and another user', () => {
  let t: TestApp;
  let a: LoggedIn;
  let b: LoggedIn;
  let station: Record<string, string>;
  const ids: Record<Owned['kind'], string> & { artifact: string } = {
    image: '',
    job: '',
    project: '',
    qr: '',
    key: '',
    task: '',
    batch: '',
    artifact: '3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c',
  };
  const admin = { name: uniqueName('admin'), password: 'admin-password-1' };
  const png = resolve(fixtures, 'sam/shapes-01-480x640.png');
  beforeAll(async () => {
    t = await createTestApp(testEnv('access', { STATION_PASSWORD, ADMIN_USERNAME: admin.name, ADMIN_PASSWORD: admin.password }));
    a = await registerAndLogin(t.server, 'owner');
    b = await registerAndLogin(t.server, 'other');
    const s = await request(t.server).post('/api/v1/auth/token').type('form').send({ password: STATION_PASSWORD });
    station = { Authorization: `Bearer ${s.body.access_token as string}` };
    const img = await request(t.server).post('/api/v1/images').set(a.auth).attach('images', png);
    ids.image = img.body.data?.[0]?.id as string;
    const qr = await request(t.server).post('/api/v1/qr/batches').set(a.auth).send({ n: 1 });
    [ids.qr, ids.job] = [qr.body.id as string, qr.body.job_id as string];
    const project = await request(t.server).post('/api/v1/projects').set(a.auth).send({ name: 'mine' });
    ids.project = project.body.id as string;
    const k = await request(t.server).post('/api/v1/auth/api-keys').set(a.auth).send({ name: 'mine' });
    ids.key = k.body.id as string;
    const task = await request(t.server).post('/api/v1/tasks').set(a.auth).send({ image_id: ids.image, type: 'prediction' });
    ids.task = task.body.id as string;
    const batch = await request(t.server).post('/api/v1/segment/batches').set(a.auth).attach('images', png).field('mode', 'auto');
    ids.batch = batch.body.batch_id as string;
    for (const [k2, v] of Object.entries(ids)) expect(v, `fixture ${k2}`).toMatch(/^[0-9a-f-]{36}$/);
  });
  afterAll(() => t?.close());

  it('places every operation with a path parameter: owned by a user, or not and why', () => {
    const unplaced = operations.filter((o) => o.path.includes('{') && !OWNED[key(o)] && !NOT_OWNED[key(o)]).map(key);
    expect(unplaced, 'add these to OWNED or NOT_OWNED').toEqual([]);
    const stale = [...Object.keys(OWNED), ...Object.keys(NOT_OWNED)].filter((k) => !operations.some((o) => key(o) === k));
    expect(stale, 'no longer in openapi.yaml').toEqual([]);
  });

  it("user B gets 404 (or a role's 403) on every operation naming user A's object; A still has it", async () => {
    for (const o of operations.filter((x) => OWNED[key(x)])) {
      const owned = OWNED[key(o)]!;
      const url = o.path
        .replace('{id}', ids[owned.kind])
        .replace('{imageId}', ids.image)
        .replace('{artifactId}', ids.artifact)
        .replace('{n}', '0');
      let req = call(t, o.method, url).set(b.auth);
      // A multipart route gets a well-formed body, so that what answers is the access check, not validation.
      if (key(o) === 'post /api/v1/jobs/{id}/options') req = req.field('lease_id', ids.artifact).attach('files', png);
      const res = await (key(o) === 'post /api/v1/jobs/{id}/options' ? req : req.send(BODIES[key(o)] ?? {}));
      expect(res.status, `${key(o)} as user B: ${JSON.stringify(res.body)}`).toBe(owned.expect);
      expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
    }
    expect((await request(t.server).get(`/api/v1/images/${ids.image}`).set(a.auth)).status).toBe(200);
    expect((await request(t.server).get(`/api/v1/projects/${ids.project}`).set(a.auth)).status).toBe(200);
  });

  it('the station principal gets 403 on every protected operation outside the booth', async () => {
    const stationRoutes = new Set<string>();
    for (const o of operations.filter((x) => !x.isPublic)) {
      const url = o.path.replace(/\{[^}]+\}/g, '3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c');
      const res = await call(t, o.method, url).set(station).send({});
      if (res.status === 403) continue;
      stationRoutes.add(key(o));
    }
    // What the station may use: the booth, its QR batches, reviews, and its own session.
    for (const k of stationRoutes)
      expect(k, `${k} lets the station in`).toMatch(/\/(booth|qr|reviews|jobs\/\{id\}\/(options|original|review)|auth\/(me|logout))/);
    expect(stationRoutes.has('post /api/v1/booth/submissions')).toBe(true);
  });

  it('a non-admin gets 403 on every admin operation, an admin does not', async () => {
    const root = await login(t.server, admin.name, admin.password);
    let adminOnly = 0;
    // @AdminOnly() documents its 403 as "Admins only".
    for (const o of operations.filter((x) => x.op.responses?.['403']?.description === 'Admins only')) {
      const url = o.path.replace('{name}', 'no-such-model').replace(/\{[^}]+\}/g, '3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c');
      expectProblem(await call(t, o.method, url).set(b.auth).send({}), 403, 'FORBIDDEN');
      expect((await call(t, o.method, url).set(root.auth).send({})).status, key(o)).not.toBe(403);
      adminOnly++;
    }
    expect(adminOnly).toBeGreaterThanOrEqual(3);
  });
});
