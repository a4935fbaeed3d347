import { describe, expect, it, vi } from 'vitest';
import type { Principal } from '@aperture/common/auth.decorators.js';
import type { Image } from '@aperture/database/entities/image.entity.js';
import type { Job } from '@aperture/database/entities/job.entity.js';
import type { JobsService } from '@aperture/queue/jobs.service.js';
import { modelEntry, modelsOver } from '@test/support/fake-models.js';
import { fakeEm, newTestService, problemOf } from '@test/support/new-test-service.js';
import { tempUpload } from '@test/support/uploads.js';
import type { ImagesService } from '../images/images.service.js';
import type { TaskCreateFormDto } from './tasks.dto.js';
import { TasksService } from './tasks.service.js';

const IMAGE_ID = '6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f';
const alice: Principal = { userId: 'u-alice', username: 'alice', role: 'user' };

// Ids are 1-based manifest positions. A sequence classifier's input rows are its classes + 8 corner values.
const MODELS = [
  modelEntry('prims', 'detector', { labels: ['line', 'arc', 'circle'] }),
  modelEntry('prims-small', 'detector', { labels: ['line', 'arc'] }),
  modelEntry('scene', 'classifier', { inputShape: [1, 64, 3 + 8] }),
  modelEntry('scene-small', 'classifier', { inputShape: [1, 64, 2 + 8] }),
  modelEntry('fragments-seg', 'segmenter'),
];

function setup() {
  const em = fakeEm();
  const jobs = {
    build: vi.fn((_em: unknown, type: string, owner: unknown, params: unknown) => ({ id: 'j1', type, owner, params }) as unknown as Job),
    enqueue: vi.fn(async () => undefined),
  } satisfies Partial<JobsService>;
  const images = {
    findOwn: vi.fn(async (id: string) => ({ id }) as Image),
    store: vi.fn(),
  } satisfies Partial<ImagesService>;
  const sut = newTestService(TasksService, em, jobs, images, modelsOver(MODELS));
  return { sut, em, jobs, images };
}

/** Task requests are refused with 400 unless said otherwise. */
const refused = (call: Promise<unknown>, status = 400) => problemOf(call, status);

const form = (f: Partial<TaskCreateFormDto>): TaskCreateFormDto => ({ image_id: IMAGE_ID, ...f });

describe('TasksService', () => {
  describe('model resolution', () => {
    it('takes the detection model by name and the classifier by numeric id', async () => {
      const { sut, jobs } = setup();
      await sut.create(form({ detection_model: 'prims', classification_model: '3' }), undefined, alice);
      expect(jobs.build).toHaveBeenCalledWith(
        expect.anything(),
        'task.predict',
        { id: alice.userId },
        {
          detectionModel: 'prims',
          classificationModel: 'scene',
          conf: 0.25,
          iou: 0.7,
          imageId: IMAGE_ID,
        },
      );
      expect(jobs.enqueue).toHaveBeenCalledTimes(1);
    });

    it('defaults to the first detector, and to the first classifier with as many classes as it', async () => {
      const { sut, jobs } = setup();
      await sut.create(form({}), undefined, alice);
      await sut.create(form({ detection_model: '2' }), undefined, alice);
      const params = jobs.build.mock.calls.map((c) => c[3]);
      expect(params).toMatchObject([
        { detectionModel: 'prims', classificationModel: 'scene' },
        { detectionModel: 'prims-small', classificationModel: 'scene-small' },
      ]);
    });

    it('refuses a model of another kind, listing the valid ones, before anything is looked up or queued', async () => {
      const { sut, jobs, images } = setup();
      const e = await refused(sut.create(form({ detection_model: 'fragments-seg' }), undefined, alice));
      expect(e.detail).toMatch(/^Model id was not correct/);
      expect(e.extras['valid_models']).toEqual([
        { id: 1, name: 'prims', kind: 'detector' },
        { id: 2, name: 'prims-small', kind: 'detector' },
      ]);
      expect(images.findOwn).not.toHaveBeenCalled();
      expect(jobs.build).not.toHaveBeenCalled();
    });

    it("refuses a classifier whose classes do not match the detector's", async () => {
      const { sut, jobs } = setup();
      const e = await refused(sut.create(form({ detection_model: 'prims', classification_model: 'scene-small' }), undefined, alice));
      expect(e.extras.errors).toEqual([{ field: 'classification_model', messages: ['unknown classifier model "scene-small"'] }]);
      expect(jobs.build).not.toHaveBeenCalled();
    });
  });

  describe('parameters', () => {
    it('refuses prediction fields on a fragments task and fragments fields on a prediction task', async () => {
      const { sut } = setup();
      const a = await refused(sut.create(form({ type: 'fragments', detection_model: 'prims' }), undefined, alice));
      expect(a.detail).toBe('detection_model applies to prediction tasks; a fragments task takes "model".');
      const b = await refused(sut.create(form({ real_radius: 5 }), undefined, alice));
      expect(b.detail).toMatch(/^real_radius applies to fragments tasks/);
    });

    it('a fragments task in px drops the real radius; in mm it keeps it', async () => {
      const { sut, jobs } = setup();
      await sut.create(form({ type: 'fragments', unit: 'px', real_radius: 5 }), undefined, alice);
      await sut.create(form({ type: 'fragments', real_radius: 5 }), undefined, alice);
      await sut.create(form({ type: 'fragments' }), undefined, alice);
      expect(jobs.build.mock.calls.map((c) => [c[1], c[3]])).toEqual([
        ['task.fragments', { model: 'fragments-seg', realRadius: null, unit: 'px', conf: 0.25, iou: 0.7, imageId: IMAGE_ID }],
        ['task.fragments', { model: 'fragments-seg', realRadius: 5, unit: 'mm', conf: 0.25, iou: 0.7, imageId: IMAGE_ID }],
        ['task.fragments', { model: 'fragments-seg', realRadius: null, unit: 'px', conf: 0.25, iou: 0.7, imageId: IMAGE_ID }],
      ]);
    });

    it('refuses a file and an image_id together, and neither, without storing anything', async () => {
      const { sut, images } = setup();
      const file = tempUpload(Buffer.from('x'), 'a.png');
      expect((await refused(sut.create(form({}), file, alice))).detail).toBe('Send either an image file or image_id, not both.');
      expect((await refused(sut.create({}, undefined, alice))).extras.errors?.[0]?.field).toBe('image');
      expect(images.store).not.toHaveBeenCalled();
    });
  });

  describe('rerun', () => {
    const previous = {
      id: 't1',
      type: 'task.predict',
      image: { id: IMAGE_ID },
      params: { imageId: IMAGE_ID, detectionModel: 'prims-small', classificationModel: 'scene-small', conf: 0.4, iou: 0.5 },
    } as unknown as Job;

    it('keeps the previous parameters and overrides the given ones', async () => {
      const { sut, jobs } = setup();
      await sut.rerun(previous, { iou: 0.6 }, alice);
      expect(jobs.build.mock.calls[0]![3]).toEqual({
        detectionModel: 'prims-small',
        classificationModel: 'scene-small',
        conf: 0.4,
        iou: 0.6,
        imageId: IMAGE_ID,
      });
    });

    it('refuses with 409 when the input image was deleted', async () => {
      const { sut, jobs } = setup();
      const e = await refused(sut.rerun({ ...previous, image: null } as unknown as Job, {}, alice), 409);
      expect(e.detail).toBe('The input image of task t1 was deleted; upload it again and create a new task.');
      expect(jobs.build).not.toHaveBeenCalled();
    });
  });
});
