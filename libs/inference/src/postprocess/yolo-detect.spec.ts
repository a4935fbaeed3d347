import { describe, expect, it } from 'vitest';
import { letterboxGeometry } from '../preprocess.js';
import { decodeYoloDetect, nmsAxisAligned, type OutputTensor } from './yolo-detect.js';

/** Builds a channel-major [1, 4+nc, N] tensor from per-anchor rows. */
function detectOutput(
  nc: number,
  anchors: { box: [number, number, number, number]; scores: number[] }[],
  n = anchors.length,
): OutputTensor {
  const c = 4 + nc;
  const data = new Float32Array(c * n);
  anchors.forEach((a, i) => {
    for (let k = 0; k < 4; k++) data[k * n + i] = a.box[k]!;
    for (let k = 0; k < nc; k++) data[(4 + k) * n + i] = a.scores[k] ?? 0;
  });
  return { data, dims: [1, c, n] };
}

const identity = { gain: 1, padX: 0, padY: 0, origW: 640, origH: 640 };

describe('decodeYoloDetect (mistake 2: channel-major layout)', () => {
  it('finds the one known anchor among 8400 and un-scales it to the original image', () => {
    const nc = 3;
    const n = 8400;
    const anchors = Array.from({ length: n }, () => ({
      box: [1, 2, 3, 4] as [number, number, number, number],
      scores: [0.01, 0.02, 0.03],
    }));
    anchors[4321] = { box: [320, 240, 100, 50], scores: [0.1, 0.2, 0.9] };
    const out = detectOutput(nc, anchors, n);
    expect(out.data[4 * n + 4321]).toBeCloseTo(0.1); // element (c, i) = data[c·N + i]
    const lb = letterboxGeometry(1280, 720, 640); // gain 0.5, padY 140
    const dets = decodeYoloDetect(out, lb);
    expect(dets).toHaveLength(1);
    const d = dets[0]!;
    expect(d.classId).toBe(2);
    expect(d.score).toBeCloseTo(0.9, 6);
    expect([d.x1, d.y1, d.x2, d.y2]).toEqual([540, 150, 740, 250]);
  });

  it('clips to the image and rejects a mismatched class count', () => {
    const out = detectOutput(1, [{ box: [10, 630, 40, 40], scores: [0.9] }]);
    const [d] = decodeYoloDetect(out, identity);
    expect([d!.x1, d!.y1, d!.x2, d!.y2]).toEqual([0, 610, 30, 640]);
    expect(() => decodeYoloDetect(out, identity, { numClasses: 2 })).toThrow(/rows/);
  });
});

describe('NMS (mistake 3: per-class, strict conf, max_det)', () => {
  const a = { box: [100, 100, 100, 100] as [number, number, number, number] };
  const b = { box: [110, 105, 100, 100] as [number, number, number, number] }; // IoU ≈ 0.75 with a

  it('keeps overlapping boxes of different classes, suppresses the same class', () => {
    const diff = detectOutput(2, [
      { ...a, scores: [0.9, 0] },
      { ...b, scores: [0, 0.8] },
    ]);
    expect(nmsAxisAligned(diff, 2).map((d) => d.classId)).toEqual([0, 1]);
    expect(nmsAxisAligned(diff, 2, { agnostic: true }).map((d) => d.classId)).toEqual([0]);
    const same = detectOutput(2, [
      { ...a, scores: [0.8, 0] },
      { ...b, scores: [0.9, 0] },
    ]);
    const kept = nmsAxisAligned(same, 2);
    expect(kept).toHaveLength(1);
    expect(kept[0]!.anchor).toBe(1); // the higher score wins
    expect(nmsAxisAligned(same, 2, { iou: 0.8 })).toHaveLength(2);
  });

  it('rejects a score equal to conf (strictly greater)', () => {
    const out = detectOutput(1, [
      { box: [50, 50, 10, 10], scores: [0.25] },
      { box: [150, 150, 10, 10], scores: [0.2500001] },
    ]);
    expect(nmsAxisAligned(out, 1).map((d) => d.anchor)).toEqual([1]);
    expect(nmsAxisAligned(out, 1, { conf: 0.5 })).toHaveLength(0);
  });

  it('caps 400 separate candidates at max_det 300, best scores first', () => {
    const anchors = Array.from({ length: 400 }, (_, i) => ({
      box: [(i % 20) * 30 + 15, Math.floor(i / 20) * 30 + 15, 20, 20] as [number, number, number, number],
      scores: [0.3 + (i / 400) * 0.6],
    }));
    const kept = nmsAxisAligned(detectOutput(1, anchors), 1);
    expect(kept).toHaveLength(300);
    expect(kept[0]!.anchor).toBe(399);
    expect(Math.min(...kept.map((d) => d.anchor))).toBe(100);
    expect(nmsAxisAligned(detectOutput(1, anchors), 1, { maxDet: 10 })).toHaveLength(10);
    expect(nmsAxisAligned(detectOutput(1, anchors), 1, { maxNms: 50 })).toHaveLength(50);
  });

  it('filters by classes', () => {
    const out = detectOutput(3, [
      { box: [50, 50, 10, 10], scores: [0.9, 0, 0] },
      { box: [150, 150, 10, 10], scores: [0, 0, 0.9] },
    ]);
    expect(nmsAxisAligned(out, 3, { classes: [2] }).map((d) => d.classId)).toEqual([2]);
  });
});
