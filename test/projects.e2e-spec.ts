import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { fixtures } from './support/fixtures.js';
import { polygonIoU, type Pt } from './support/geometry.js';
import { expectProblem, type LoggedIn, waitFor } from './support/http.js';

/** Projects through HTTP, the queue and the worker (one process), with the shipped detector. */
const truth = (
  JSON.parse(readFileSync(resolve(fixtures, 'primitives/ground-truth.json'), 'utf8')) as {
    images: { file: string; primitives: { class: string; corners: Pt[] }[] }[];
  }
).images;

interface ResultSet {
  image_id: string;
  image_name: string;
  job_id: string;
  batch_id: string;
  model: string;
  detections: { class: string; confidence: number; bbox_xyxy_abs: number[]; corners?: Pt[] }[];
  result_image_url: string | null;
}

describe('projects: CRUD, multi-image upload, start / start-rest, result sets', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('proj'));
  });
  afterAll(() => t?.close());

  const get = (url: string, user = alice) => request(t.server).get(url).set(user.auth);
  async function settled(id: string): Promise<Record<string, unknown>> {
    return waitFor(async () => {
      const p = (await get(`/api/v1/projects/${id}`)).body;
      return p.status === 'COMPLETED' || p.status === 'FAILED' ? p : null;
    }, 120000);
  }

  it('runs the whole project flow: upload with a bad file, start, results, start-rest touches only new images', async () => {
    const created = await request(t.server)
      .post('/api/v1/projects')
      .set(alice.auth)
      .send({ name: 'shelves', description: 'march', model: '1' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const project = created.body;
    expect(project).toMatchObject({
      name: 'shelves',
      description: 'march',
      model: 'primitives-obb',
      model_id: 1,
      status: 'PENDING',
      images_nr: 0,
      images: [],
      owner_username: alice.username,
    });

    const first = truth.slice(0, 3);
    let up = request(t.server).post(`/api/v1/projects/${project.id}/images`).set(alice.auth);
    for (const f of first) up = up.attach('images', resolve(fixtures, f.file));
    const upload = await up.attach('images', Buffer.from('%PDF-1.4 not an image'), 'scan.jpg');
    expect(upload.status, JSON.stringify(upload.body)).toBe(207);
    expect(upload.body.data).toHaveLength(3);
    expect(upload.body.data.every((d: { project_id: string }) => d.project_id === project.id)).toBe(true);
    expect(upload.body.bad_images).toEqual([{ name: 'scan.jpg', reason: expect.stringMatching(/not an image/) }]);

    const start = await request(t.server).post(`/api/v1/projects/${project.id}/start`).set(alice.auth);
    expect(start.status, JSON.stringify(start.body)).toBe(202);
    expect(start.body).toMatchObject({ message: 'GOT IT, START PROCESSING', queued: 3, batch_id: expect.any(String) });
    expect([...start.body.image_ids].sort()).toEqual(upload.body.data.map((d: { id: string }) => d.id).sort());
    const done = await settled(project.id);
    expect(done).toMatchObject({ status: 'COMPLETED', images_nr: 3, images_with_result: 3 });
    const listed = (await get('/api/v1/projects')).body.items.find((p: { id: string }) => p.id === project.id);
    expect(listed).toMatchObject({ status: 'COMPLETED', images_nr: 3 });

    const results = (await get(`/api/v1/projects/${project.id}/results`)).body as ResultSet[];
    expect(results).toHaveLength(3);
    let found = 0;
    let total = 0;
    for (const r of results) {
      expect(r).toMatchObject({ model: 'primitives-obb', batch_id: start.body.batch_id });
      const g = first.find((f) => f.file.endsWith(r.image_name))!;
      for (const p of g.primitives) {
        total++;
        if (r.detections.some((d) => d.class === p.class && d.corners && polygonIoU(d.corners, p.corners) >= 0.5)) found++;
      }
      for (const d of r.detections) {
        expect(d.bbox_xyxy_abs).toHaveLength(4);
        expect(d.confidence).toBeGreaterThan(0);
      }
      const annotated = await get(r.result_image_url!);
      expect(annotated.status).toBe(200);
      expect(annotated.headers['content-type']).toBe('image/jpeg');
    }
    expect(found / total).toBeGreaterThanOrEqual(0.9);
    const one = await get(`/api/v1/projects/${project.id}/results/${results[0]!.image_id}`);
    expect(one.body).toEqual(results[0]);

    // start-rest right away: nothing left, says so, changes nothing
    const none = await request(t.server).post(`/api/v1/projects/${project.id}/start-rest`).set(alice.auth);
    expect(none.status).toBe(200);
    expect(none.body).toMatchObject({
      batch_id: null,
      queued: 0,
      message: 'Every image of the project already has a result; nothing was queued.',
    });

    // a new image: the project is pending again, start-rest queues exactly that one
    const later = await request(t.server)
      .post(`/api/v1/projects/${project.id}/images`)
      .set(alice.auth)
      .attach('images', resolve(fixtures, truth[5]!.file));
    expect(later.status).toBe(201);
    const newId = later.body.data[0].id as string;
    expect((await get(`/api/v1/projects/${project.id}`)).body).toMatchObject({ status: 'PENDING', images_nr: 4, images_with_result: 3 });
    expectProblem(await get(`/api/v1/projects/${project.id}/results/${newId}`), 404, 'NOT_FOUND', /has no result yet/);
    const rest = await request(t.server).post(`/api/v1/projects/${project.id}/start-rest`).set(alice.auth);
    expect(rest.status).toBe(202);
    expect(rest.body).toMatchObject({ queued: 1, image_ids: [newId] });
    await settled(project.id);
    const after = (await get(`/api/v1/projects/${project.id}/results`)).body as ResultSet[];
    expect(after).toHaveLength(4);
    const unchanged = after.filter((r) => r.image_id !== newId);
    expect(unchanged.map((r) => r.job_id).sort()).toEqual(results.map((r) => r.job_id).sort()); // the old results were not redone
    expect(after.find((r) => r.image_id === newId)!.batch_id).toBe(rest.body.batch_id);

    // start re-processes every image
    const again = await request(t.server).post(`/api/v1/projects/${project.id}/start`).set(alice.auth);
    expect(again.body.queued).toBe(4);
    await settled(project.id);
    const redone = (await get(`/api/v1/projects/${project.id}/results`)).body as ResultSet[];
    expect(redone.every((r) => r.batch_id === again.body.batch_id)).toBe(true);

    // images of the project: list, one, delete with its results
    const imgs = (await get(`/api/v1/projects/${project.id}/images`)).body;
    expect(imgs).toHaveLength(4);
    expect(imgs.every((i: { has_result: boolean }) => i.has_result)).toBe(true);
    expect((await get(`/api/v1/projects/${project.id}/images/${newId}`)).body).toMatchObject({ id: newId, has_result: true });
    expect((await request(t.server).delete(`/api/v1/projects/${project.id}/images/${newId}`).set(alice.auth)).status).toBe(204);
    expect((await get(`/api/v1/projects/${project.id}/results`)).body).toHaveLength(3);
    expectProblem(await get(`/api/v1/projects/${project.id}/images/${newId}`), 404, 'NOT_FOUND');

    // update, then delete everything
    const patched = await request(t.server).patch(`/api/v1/projects/${project.id}`).set(alice.auth).send({ description: 'april' });
    expect(patched.body).toMatchObject({ description: 'april', status: 'COMPLETED' });
    const imageIds = imgs.map((i: { id: string }) => i.id).filter((id: string) => id !== newId);
    expect((await request(t.server).delete(`/api/v1/projects/${project.id}`).set(alice.auth)).status).toBe(204);
    expectProblem(await get(`/api/v1/projects/${project.id}`), 404, 'NOT_FOUND', `Project with id ${project.id} does not exist.`);
    for (const id of imageIds) expect((await get(`/api/v1/images/${id}`)).status).toBe(404);
  });

  it('validates names and models: an unknown model lists the valid (id, name, kind) triples', async () => {
    expectProblem(await request(t.server).post('/api/v1/projects').set(alice.auth).send({ name: '' }), 400, 'VALIDATION_ERROR', /name/);
    const bad = await request(t.server).post('/api/v1/projects').set(alice.auth).send({ name: 'x', model: 'scene-gru' });
    expectProblem(
      bad,
      400,
      'VALIDATION_ERROR',
      "Model id was not correct. Choose from (id, name, kind) [(1, 'primitives-obb', 'detector'), (3, 'fragments-seg', 'segmenter')].",
    );
    const empty = await request(t.server).post('/api/v1/projects').set(alice.auth).send({ name: 'empty' });
    expect(empty.body.model).toBe('primitives-obb');
    const start = await request(t.server).post(`/api/v1/projects/${empty.body.id}/start`).set(alice.auth);
    expect(start.status).toBe(200);
    expect(start.body).toMatchObject({ queued: 0, batch_id: null, message: /no images/ });
  });

  it('another user gets 404 on every project route', async () => {
    const p = (await request(t.server).post('/api/v1/projects').set(alice.auth).send({ name: 'private' })).body;
    const up = await request(t.server)
      .post(`/api/v1/projects/${p.id}/images`)
      .set(alice.auth)
      .attach('images', resolve(fixtures, truth[0]!.file));
    const imageId = up.body.data[0].id as string;
    const routes: [string, string][] = [
      ['get', `/api/v1/projects/${p.id}`],
      ['patch', `/api/v1/projects/${p.id}`],
      ['delete', `/api/v1/projects/${p.id}`],
      ['get', `/api/v1/projects/${p.id}/images`],
      ['post', `/api/v1/projects/${p.id}/images`],
      ['get', `/api/v1/projects/${p.id}/images/${imageId}`],
      ['delete', `/api/v1/projects/${p.id}/images/${imageId}`],
      ['post', `/api/v1/projects/${p.id}/start`],
      ['post', `/api/v1/projects/${p.id}/start-rest`],
      ['get', `/api/v1/projects/${p.id}/results`],
      ['get', `/api/v1/projects/${p.id}/results/${imageId}`],
    ];
    for (const [method, url] of routes) {
      let req = (request(t.server) as unknown as Record<string, (u: string) => request.Test>)[method]!(url).set(bob.auth);
      if (method === 'post' && url.endsWith('/images')) req = req.attach('images', resolve(fixtures, truth[0]!.file));
      expectProblem(await req, 404, 'NOT_FOUND', `Project with id ${p.id} does not exist.`);
    }
    expect((await get('/api/v1/projects', bob)).body.items).toEqual([]);
    expectProblem(await get(`/api/v1/images/${imageId}`, bob), 404, 'NOT_FOUND');
    expect((await get(`/api/v1/projects/${p.id}`)).body.images_nr).toBe(1);
  });
});
