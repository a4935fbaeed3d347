import { describe, expect, it, vi } from 'vitest';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { ProblemException } from '@aperture/common/problem.js';
import { Image } from '@aperture/database/entities/image.entity.js';
import { Job, type JobStatus } from '@aperture/database/entities/job.entity.js';
import type { Project } from '@aperture/database/entities/project.entity.js';
import type { JobsService } from '@aperture/queue/jobs.service.js';
import { modelEntry, modelsOver } from '@test/support/fake-models.js';
import { fakeEm, newTestService } from '@test/support/new-test-service.js';
import { ProjectsService } from './projects.service.js';

const alice: Principal = { userId: 'u-alice', username: 'alice', role: 'user' };
const MODELS = [modelEntry('scene', 'classifier'), modelEntry('prims', 'detector', { labels: ['line'] }), modelEntry('seg', 'segmenter')];
const T0 = new Date('2026-01-01T00:00:00Z');

function project(model = 'prims'): Project {
  return {
    id: 'p1',
    name: 'Site A',
    description: '',
    model,
    owner: { id: alice.userId, username: alice.username },
    createdAt: T0,
    updatedAt: T0,
  } as unknown as Project;
}

const image = (id: string): Image =>
  ({
    id,
    originalName: `${id}.jpg`,
    format: 'jpeg',
    mime: 'image/jpeg',
    sizeBytes: 1,
    width: 1,
    height: 1,
    sha256: '0',
    createdAt: T0,
    updatedAt: T0,
  }) as Image;

/** The project's processing jobs, oldest first (as the query orders them): [image id, status]. */
type Runs = [string, JobStatus][];

function setup(imageIds: string[], runs: Runs) {
  const em = fakeEm();
  em.find.mockImplementation(async (entity: unknown) => {
    if (entity === Image) return imageIds.map(image);
    if (entity === Job) return runs.map(([img, status], i) => ({ id: `j${i}`, image: { id: img }, status, createdAt: T0 }));
    throw new Error(`unexpected find of ${String(entity)}`);
  });
  let n = 0;
  const jobs = {
    build: vi.fn((_em: unknown, type: string, _owner: unknown, params: unknown) => ({ id: `new${n++}`, type, params }) as unknown as Job),
    enqueue: vi.fn(async () => undefined),
  } satisfies Partial<JobsService>;
  const sut = newTestService(ProjectsService, em, jobs, modelsOver(MODELS), {}, {});
  return { sut, em, jobs };
}

