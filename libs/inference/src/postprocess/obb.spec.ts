import { describe, expect, it } from 'vitest';
import { letterboxGeometry } from '../preprocess.js';
import { decodeYoloObb, probIoU, rboxCorners, regularizeRbox, type Xywhr } from './obb.js';
import type { OutputTensor } from './yolo-detect.js';

type Anchor = { cx: number; cy: number; w: number; h: number; angle: number; scores: number[] };

function obbOutput(nc: number, anchors: Anchor[]): OutputTensor {
  const n = anchors.length;
  const data = new Float32Array((5 + nc) * n);
  anchors.forEach((a, i) => {
    [a.cx, a.cy, a.w, a.h].forEach((v, k) => (data[k * n + i] = v));
    for (let k = 0; k < nc; k++) data[(4 + k) * n + i] = a.scores[k] ?? 0;
    data[(4 + nc) * n + i] = a.angle;
  });
  return { data, dims: [1, 5 + nc, n] };
}

const identity = { gain: 1, padX: 0, padY: 0, origW: 640, origH: 640 };

/** Corners of a rotated rectangle computed independently (rotation matrix on the 4 local corners). */
function expectedCorners(b: Xywhr): [number, number][] {
  const c = Math.cos(b.angle);
  const s = Math.sin(b.angle);
  return [
    [1, 1],
    [1, -1],
    [-1, -1],
    [-1, 1],
  ].map(([u, v]) => {
    const lx = (u! * b.w) / 2;
    const ly = (v! * b.h) / 2;
    return [b.cx + lx * c - ly * s, b.cy + lx * s + ly * c] as [number, number];
  });
}

