import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MikroORM } from '@mikro-orm/core';
import { QrCode } from '@aperture/database/entities/qr.entity.js';
import { QR_PER_PAGE } from '@aperture/qr/qr-layout.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { binary, expectProblem, type LoggedIn, registerAndLogin, waitFor } from './support/http.js';
import { readQrPdf } from './support/pdf.js';

describe('job engine and QR batches (API + worker in one process, PostgreSQL + Redis)', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    t = await createTestApp(testEnv('jobs', { QR_URL_TEMPLATE: 'https://booth.example/q/{code}?src=qr' }), { worker: true });
    alice = await registerAndLogin(t.server, 'alice');
    bob = await registerAndLogin(t.server, 'bob');
  });
  afterAll(() => t?.close());

  async function createBatch(user: LoggedIn, n: number): Promise<{ id: string; job_id: string }> {
    const res = await request(t.server).post('/api/v1/qr/batches').set(user.auth).send({ n });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body;
  }

  const batchOf = async (user: LoggedIn, id: string) => (await request(t.server).get(`/api/v1/qr/batches/${id}`).set(user.auth)).body;

  it('renders n unique codes into a PDF with the right page count and decodable symbols', async () => {
    const n = 45;
    const batch = await createBatch(alice, n);
    const done = await waitFor(async () => {
      const b = await batchOf(alice, batch.id);
      return b.status === 'completed' ? b : null;
    });
    expect(done.progress).toBe(100);
    const pdf = await request(t.server).get(`/api/v1/qr/batches/${batch.id}/pdf`).set(alice.auth).buffer(true).parse(binary);
    expect(pdf.status).toBe(200);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    const doc = readQrPdf(pdf.body as Buffer);
    expect(doc.pages).toBe(Math.ceil(n / QR_PER_PAGE));
    expect(doc.pageText(0)).toMatch(/\d{4}-\d{2}-\d{2}/);

    const codes = await t.app
      .get(MikroORM)
      .em.fork()
      .find(QrCode, { batch: batch.id }, { orderBy: { position: 'asc' } });
    expect(codes).toHaveLength(n);
    expect(new Set(codes.map((c) => c.code)).size).toBe(n);
    expect(doc.decodeCell(0, 0)).toBe(`https://booth.example/q/${codes[0]!.code}?src=qr`);
    expect(doc.decodeCell(2, (n - 1) % QR_PER_PAGE)).toBe(codes[n - 1]!.value); // last code, last page
  });

  it('reports the job in the jobs API with its artifact', async () => {
    const batch = await createBatch(alice, 3);
    await waitFor(async () => (await batchOf(alice, batch.id)).status === 'completed');
    const job = await request(t.server).get(`/api/v1/jobs/${batch.job_id}`).set(alice.auth);
    expect(job.status).toBe(200);
    expect(job.body).toMatchObject({ type: 'qr.batch', status: 'completed', progress: 1, attempts: 1, result: { codes: 3, pages: 1 } });
    expect(job.body.artifacts).toHaveLength(1);
    expect(job.body.artifacts[0]).toMatchObject({ name: 'qr.pdf', content_type: 'application/pdf' });
    const file = await request(t.server).get(job.body.artifacts[0].url).set(alice.auth).buffer(true).parse(binary);
    expect(file.status).toBe(200);
    expect((file.body as Buffer).subarray(0, 5).toString()).toBe('%PDF-');
    const status = await request(t.server).get(`/api/v1/jobs/${batch.job_id}/status`).set(alice.auth);
    expect(status.body).toEqual({ id: batch.job_id, status: 'completed', progress: 1, total_images: 0, processed_images: 0, error: null });
    const result = await request(t.server).get(`/api/v1/jobs/${batch.job_id}/result`).set(alice.auth);
    expect(result.body.result).toMatchObject({ codes: 3 });
  });

  it('lists own jobs with pagination and filters', async () => {
    const u = await registerAndLogin(t.server, 'lister');
    for (let i = 0; i < 3; i++) await createBatch(u, 1);
    await waitFor(async () => (await request(t.server).get('/api/v1/jobs?status=completed').set(u.auth)).body.total === 3);
    const page = await request(t.server).get('/api/v1/jobs?page=2&page_size=2').set(u.auth);
    expect(page.body).toMatchObject({ total: 3, page: 2, page_size: 2, total_pages: 2 });
    expect(page.body.items).toHaveLength(1);
    expect((await request(t.server).get('/api/v1/jobs?type=qr.batch').set(u.auth)).body.total).toBe(3);
    expect((await request(t.server).get('/api/v1/jobs?status=failed').set(u.auth)).body.total).toBe(0);
    expectProblem(await request(t.server).get('/api/v1/jobs?page_size=1000').set(u.auth), 400, 'VALIDATION_ERROR');
    for (const page of ['10000000000000000000', '100001', '1e300', '0']) {
      expectProblem(await request(t.server).get(`/api/v1/jobs?page=${page}`).set(u.auth), 400, 'VALIDATION_ERROR');
    }
    expect((await request(t.server).get('/api/v1/jobs?page=100000').set(u.auth)).body).toMatchObject({ page: 100000, items: [] });
    expectProblem(await request(t.server).get('/api/v1/jobs?status=done').set(u.auth), 400, 'VALIDATION_ERROR');
  });

  it('refuses n outside 1..1000 and answers 409 for the PDF before the batch is done', async () => {
    for (const n of [0, 1001, -5, 2.5]) {
      expectProblem(await request(t.server).post('/api/v1/qr/batches').set(alice.auth).send({ n }), 400, 'VALIDATION_ERROR');
    }
    expectProblem(await request(t.server).post('/api/v1/qr/batches').set(alice.auth).send({}), 400, 'VALIDATION_ERROR');
    const big = await createBatch(alice, 1000);
    const early = await request(t.server).get(`/api/v1/qr/batches/${big.id}/pdf`).set(alice.auth);
    expectProblem(early, 409, 'CONFLICT', /is not ready: the batch is (queued|running)/);
    // Progress rises while it renders.
    const seen = new Set<number>();
    await waitFor(
      async () => {
        const b = await batchOf(alice, big.id);
        seen.add(b.progress);
        return b.status === 'completed';
      },
      60000,
      50,
    );
    expect([...seen].filter((p) => p > 0 && p < 100).length).toBeGreaterThan(0);
  });

  it("hides another user's batches and jobs behind 404", async () => {
    const batch = await createBatch(alice, 1);
    expectProblem(await request(t.server).get(`/api/v1/qr/batches/${batch.id}`).set(bob.auth), 404, 'NOT_FOUND');
    expectProblem(await request(t.server).get(`/api/v1/qr/batches/${batch.id}/pdf`).set(bob.auth), 404, 'NOT_FOUND');
    expectProblem(
      await request(t.server).get(`/api/v1/jobs/${batch.job_id}`).set(bob.auth),
      404,
      'JOB_NOT_FOUND',
      `Job with id ${batch.job_id} does not exist.`,
    );
    expectProblem(await request(t.server).delete(`/api/v1/jobs/${batch.job_id}`).set(bob.auth), 404, 'JOB_NOT_FOUND');
    const list = await request(t.server).get('/api/v1/jobs').set(bob.auth);
    expect(list.body.items.map((j: { id: string }) => j.id)).not.toContain(batch.job_id);
  });

  it('re-enqueues a queued job whose queue entry was lost (nothing is lost if Redis is flushed)', async () => {
    const { JobsService } = await import('@aperture/queue/jobs.service.js');
    const jobs = t.app.get(JobsService);
    await jobs.queue('default').pause(true);
    let batch: { id: string; job_id: string };
    try {
      batch = await createBatch(alice, 2);
      await (await jobs.queue('default').getJob(batch.job_id))!.remove(); // as if Redis had lost it
      expect(await jobs.queue('default').getJob(batch.job_id)).toBeNull();
      expect(await jobs.requeueOrphans(t.app.get(MikroORM).em.fork())).toBeGreaterThanOrEqual(1);
    } finally {
      await jobs.queue('default').resume(true);
    }
    await waitFor(async () => (await batchOf(alice, batch.id)).status === 'completed');
  });

  it('cancels a running job: it stops, keeps no artifact and never completes', async () => {
    const batch = await createBatch(alice, 1000);
    await waitFor(async () => (await batchOf(alice, batch.id)).status === 'running', 30000, 20);
    const del = await request(t.server).delete(`/api/v1/jobs/${batch.job_id}`).set(alice.auth);
    expect(del.status).toBe(204);
    expectProblem(await request(t.server).get(`/api/v1/jobs/${batch.job_id}`).set(alice.auth), 404, 'JOB_NOT_FOUND');
    // The worker notices and leaves nothing behind.
    const runner = (await import('@apps/worker/job-runner.service.js')).JobRunner;
    await waitFor(async () => t.app.get(runner).activeCount === 0, 30000, 50);
  });
});
