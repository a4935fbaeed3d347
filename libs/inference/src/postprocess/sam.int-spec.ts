import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { samResizeGeometry } from '../preprocess.js';
import { SessionHost, float32Output } from '../session-host.js';
import { encodeSamPrompt, samMaskFromOutputs, selectSamMaskIndex } from './sam.js';

function frameOf(w: number, h: number): { origW: number; origH: number; newW: number; newH: number } {
  const g = samResizeGeometry(w, h);
  return { origW: w, origH: h, newW: g.newW, newH: g.newH };
}

describe('encodeSamPrompt (mistake 8: padding point, 1024 frame, orig_im_size as (H, W))', () => {
  it('portrait 600×800: one click gets a (0, 0)/−1 padding point, coords in the resized frame', () => {
    const f = frameOf(600, 800);
    expect(f).toEqual({ origW: 600, origH: 800, newW: 768, newH: 1024 });
    const feeds = encodeSamPrompt({ points: [{ x: 300, y: 400, label: 1 }] }, f);
    expect(feeds.point_coords.dims).toEqual([1, 2, 2]);
    expect([...feeds.point_coords.data]).toEqual([384, 512, 0, 0]);
    expect(feeds.point_labels.dims).toEqual([1, 2]);
    expect([...feeds.point_labels.data]).toEqual([1, -1]);
    expect([...feeds.orig_im_size.data]).toEqual([800, 600]); // (H, W)
    expect(feeds.orig_im_size.dims).toEqual([2]);
    expect(feeds.mask_input.dims).toEqual([1, 1, 256, 256]);
    expect(feeds.mask_input.data.every((v) => v === 0)).toBe(true);
    expect(feeds.has_mask_input).toEqual({ type: 'float32', dims: [1], data: Float32Array.of(0) });
    expect(feeds.image_embeddings).toBeUndefined();
  });

  it('landscape 1000×333: a box becomes labels 2 and 3 with no padding point, after the points', () => {
    const f = frameOf(1000, 333);
    expect([f.newW, f.newH]).toEqual([1024, 341]);
    const feeds = encodeSamPrompt(
      {
        points: [
          { x: 500, y: 100, label: 1 },
          { x: 10, y: 20, label: 0 },
        ],
        box: { x1: 900, y1: 300, x2: 100, y2: 50 },
      },
      f,
      new Float32Array(256 * 64 * 64),
    );
    expect(feeds.point_labels.data).toEqual(Float32Array.of(1, 0, 2, 3));
    expect(feeds.point_labels.data).not.toContain(-1);
    const sx = 1024 / 1000;
    const sy = 341 / 333;
    const c = [...feeds.point_coords.data];
    const expected = [500 * sx, 100 * sy, 10 * sx, 20 * sy, 100 * sx, 50 * sy, 900 * sx, 300 * sy];
    c.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 3));
    expect([...feeds.orig_im_size.data]).toEqual([333, 1000]);
    expect(feeds.image_embeddings!.dims).toEqual([1, 256, 64, 64]);
  });

  it('a box alone has exactly two points; a previous mask sets has_mask_input', () => {
    const f = frameOf(800, 600);
    const prev = new Float32Array(256 * 256).fill(1);
    const feeds = encodeSamPrompt({ box: { x1: 0, y1: 0, x2: 800, y2: 600 }, maskInput: prev }, f);
    expect([...feeds.point_labels.data]).toEqual([2, 3]);
    expect([...feeds.point_coords.data]).toEqual([0, 0, 1024, 768]);
    expect(feeds.has_mask_input.data[0]).toBe(1);
    expect(feeds.mask_input.data).toBe(prev);
    expect(() => encodeSamPrompt({}, f)).toThrow();
  });
});

describe('SAM mask selection and thresholding', () => {
  const iou = Float32Array.of(0.99, 0.2, 0.95, 0.5);

  it('single click: best of the multimask outputs 1..3; several points or a box: token 0', () => {
    expect(selectSamMaskIndex(iou, { points: [{ x: 1, y: 1, label: 1 }] })).toBe(2);
    expect(
      selectSamMaskIndex(iou, {
        points: [
          { x: 1, y: 1, label: 1 },
          { x: 2, y: 2, label: 0 },
        ],
      }),
    ).toBe(0);
    expect(selectSamMaskIndex(iou, { box: { x1: 0, y1: 0, x2: 5, y2: 5 } })).toBe(0);
    expect(selectSamMaskIndex(Float32Array.of(0.3), { points: [{ x: 1, y: 1, label: 1 }] })).toBe(0);
  });

  it('binarizes the chosen (H, W) plane at logit > 0', () => {
    const h = 3;
    const w = 4;
    const data = new Float32Array(4 * h * w).fill(-1);
    data[2 * h * w + 5] = 0.01; // mask 2, (x=1, y=1)
    data[2 * h * w + 6] = 0; // exactly 0 is background
    data[0] = 5; // mask 0
    const r = samMaskFromOutputs({ data, dims: [1, 4, h, w] }, { data: iou, dims: [1, 4] }, { points: [{ x: 1, y: 1, label: 1 }] });
    expect([r.index, r.width, r.height, r.area]).toEqual([2, 4, 3, 1]);
    expect(r.score).toBeCloseTo(0.95, 6);
    expect(r.mask[5]).toBe(1);
    expect(r.mask[6]).toBe(0);
    expect(samMaskFromOutputs({ data, dims: [1, 4, h, w] }, { data: iou, dims: [1, 4] }, {}, 0).mask[0]).toBe(1);
    expect(() => samMaskFromOutputs({ data, dims: [1, 4, h, w] }, { data: iou, dims: [1, 4] }, {}, 4)).toThrow();
  });
});

describe('SAM feeds against the official decoder interface (stub graph in ONNX Runtime)', () => {
  const host = new SessionHost();
  afterAll(() => host.close());
  const stub = fileURLToPath(new URL('../../test-fixtures/sam-decoder-stub.onnx', import.meta.url));

  it('are accepted by name, type and shape; masks come back at (H, W)', async () => {
    const s = await host.load(stub);
    expect(s.info.inputNames).toEqual(['image_embeddings', 'point_coords', 'point_labels', 'mask_input', 'has_mask_input', 'orig_im_size']);
    const f = frameOf(60, 80); // portrait, small so the stub's masks stay small
    const click = encodeSamPrompt({ points: [{ x: 30, y: 40, label: 1 }] }, f, new Float32Array(256 * 64 * 64));
    const out = await s.run(click);
    expect(out.masks!.dims).toEqual([1, 4, 80, 60]);
    expect([...out.iou_predictions!.data]).toEqual([384, 512, 0, 2]); // first point in the 1024 frame, no mask input, N = 2
    expect(out.masks!.data[0]).toBe(0); // labels 1 + (−1): the padding point is there
    const boxed = encodeSamPrompt(
      { points: [{ x: 30, y: 40, label: 1 }], box: { x1: 5, y1: 5, x2: 50, y2: 70 } },
      f,
      new Float32Array(256 * 64 * 64),
    );
    const out2 = await s.run(boxed);
    expect(out2.masks!.data[0]).toBe(6); // labels 1 + 2 + 3, no padding
    const r = samMaskFromOutputs(float32Output(out2, 'masks'), float32Output(out2, 'iou_predictions'), {
      box: { x1: 5, y1: 5, x2: 50, y2: 70 },
    });
    expect([r.index, r.width, r.height, r.area]).toEqual([0, 60, 80, 60 * 80]);
    await s.release();
  });
});