describe('OBB (mistake 7: radians, regularization, rotated NMS, pad on centre only)', () => {
  it('un-scales a synthetic rotated rectangle: θ ∈ [0, π), corners within 1 px', () => {
    // In 1280×720: centre (500, 300), 200×80, rotated 0.5 rad. Letterboxed at 640 (gain 0.5, padY 140).
    const truth: Xywhr = { cx: 500, cy: 300, w: 200, h: 80, angle: 0.5 };
    const lb = letterboxGeometry(1280, 720, 640);
    // The head reports the same rectangle with w/h swapped and the angle + π/2 (2.07 rad ∈ [−π/4, 3π/4]).
    const out = obbOutput(2, [{ cx: 250, cy: 290, w: 40, h: 100, angle: 0.5 + Math.PI / 2, scores: [0.1, 0.95] }]);
    const [d] = decodeYoloObb(out, lb);
    expect(d).toBeDefined();
    expect(d!.classId).toBe(1);
    expect(d!.angle).toBeGreaterThanOrEqual(0);
    expect(d!.angle).toBeLessThan(Math.PI);
    expect(d!.angle).toBeCloseTo(0.5, 5);
    expect([d!.cx, d!.cy, d!.w, d!.h].map((v) => Math.round(v * 1000) / 1000)).toEqual([500, 300, 200, 80]);
    const exp = expectedCorners(truth);
    for (let k = 0; k < 4; k++) {
      const [x, y] = [d!.corners[2 * k]!, d!.corners[2 * k + 1]!];
      const nearest = Math.min(...exp.map(([ex, ey]) => Math.hypot(ex - x, ey - y)));
      expect(nearest).toBeLessThan(1);
    }
  });

  it('regularizes any head angle into [0, π) with w the long side', () => {
    for (let t = -Math.PI / 4; t <= (3 * Math.PI) / 4; t += 0.05) {
      for (const [w, h] of [
        [30, 10],
        [10, 30],
      ] as const) {
        const r = regularizeRbox({ cx: 0, cy: 0, w, h, angle: t });
        expect(r.angle).toBeGreaterThanOrEqual(0);
        expect(r.angle).toBeLessThan(Math.PI);
        expect(r.w).toBe(30);
        // same rectangle: the corner sets match
        const a = rboxCorners({ cx: 0, cy: 0, w, h, angle: t });
        const b = rboxCorners(r);
        for (let k = 0; k < 4; k++) {
          const dist = Math.min(...[0, 1, 2, 3].map((j) => Math.hypot(a[2 * k]! - b[2 * j]!, a[2 * k + 1]! - b[2 * j + 1]!)));
          expect(dist).toBeLessThan(1e-9);
        }
      }
    }
    // degrees mistaken for radians would fail here: 90 "degrees" is not a right angle
    expect(regularizeRbox({ cx: 0, cy: 0, w: 30, h: 10, angle: Math.PI / 2 }).angle).toBeCloseTo(Math.PI / 2, 12);
  });

  it('ProbIoU: identical ≈ 1, far apart ≈ 0, symmetric, rotation-aware', () => {
    const a: Xywhr = { cx: 100, cy: 100, w: 80, h: 20, angle: 0.3 };
    expect(probIoU(a, a)).toBeGreaterThan(0.999);
    expect(probIoU(a, { ...a, cx: 1000 })).toBeLessThan(1e-6);
    const b: Xywhr = { cx: 110, cy: 95, w: 60, h: 30, angle: 1.1 };
    expect(probIoU(a, b)).toBeCloseTo(probIoU(b, a), 12);
    // values from a NumPy transcription of ultralytics' batch_probiou
    expect(probIoU(a, b)).toBeCloseTo(0.40942773381768083, 9);
    expect(probIoU({ cx: 300, cy: 300, w: 120, h: 30, angle: 0.6 }, { cx: 303, cy: 300, w: 120, h: 30, angle: 0.65 })).toBeCloseTo(
      0.8998722045263273,
      9,
    );
    // a ±45° cross of thin boxes: axis-aligned boxes would coincide (IoU 1), rotated overlap is small
    const x1: Xywhr = { cx: 100, cy: 100, w: 100, h: 10, angle: Math.PI / 4 };
    const x2: Xywhr = { ...x1, angle: (3 * Math.PI) / 4 };
    expect(probIoU(x1, x2)).toBeLessThan(0.3);
  });

  it('suppresses an overlapping rotated pair of one class, keeps crossing boxes and other classes', () => {
    const base = { cx: 300, cy: 300, w: 120, h: 30 };
    const pair = obbOutput(2, [
      { ...base, angle: 0.6, scores: [0.9, 0] },
      { ...base, cx: 303, angle: 0.65, scores: [0.8, 0] },
    ]);
    expect(decodeYoloObb(pair, identity)).toHaveLength(1);
    const otherClass = obbOutput(2, [
      { ...base, angle: 0.6, scores: [0.9, 0] },
      { ...base, cx: 303, angle: 0.65, scores: [0, 0.8] },
    ]);
    expect(decodeYoloObb(otherClass, identity)).toHaveLength(2);
    const cross = obbOutput(1, [
      { ...base, angle: Math.PI / 4, scores: [0.9] },
      { ...base, angle: (3 * Math.PI) / 4, scores: [0.8] },
    ]);
    expect(decodeYoloObb(cross, identity)).toHaveLength(2);
  });

  it('Fast-NMS: a box suppressed by an earlier one still suppresses later boxes', () => {
    // A overlaps B, B overlaps C, A does not overlap C. Greedy NMS would keep A and C; Fast-NMS keeps only A.
    const out = obbOutput(1, [
      { cx: 100, cy: 100, w: 100, h: 40, angle: 0, scores: [0.9] },
      { cx: 130, cy: 100, w: 100, h: 40, angle: 0, scores: [0.8] },
      { cx: 160, cy: 100, w: 100, h: 40, angle: 0, scores: [0.7] },
    ]);
    const kept = decodeYoloObb(out, identity, { iou: 0.5 });
    const pij = (i: number, j: number): number =>
      probIoU({ cx: 100 + 30 * i, cy: 100, w: 100, h: 40, angle: 0 }, { cx: 100 + 30 * j, cy: 100, w: 100, h: 40, angle: 0 });
    expect(pij(0, 1)).toBeGreaterThanOrEqual(0.5);
    expect(pij(1, 2)).toBeGreaterThanOrEqual(0.5);
    expect(pij(0, 2)).toBeLessThan(0.5);
    expect(kept.map((d) => d.score)).toEqual([expect.closeTo(0.9, 5)]);
  });
});
