import { resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { fixtures, gt } from './support/fixtures.js';
import { expectProblem, type LoggedIn, waitFor } from './support/http.js';

/**
 * The field names earlier services' clients send, on Aperture's canonical routes: each row is such a client's request
 * as that client sends it (real HTTP, the worker in the same process, the shipped models), and what Aperture answers.
 * Integer model ids are the ids GET /api/v1/models lists: 1 primitives-obb (detector), 2 scene-gru (classifier),
 * 3 fragments-seg (segmenter).
 */

const PHOTO = resolve(fixtures, 'primitives/office-00-800x600.jpg');

type Case = {
  name: string;
  send: (api: Api) => request.Test;
  check: (res: request.Response, api: Api) => Promise<void> | void;
};

interface Api {
  post(path: string): request.Test;
  patch(path: string): request.Test;
  get(path: string): request.Test;
  user: LoggedIn;
}

describe('older clients keep their field names', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('compat'));
  });
  afterAll(() => t?.close());

  const api = (user: LoggedIn): Api => ({
    post: (path) => request(t.server).post(path).set(user.auth),
    patch: (path) => request(t.server).patch(path).set(user.auth),
    get: (path) => request(t.server).get(path).set(user.auth),
    user,
  });

  const imageCount = async (user: LoggedIn): Promise<number> =>
    (await request(t.server).get('/api/v1/images').set(user.auth)).body.total as number;

  /** A completed task's detail (the worker ran it). */
  async function completedTask(a: Api, id: string): Promise<{ params: Record<string, unknown>; result: Record<string, unknown> }> {
    const r = await waitFor(async () => {
      const res = await a.get(`/api/v1/tasks/${id}/result?wait_ms=30000`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return ['queued', 'running'].includes(res.body.status) ? null : res;
    }, 120000);
    expect(r.body.status, JSON.stringify((await a.get(`/api/v1/tasks/${id}`)).body.error)).toBe('completed');
    return { params: (await a.get(`/api/v1/tasks/${id}`)).body.params, result: r.body.result };
  }

  async function newProject(a: Api): Promise<string> {
    const r = await a.post('/api/v1/projects').send({ name: 'p', description: 'd' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.id as string;
  }

  const cases: Case[] = [
    // The task API: POST api/tasks?detection_model_id=1&classification_model_id=3 with the image as the body.
    {
      name: 'task: detection_model_id and classification_model_id as integers in the query, the image as "file"',
      send: (a) => a.post('/api/v1/tasks?detection_model_id=1&classification_model_id=2').attach('file', PHOTO),
      check: async (res, a) => {
        expect(res.status, JSON.stringify(res.body)).toBe(202);
        const { params, result } = await completedTask(a, res.body.id);
        expect(params).toMatchObject({ detection_model: 'primitives-obb', classification_model: 'scene-gru' });
        expect(gt<{ scenes: string[] }>('primitives/ground-truth.json').scenes).toContain(result['image_class']);
        expect((result['primitives'] as unknown[]).length).toBeGreaterThan(0);
      },
    },
    {
      name: 'task: the same ids as multipart fields next to "image"',
      send: (a) => a.post('/api/v1/tasks').attach('image', PHOTO).field('detection_model_id', '1').field('classification_model_id', '2'),
      check: async (res, a) => {
        expect(res.status, JSON.stringify(res.body)).toBe(202);
        expect((await completedTask(a, res.body.id)).params).toMatchObject({ detection_model: 'primitives-obb' });
      },
    },
    {
      name: 'task: the alias and its canonical field naming the same model',
      send: (a) => a.post('/api/v1/tasks?detection_model_id=1').attach('image', PHOTO).field('detection_model', 'primitives-obb'),
      check: (res) => expect(res.status, JSON.stringify(res.body)).toBe(202),
    },
    {
      name: "task: the old example's classification_model_id=3 is not a classifier here: 400 naming the field, nothing stored",
      send: (a) => a.post('/api/v1/tasks?detection_model_id=1&classification_model_id=3').attach('file', PHOTO),
      check: (res) => {
        expectProblem(
          res,
          400,
          'VALIDATION_ERROR',
          "Model id was not correct. Choose from (id, name, kind) [(2, 'scene-gru', 'classifier')].",
        );
        expect(res.body.errors).toEqual([{ field: 'classification_model_id', messages: ['unknown classifier model "3"'] }]);
      },
    },
    {
      name: 'task: an unknown detection_model_id is a 400 naming the field',
      send: (a) => a.post('/api/v1/tasks?detection_model_id=99').attach('file', PHOTO),
      check: (res) => {
        expectProblem(res, 400, 'VALIDATION_ERROR', /Model id was not correct/);
        expect(res.body.errors[0].field).toBe('detection_model_id');
      },
    },
    {
      name: 'task: detection_model_id that is not an integer is a 400 naming the field',
      send: (a) => a.post('/api/v1/tasks?detection_model_id=YOLO').attach('file', PHOTO),
      check: (res) => {
        expectProblem(res, 400, 'VALIDATION_ERROR');
        expect(res.body.errors.map((e: { field: string }) => e.field)).toContain('detection_model_id');
      },
    },
    {
      name: 'task: the alias and its canonical field disagreeing is a 400',
      send: (a) => a.post('/api/v1/tasks?classification_model_id=2').attach('file', PHOTO).field('classification_model', '1'),
      check: (res) => {
        expectProblem(res, 400, 'VALIDATION_ERROR', /Model id was not correct/);
        expect(res.body.errors[0].field).toBe('classification_model');
      },
    },
    {
      name: 'task: the same alias in the query and the body with different values is a 400',
      send: (a) => a.post('/api/v1/tasks?detection_model_id=1').attach('file', PHOTO).field('detection_model_id', '2'),
      check: (res) => {
        expectProblem(res, 400, 'VALIDATION_ERROR', 'detection_model_id is 1 in the query string but 2 in the body: send it once.');
        expect(res.body.errors).toEqual([{ field: 'detection_model_id', messages: ['query and body differ'] }]);
      },
    },
    {
      name: 'task: both "image" and "file" is a 400',
      send: (a) => a.post('/api/v1/tasks').attach('image', PHOTO).attach('file', PHOTO),
      check: (res) => {
        expectProblem(res, 400, 'VALIDATION_ERROR', /Send the image once/);
        expect(res.body.errors[0].field).toBe('file');
      },
    },
    {
      name: 'task: a model-id alias on a fragments task is a 400 naming it',
      send: (a) => a.post('/api/v1/tasks?detection_model_id=1').attach('file', PHOTO).field('type', 'fragments'),
      check: (res) => {
        expectProblem(res, 400, 'VALIDATION_ERROR', /^detection_model_id applies to prediction tasks/);
      },
    },
    // The fragment service: POST /upload with the image file (FastAPI's UploadFile field "file").
    {
      name: 'image upload: the multipart field "file"',
      send: (a) => a.post('/api/v1/images').attach('file', PHOTO),
      check: async (res, a) => {
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body.data).toHaveLength(1);
        expect(res.body.data[0]).toMatchObject({ name: 'office-00-800x600.jpg' });
        expect((await a.get(`/api/v1/images/${res.body.data[0].id}`)).status).toBe(200);
      },
    },
    {
      name: 'image upload: "file" next to "images" stores both',
      send: (a) => a.post('/api/v1/images').attach('images', PHOTO).attach('file', PHOTO),
      check: (res) => {
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body.data).toHaveLength(2);
      },
    },
    // The projects store: POST /store/projects/ {"name","description","ai_model_id"}; PATCH {"ai_model_id": 2}.
    {
      name: 'project create: {"name", "description", "ai_model_id": 1}',
      send: (a) => a.post('/api/v1/projects').send({ name: 'project3', description: 'this is a testing project3', ai_model_id: 1 }),
      check: (res) => {
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body).toMatchObject({ name: 'project3', model: 'primitives-obb', model_id: 1 });
      },
    },
    {
      name: 'project create: ai_model_id 3 picks the segmenter',
      send: (a) => a.post('/api/v1/projects').send({ name: 'p', ai_model_id: 3 }),
      check: (res) => {
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body).toMatchObject({ model: 'fragments-seg', model_id: 3 });
      },
    },
    {
      name: 'project create: model and ai_model_id naming different models is a 400',
      send: (a) => a.post('/api/v1/projects').send({ name: 'p', model: 'primitives-obb', ai_model_id: 3 }),
      check: (res) => {
        expectProblem(
          res,
          400,
          'VALIDATION_ERROR',
          'model and ai_model_id name different models (primitives-obb, fragments-seg): send one of them.',
        );
        expect(res.body.errors[0].field).toBe('ai_model_id');
      },
    },
    {
      name: 'project create: model and ai_model_id naming the same model',
      send: (a) => a.post('/api/v1/projects').send({ name: 'p', model: 'fragments-seg', ai_model_id: 3 }),
      check: (res) => {
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body.model).toBe('fragments-seg');
      },
    },
    {
      name: 'project create: an unknown ai_model_id is a 400 naming the field',
      send: (a) => a.post('/api/v1/projects').send({ name: 'p', ai_model_id: 99 }),
      check: (res) => {
        expectProblem(
          res,
          400,
          'VALIDATION_ERROR',
          "Model id was not correct. Choose from (id, name, kind) [(1, 'primitives-obb', 'detector'), (3, 'fragments-seg', 'segmenter')].",
        );
        expect(res.body.errors[0].field).toBe('ai_model_id');
      },
    },
  ];

  it.each(cases)('$name', async ({ send, check }) => {
    const a = api(alice);
    await check(await send(a), a);
  });

  it('no row that was refused stored an image', async () => {
    const before = await imageCount(bob);
    const b = api(bob);
    for (const q of ['detection_model_id=1&classification_model_id=3', 'detection_model_id=99', 'detection_model_id=YOLO']) {
      expect((await b.post(`/api/v1/tasks?${q}`).attach('file', PHOTO)).status).toBe(400);
    }
    expect(await imageCount(bob)).toBe(before);
  });

  it('project update: {"ai_model_id": 2} (a classifier) is a 400 naming the field; {"ai_model_id": 3} switches the model', async () => {
    const a = api(alice);
    const id = await newProject(a);
    const bad = await a.patch(`/api/v1/projects/${id}`).send({ ai_model_id: 2 });
    expectProblem(bad, 400, 'VALIDATION_ERROR', /Model id was not correct/);
    expect(bad.body.errors[0].field).toBe('ai_model_id');
    const ok = await a.patch(`/api/v1/projects/${id}`).send({ ai_model_id: 3 });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toMatchObject({ model: 'fragments-seg', model_id: 3 });
    const clash = await a.patch(`/api/v1/projects/${id}`).send({ model: 'fragments-seg', ai_model_id: 1 });
    expectProblem(clash, 400, 'VALIDATION_ERROR', /name different models/);
  });

  it('a project made with ai_model_id runs on the worker with that model', async () => {
    const a = api(alice);
    const created = await a.post('/api/v1/projects').send({ name: 'run', description: 'd', ai_model_id: 1 });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await a.post(`/api/v1/projects/${id}/images`).attach('images', PHOTO)).status).toBe(201);
    expect((await a.post(`/api/v1/projects/${id}/start`)).status).toBeLessThan(300);
    const sets = await waitFor(async () => {
      const r = await a.get(`/api/v1/projects/${id}/results`);
      return r.status === 200 && r.body.length === 1 ? (r.body as { model: string; detections: unknown[] }[]) : null;
    }, 60000);
    expect(sets[0]!.model).toBe('primitives-obb');
    expect(sets[0]!.detections.length).toBeGreaterThan(0);
  });

  // The projects store's customer profile: PATCH /store/customers/me/ {"phone": "000", "birth_date": "1990-10-10"}.
  it.each([
    { body: { phone: '000', birth_date: '1990-10-10' }, phone: '000' },
    { body: { phone: '' }, phone: null },
  ])('profile: PATCH $body', async ({ body, phone }) => {
    const a = api(bob);
    await a.patch('/api/v1/users/me').send({ phone: '+44 20 7946 0958' });
    const res = await a.patch('/api/v1/users/me').send(body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.phone).toBe(phone);
    expect((await a.get('/api/v1/users/me')).body.phone).toBe(phone);
  });

  it('profile: a phone with letters is still refused', async () => {
    expectProblem(await api(bob).patch('/api/v1/users/me').send({ phone: 'call me' }), 400, 'VALIDATION_ERROR');
  });
});