describe('ProjectsService', () => {
  describe('status', () => {
    it.each<[string, string[], Runs, string, number]>([
      ['no images', [], [], 'PENDING', 0],
      ['an image never processed', ['a'], [], 'PENDING', 0],
      ['some images without a result', ['a', 'b'], [['a', 'completed']], 'PENDING', 1],
      [
        'every image with a result',
        ['a', 'b'],
        [
          ['a', 'completed'],
          ['b', 'completed'],
        ],
        'COMPLETED',
        2,
      ],
      [
        'an image queued again after its result',
        ['a'],
        [
          ['a', 'completed'],
          ['a', 'queued'],
        ],
        'PROCESSING',
        1,
      ],
      [
        'a running image outranks a failed one',
        ['a', 'b'],
        [
          ['a', 'failed'],
          ['b', 'running'],
        ],
        'PROCESSING',
        0,
      ],
      [
        'an image whose latest run failed',
        ['a', 'b'],
        [
          ['a', 'completed'],
          ['b', 'completed'],
          ['b', 'failed'],
        ],
        'FAILED',
        2,
      ],
      [
        'a failure followed by a success',
        ['a'],
        [
          ['a', 'failed'],
          ['a', 'completed'],
        ],
        'COMPLETED',
        1,
      ],
    ])('%s: %s', async (_what, imageIds, runs, status, withResult) => {
      const { sut } = setup(imageIds, runs);
      const d = await sut.detail(project());
      expect([d.status, d.images_nr, d.images_with_result]).toEqual([status, imageIds.length, withResult]);
      expect(d.model_id).toBe(2);
    });

    it("lists one page of projects with each one's images counted", async () => {
      const { sut, em } = setup([], []);
      const p2 = { ...project(), id: 'p2' } as Project;
      em.findAndCount.mockResolvedValue([[project(), p2], 42]);
      em.find.mockImplementation(async (entity: unknown) =>
        entity === Image
          ? [
              { id: 'a', project: { id: 'p1' } },
              { id: 'b', project: { id: 'p2' } },
              { id: 'c', project: { id: 'p2' } },
            ]
          : [],
      );
      const [items, total] = await sut.list(alice, { page: 3, page_size: 10 });
      expect(em.findAndCount.mock.calls[0]![2]).toMatchObject({ limit: 10, offset: 20 });
      expect(em.findAndCount.mock.calls[0]![1]).toEqual({ owner: alice.userId });
      expect([total, items.map((x) => [x.id, x.images_nr, x.status])]).toEqual([
        42,
        [
          ['p1', 1, 'PENDING'],
          ['p2', 2, 'PENDING'],
        ],
      ]);
    });
  });

  describe('start', () => {
    // a: has a result; b: never run; c: running now; d: failed.
    const images = ['a', 'b', 'c', 'd'];
    const runs: Runs = [
      ['a', 'completed'],
      ['c', 'running'],
      ['d', 'failed'],
    ];

    it('start queues every image not in flight, with the project model, under one batch id', async () => {
      const { sut, jobs, em } = setup(images, runs);
      const r = await sut.start(project(), alice, false);
      expect([r.queued, r.image_ids, r.skipped_in_flight, r.message]).toEqual([3, ['a', 'b', 'd'], 1, 'GOT IT, START PROCESSING']);
      expect(jobs.build.mock.calls.map((c) => [c[1], c[3]])).toEqual(
        ['a', 'b', 'd'].map((id) => ['project.detect', { projectId: 'p1', imageId: id, model: 'prims', conf: 0.25, iou: 0.7 }]),
      );
      const built = jobs.build.mock.results.map((x) => x.value as Job);
      expect(new Set(built.map((j) => j.batchId))).toEqual(new Set([r.batch_id]));
      expect(built.map((j) => j.image?.id)).toEqual(['a', 'b', 'd']);
      expect(em.persist).toHaveBeenCalledWith(built);
      expect(jobs.enqueue).toHaveBeenCalledTimes(3);
    });

    it('start-rest queues only the images without a result', async () => {
      const { sut } = setup(images, runs);
      const r = await sut.start(project(), alice, true);
      expect([r.queued, r.image_ids, r.skipped_in_flight]).toEqual([2, ['b', 'd'], 1]);
    });

    it.each<[string, string[], Runs, boolean, string]>([
      ['no images', [], [], false, 'The project has no images; upload some first. Nothing was queued.'],
      ['all done', ['a'], [['a', 'completed']], true, 'Every image of the project already has a result; nothing was queued.'],
      ['all in flight', ['a'], [['a', 'queued']], false, 'Every image left is already queued or being processed; nothing was queued.'],
    ])('queues nothing when there is nothing to do (%s)', async (_what, imageIds, r, rest, message) => {
      const { sut, jobs } = setup(imageIds, r);
      expect(await sut.start(project(), alice, rest)).toMatchObject({ batch_id: null, queued: 0, message });
      expect(jobs.build).not.toHaveBeenCalled();
    });

    it("refuses when the project's model is no longer a detector or segmenter", async () => {
      const { sut, jobs } = setup(images, runs);
      await expect(sut.start(project('scene'), alice, false)).rejects.toBeInstanceOf(ProblemException);
      expect(jobs.build).not.toHaveBeenCalled();
    });
  });
});
