import { describe, expect, it } from 'vitest';
import { rleEncode } from '@aperture/inference/mask.js';
import type { RgbImage } from '@aperture/imaging/decode.js';
import {
  analyzeFragments,
  equivalentDiameter,
  fragmentsCsv,
  isRedPixel,
  measureBall,
  percentileLinear,
  type FragmentInput,
} from './fragments.js';

const W = 200;
const H = 120;
const BG: [number, number, number] = [40, 38, 35];
const RED: [number, number, number] = [200, 20, 25];
const GREY: [number, number, number] = [150, 150, 150];

function canvas(): RgbImage {
  const data = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) data.set(BG, i * 3);
  return { data, width: W, height: H };
}

/** Paints the pixels where inside(x, y) holds and returns them as a mask. */
function paint(img: RgbImage, rgb: readonly number[], inside: (x: number, y: number) => boolean): Uint8Array {
  const mask = new Uint8Array(W * H);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      if (inside(x, y)) {
        mask[y * W + x] = 1;
        img.data.set(rgb, (y * W + x) * 3);
      }
  return mask;
}

function det(classId: number, score: number, box: [number, number, number, number], mask: Uint8Array): FragmentInput {
  return { classId, score, box, rle: rleEncode(mask, W, H), area: mask.reduce((a, b) => a + b, 0) };
}

const r4 = (x: number): number => Math.round(x * 1e4) / 1e4;

/** A red disc (radius 20 at (50, 50)), a 10×10 and a 20×20 grey square. */
function scene() {
  const img = canvas();
  const disc = paint(img, RED, (x, y) => (x - 50) ** 2 + (y - 50) ** 2 <= 400);
  const small = paint(img, GREY, (x, y) => x >= 100 && x < 110 && y >= 20 && y < 30);
  const big = paint(img, GREY, (x, y) => x >= 140 && x < 160 && y >= 60 && y < 80);
  const discCount = disc.reduce((a, b) => a + b, 0);
  return {
    img,
    discCount, // 1257 lattice points (Gauss circle problem, r = 20)
    ball: det(1, 0.9, [30, 30, 71, 71], disc),
    small: det(0, 0.95, [100, 20, 110, 30], small),
    big: det(0, 0.8, [140, 60, 160, 80], big),
  };
}

