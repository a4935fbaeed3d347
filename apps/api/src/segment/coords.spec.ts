import { describe, expect, it } from 'vitest';
import { ProblemException } from '@aperture/common/problem.js';
import { boxCorners, promptSets, toPixels, withLabels } from './coords.js';

const problem = (fn: () => unknown): ProblemException => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProblemException) return e;
    throw e;
  }
  throw new Error('expected a problem');
};

describe('toPixels', () => {
  it('auto: every value ≤ 1 is normalized and scaled by the image size', () => {
    const r = toPixels([{ x: 0.5, y: 0.25, label: 1 }], [], 'auto', 640, 480);
    expect(r).toEqual({ points: [{ x: 320, y: 120, label: 1 }], boxes: [], normalized: true });
  });

  it('auto: any value > 1 means pixels, taken as they are', () => {
    const r = toPixels([{ x: 0.5, y: 200, label: 0 }], [{ x1: 1, y1: 2, x2: 30, y2: 40 }], 'auto', 640, 480);
    expect(r.normalized).toBe(false);
    expect(r.points).toEqual([{ x: 0.5, y: 200, label: 0 }]);
    expect(r.boxes).toEqual([{ x1: 1, y1: 2, x2: 30, y2: 40 }]);
  });

  it('pixels: small values stay pixels; normalized: boxes scale too', () => {
    expect(toPixels([{ x: 1, y: 1, label: 1 }], [], 'pixels', 10, 10).points[0]).toEqual({ x: 1, y: 1, label: 1 });
    expect(toPixels([], [{ x1: 0.1, y1: 0.2, x2: 0.5, y2: 1 }], 'normalized', 100, 50).boxes[0]).toEqual({
      x1: 10,
      y1: 10,
      x2: 50,
      y2: 50,
    });
  });

  it('refuses points and boxes outside the image, naming the field', () => {
    const p = problem(() => toPixels([{ x: 700, y: 10, label: 1 }], [], 'auto', 640, 480));
    expect(p.getStatus()).toBe(400);
    expect(p.detail).toMatch(/points\[0\] \(700, 10\) is outside the image: the image is 640×480 pixels/);
    expect(problem(() => toPixels([{ x: -0.1, y: 0.5, label: 1 }], [], 'auto', 64, 48)).detail).toMatch(/points\[0\]/);
    expect(problem(() => toPixels([{ x: 2, y: 0.5, label: 1 }], [], 'normalized', 64, 48)).detail).toMatch(/\[0, 1\]/);
    expect(problem(() => toPixels([], [{ x1: 10, y1: 10, x2: 50, y2: 500 }], 'pixels', 64, 48)).detail).toMatch(/box\[0\]/);
  });
});

describe('boxCorners', () => {
  it('takes {x, y, width, height} and {x1, y1, x2, y2}', () => {
    expect(boxCorners({ x: 10, y: 20, width: 30, height: 40 }, 0)).toEqual({ x1: 10, y1: 20, x2: 40, y2: 60 });
    expect(boxCorners({ x1: 1, y1: 2, x2: 3, y2: 4 }, 0)).toEqual({ x1: 1, y1: 2, x2: 3, y2: 4 });
  });

  it('refuses empty or inverted boxes and mixed forms', () => {
    expect(problem(() => boxCorners({ x1: 50, y1: 2, x2: 10, y2: 4 }, 1)).detail).toMatch(/box\[1\] is empty/);
    expect(problem(() => boxCorners({ x: 1, y: 2, width: 0, height: 4 }, 0)).detail).toMatch(/box\[0\] is empty/);
    expect(problem(() => boxCorners({ x: 1, y: 2, x2: 3, y2: 4 }, 0)).detail).toMatch(/must be \{x, y, width, height\}/);
  });
});

describe('promptSets', () => {
  it('one set per box, each with every point; the points alone when there is no box', () => {
    const pts = withLabels([
      { x: 0.5, y: 0.25 },
      { x: 0.1, y: 0.2, label: 0 },
    ]);
    expect(pts.map((p) => p.label)).toEqual([1, 0]);
    expect(promptSets(pts, [], 'auto', 200, 100)).toEqual([
      {
        points: [
          { x: 100, y: 25, label: 1 },
          { x: 20, y: 20, label: 0 },
        ],
      },
    ]);
    const boxes = [boxCorners({ x1: 10, y1: 10, x2: 50, y2: 60 }, 0), boxCorners({ x: 0, y: 0, width: 5, height: 5 }, 1)];
    expect(promptSets([], boxes, 'pixels', 200, 100)).toEqual([
      { box: { x1: 10, y1: 10, x2: 50, y2: 60 } },
      { box: { x1: 0, y1: 0, x2: 5, y2: 5 } },
    ]);
    const withPoint = promptSets(withLabels([{ x: 20, y: 20 }]), boxes.slice(0, 1), 'pixels', 200, 100);
    expect(withPoint).toEqual([{ points: [{ x: 20, y: 20, label: 1 }], box: { x1: 10, y1: 10, x2: 50, y2: 60 } }]);
    expect(() => promptSets([], boxes, 'pixels', 40, 40)).toThrow(/outside the image/);
  });
});