describe('percentileLinear (numpy.percentile, method linear)', () => {
  it('matches numpy bit for bit', () => {
    // values printed by numpy 2.4: repr(float(np.percentile(a, p)))
    expect(percentileLinear([1, 2, 3, 4], 10)).toBe(1.3);
    expect(percentileLinear([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentileLinear([1, 2, 3, 4], 90)).toBe(3.7);
    expect(percentileLinear([1, 3], 10)).toBe(1.2);
    expect(percentileLinear([1, 3], 50)).toBe(2);
    expect(percentileLinear([1, 3], 90)).toBe(2.8);
    expect(percentileLinear([1.5, 2.25, 7, 11, 13.5], 10)).toBe(1.8);
    expect(percentileLinear([1.5, 2.25, 7, 11, 13.5], 25)).toBe(2.25);
    expect(percentileLinear([1.5, 2.25, 7, 11, 13.5], 50)).toBe(7);
    expect(percentileLinear([1.5, 2.25, 7, 11, 13.5], 90)).toBe(12.5);
    expect(percentileLinear([0.1, 0.2 + 0.1, 0.7], 33)).toBe(0.23200000000000004);
  });

  it('single element, ends, typed arrays, bad input', () => {
    for (const p of [0, 10, 50, 90, 100]) expect(percentileLinear([5], p)).toBe(5);
    expect(percentileLinear(new Float64Array([2, 4, 8]), 0)).toBe(2);
    expect(percentileLinear(new Float64Array([2, 4, 8]), 100)).toBe(8);
    expect(() => percentileLinear([], 50)).toThrow(RangeError);
    expect(() => percentileLinear([1], 101)).toThrow(RangeError);
    expect(() => percentileLinear([1], Number.NaN)).toThrow(RangeError);
  });
});

describe('equivalentDiameter', () => {
  it('is sqrt(4A/π)', () => {
    expect(equivalentDiameter(0)).toBe(0);
    expect(equivalentDiameter(Math.PI)).toBeCloseTo(2, 12);
    expect(equivalentDiameter(100)).toBeCloseTo(11.283791670955125, 12);
    expect(() => equivalentDiameter(-1)).toThrow(RangeError);
  });
});

describe('isRedPixel', () => {
  it('accepts shaded reds and rejects grey, brown, orange and dark pixels', () => {
    expect(isRedPixel(215, 25, 30)).toBe(true);
    expect(isRedPixel(97, 11, 13)).toBe(true); // the fixtures' darkest ball shade
    expect(isRedPixel(150, 150, 150)).toBe(false);
    expect(isRedPixel(60, 50, 40)).toBe(false); // brown background
    expect(isRedPixel(220, 120, 10)).toBe(false); // orange: hue ≈ 30°
    expect(isRedPixel(30, 2, 2)).toBe(false); // too dark
    expect(isRedPixel(0, 0, 0)).toBe(false);
  });
});

describe('analyzeFragments', () => {
  it('calibrates on the red disc and sizes the squares exactly', () => {
    const s = scene();
    expect(s.discCount).toBe(1257);
    const a = analyzeFragments(s.img, [s.small, s.ball, s.big], { realRadius: 10, unit: 'mm', ballClassId: 1 });
    const rBall = Math.sqrt(1257 / Math.PI); // 20.0028…
    expect(a.calibrated).toBe(true);
    expect(a.unit).toBe('mm');
    expect(a.warning).toBeNull();
    expect(a.ball).toEqual({ cx: 50, cy: 50, radius_px: r4(rBall), score: 0.9, method: 'red-pixels' });
    const scale = 10 / rBall;
    expect(a.scale).toBeCloseTo(scale, 8);
    const dSmall = Math.sqrt(400 / Math.PI); // 11.2838
    const dBig = Math.sqrt(1600 / Math.PI); // 22.5676
    expect(a.count).toBe(2);
    expect(a.fragments).toEqual([
      { id: 1, score: 0.95, box_xyxy: [100, 20, 110, 30], area_px: 100, diameter_px: r4(dSmall), diameter: r4(dSmall * scale) },
      { id: 2, score: 0.8, box_xyxy: [140, 60, 160, 80], area_px: 400, diameter_px: r4(dBig), diameter: r4(dBig * scale) },
    ]);
    expect(a.diameters).toEqual([r4(dSmall * scale), r4(dBig * scale)]);
    expect(a.d50).toBe(r4(((dSmall + dBig) / 2) * scale));
    expect(a.d10).toBe(r4((dSmall + 0.1 * (dBig - dSmall)) * scale));
    expect(a.d90).toBe(r4((dBig - 0.1 * (dBig - dSmall)) * scale));
    expect(a.min).toBe(r4(dSmall * scale));
    expect(a.max).toBe(r4(dBig * scale));
    expect(a.mean).toBe(a.d50);
  });

  it('excludes the ball from the fragments and uses the highest-scored ball', () => {
    const s = scene();
    const weak = { ...s.ball, score: 0.3, box: [0, 0, 10, 10] as [number, number, number, number] };
    const a = analyzeFragments(s.img, [weak, s.big, s.ball], { realRadius: 10, unit: 'cm', ballClassId: 1 });
    expect(a.count).toBe(1);
    expect(a.fragments[0]!.area_px).toBe(400);
    expect(a.ball!.score).toBe(0.9);
    expect(a.ball!.radius_px).toBe(r4(Math.sqrt(1257 / Math.PI)));
    expect(a.unit).toBe('cm');
  });

  it('falls back to the mask when the ball is not red', () => {
    const s = scene();
    paint(s.img, [90, 90, 200], (x, y) => (x - 50) ** 2 + (y - 50) ** 2 <= 400); // a blue ball
    const m = measureBall(s.img, s.ball)!;
    expect(m.method).toBe('mask');
    expect(m.red).toBeNull();
    const a = analyzeFragments(s.img, [s.ball, s.small], { realRadius: 10, unit: 'mm', ballClassId: 1 });
    expect(a.ball).toMatchObject({ method: 'mask', cx: 50, cy: 50, radius_px: r4(Math.sqrt(1257 / Math.PI)) });
    expect(a.calibrated).toBe(true);
  });

  it('falls back to the mask when the red region is a sliver (fill < 0.7)', () => {
    const s = scene();
    paint(s.img, BG, (x, y) => (x - 50) ** 2 + (y - 50) ** 2 <= 400);
    paint(s.img, RED, (x, y) => x >= 48 && x < 52 && y >= 30 && y <= 70); // a 4×41 red bar inside the mask
    const m = measureBall(s.img, s.ball)!;
    expect(m.red!.count).toBe(164);
    expect(m.red!.fill).toBeLessThan(0.7);
    expect(m.method).toBe('mask');
  });

  it('ignores red pixels outside the dilated mask and the box', () => {
    const s = scene();
    paint(s.img, [90, 90, 200], (x, y) => (x - 50) ** 2 + (y - 50) ** 2 <= 400); // a blue ball
    // red within the grown box (x ≥ 21) but left of the box (x < 30) and of the mask dilated by ceil(0.15·20.003) = 4 px (x ≥ 26)
    paint(s.img, RED, (x, y) => x >= 21 && x < 26 && y >= 25 && y < 75);
    paint(s.img, RED, (x) => x < 4); // and far away
    const m = measureBall(s.img, s.ball)!;
    expect(m.red).toBeNull();
    expect(m.method).toBe('mask');
  });

  it('fills a highlight hole inside the red disc', () => {
    const s = scene();
    paint(s.img, [250, 250, 250], (x, y) => (x - 45) ** 2 + (y - 45) ** 2 <= 9); // white highlight
    const m = measureBall(s.img, s.ball)!;
    expect(m.method).toBe('red-pixels');
    expect(m.red!.count).toBe(1257);
  });

  it('without a ball: px, uncalibrated, with a warning', () => {
    const s = scene();
    const a = analyzeFragments(s.img, [s.small, s.big], { realRadius: 10, unit: 'mm', ballClassId: 1 });
    expect(a).toMatchObject({ calibrated: false, unit: 'px', scale: 1, ball: null, count: 2 });
    expect(a.warning).toMatch(/No calibration ball/);
    expect(a.fragments[1]!.diameter).toBe(r4(Math.sqrt(1600 / Math.PI)));
    expect(a.d50).toBe(r4((Math.sqrt(400 / Math.PI) + Math.sqrt(1600 / Math.PI)) / 2));
  });

  it('unit px or no radius: uncalibrated, no warning, the ball still reported', () => {
    const s = scene();
    for (const params of [
      { realRadius: 10, unit: 'px' as const, ballClassId: 1 },
      { realRadius: null, unit: 'mm' as const, ballClassId: 1 },
    ]) {
      const a = analyzeFragments(s.img, [s.ball, s.big], params);
      expect(a).toMatchObject({ calibrated: false, unit: 'px', scale: 1, warning: null, count: 1 });
      expect(a.ball!.method).toBe('red-pixels');
      expect(a.fragments[0]!.diameter).toBe(a.fragments[0]!.diameter_px);
    }
  });

  it('no detections: count 0 and nulls', () => {
    const a = analyzeFragments(canvas(), [], { realRadius: 20, unit: 'mm', ballClassId: 1 });
    expect(a).toEqual({
      calibrated: false,
      unit: 'px',
      scale: 1,
      ball: null,
      warning: 'No calibration ball was detected; diameters are in px.',
      count: 0,
      diameters: [],
      d10: null,
      d50: null,
      d90: null,
      min: null,
      max: null,
      mean: null,
      fragments: [],
    });
  });

  it('rejects bad parameters and masks of another size', () => {
    const s = scene();
    expect(() => analyzeFragments(s.img, [], { realRadius: -1, unit: 'mm', ballClassId: 1 })).toThrow(RangeError);
    expect(() => analyzeFragments(s.img, [], { realRadius: 1, unit: 'ft' as 'mm', ballClassId: 1 })).toThrow(/unit/);
    const wrong = { ...s.small, rle: { size: [10, 10] as [number, number], counts: [100] } };
    expect(() => analyzeFragments(s.img, [wrong], { realRadius: null, unit: 'px', ballClassId: 1 })).toThrow(/10×10/);
  });
});

describe('fragmentsCsv', () => {
  it('writes a header with the unit and one LF-terminated row per fragment', () => {
    const s = scene();
    const a = analyzeFragments(s.img, [s.small, s.ball, s.big], { realRadius: 10, unit: 'mm', ballClassId: 1 });
    const rows = a.fragments;
    expect(fragmentsCsv(a)).toBe(
      'id,score,x1,y1,x2,y2,area_px,diameter_px,diameter_mm\n' +
        `1,0.95,100,20,110,30,100,11.2838,${rows[0]!.diameter}\n` +
        `2,0.8,140,60,160,80,400,22.5676,${rows[1]!.diameter}\n`,
    );
    expect(rows[0]!.diameter).toBe(5.6411);
    const empty = analyzeFragments(canvas(), [], { realRadius: null, unit: 'px', ballClassId: 1 });
    expect(fragmentsCsv(empty)).toBe('id,score,x1,y1,x2,y2,area_px,diameter_px,diameter_px\n');
  });
});
