import { describe, expect, it } from 'vitest';
import { removeSmallRegions } from './amg.js';
import { maskArea, maskToBoxXyxy } from './mask.js';
import {
  cleanMask,
  cropRect,
  cutObject,
  distanceToBackground,
  featherAlpha,
  maskBytes,
  maskColorHex,
  MASK_COLORS,
  tintMasks,
} from './objects.js';

const grid = (rows: string[]): { mask: Uint8Array; width: number; height: number } => {
  const height = rows.length;
  const width = rows[0]!.length;
  const mask = new Uint8Array(width * height);
  rows.forEach((r, y) => [...r].forEach((c, x) => (mask[y * width + x] = c === '#' ? 1 : 0)));
  return { mask, width, height };
};
const rows = (mask: Uint8Array, width: number): string[] =>
  Array.from({ length: mask.length / width }, (_, y) =>
    [...mask.subarray(y * width, (y + 1) * width)].map((v) => (v ? '#' : '.')).join(''),
  );

/** An RGB image whose pixel (x, y) is (x, y, 7). */
const ramp = (width: number, height: number) => {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x, y, 7], (y * width + x) * 3);
  return { data, width, height };
};

describe('cleanMask', () => {
  it('fills holes and removes specks smaller than the area; the box and area are of the cleaned mask', () => {
    const { mask, width, height } = grid(['#.......', '........', '..####..', '..#.##..', '..####..', '........']);
    const c = cleanMask(mask, width, height, 2);
    expect(rows(c.mask, width)).toEqual(['........', '........', '..####..', '..####..', '..####..', '........']);
    expect(c.area).toBe(12);
    expect(c.box).toEqual([2, 2, 5, 4]);
  });

  it("cleans on the box with a margin: the same as the generator's full-image step for an object away from the border", () => {
    const W = 120;
    const H = 90;
    let seed = 7;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const mask = new Uint8Array(W * H);
    for (let y = 20; y < 70; y++) for (let x = 30; x < 95; x++) if (rand() < 0.93) mask[y * W + x] = 1; // pepper holes
    for (let y = 40; y < 46; y++) for (let x = 50; x < 58; x++) mask[y * W + x] = 0; // a 48-px hole
    for (let k = 0; k < 6; k++) mask[(10 + k) * W + 5 + 3 * k] = 1; // specks
    for (let y = 75; y < 85; y++) for (let x = 100; x < 112; x++) mask[y * W + x] = 1; // a 120-px island
    for (const area of [1, 30, 100, 200]) {
      const holes = removeSmallRegions(mask, W, H, area, 'holes').mask;
      const full = removeSmallRegions(holes, W, H, area, 'islands').mask;
      const c = cleanMask(mask, W, H, area);
      expect(rows(c.mask, W), `area ${area}`).toEqual(rows(full, W));
      expect([c.area, ...c.box]).toEqual([maskArea(full), ...maskToBoxXyxy(full, W, H)]);
    }
    const c = cleanMask(mask, W, H, 100);
    expect(c.mask[42 * W + 52]).toBe(1);
    expect(c.mask[10 * W + 5]).toBe(0);
    expect(c.mask[80 * W + 105]).toBe(1);
  });

  it('never fills background that reaches the image border (a sliver along the edge stays outside)', () => {
    const { mask, width, height } = grid(['.####', '.#.##', '.####']);
    expect(rows(cleanMask(mask, width, height, 4).mask, width)).toEqual(['.####', '.####', '.####']);
    expect(maskBytes(Uint8Array.from([0, 1, 7]))).toEqual(Uint8Array.from([0, 255, 255]));
  });

  it('keeps the mask as it is with area 0, and reports an empty mask with an empty box', () => {
    const { mask, width, height } = grid(['#...', '..#.']);
    expect(cleanMask(mask, width, height, 0).mask).toBe(mask);
    const empty = cleanMask(new Uint8Array(8), 4, 2, 5);
    expect(empty.area).toBe(0);
    expect(cropRect(empty.box)[2]).toBe(0);
  });
});

describe('distanceToBackground and featherAlpha', () => {
  it('measures the Euclidean distance to the nearest background pixel; the border counts as background', () => {
    const { mask, width, height } = grid(['#####', '#####', '#####', '#####', '#####']);
    const d = distanceToBackground(mask, width, height);
    expect(d[0]).toBe(1);
    expect(d[2 * 5 + 2]).toBe(3);
    expect(d[1 * 5 + 1]).toBe(2);
    const hole = grid(['#####', '#####', '##.##', '#####', '#####']);
    const dh = distanceToBackground(hole.mask, 5, 5);
    expect(dh[2 * 5 + 2]).toBe(0);
    expect(dh[2 * 5 + 3]).toBe(1);
    expect(dh[1 * 5 + 1]).toBeCloseTo(Math.SQRT2, 6);
  });

  it('radius 0 is a hard edge: 255 inside, 0 outside', () => {
    const { mask, width, height } = grid(['.##.', '####']);
    expect([...featherAlpha(mask, width, height, 0)]).toEqual([0, 255, 255, 0, 255, 255, 255, 255]);
  });

  it('a radius fades the edge inwards only: 0 outside, rising with the depth, opaque from radius + ½ in', () => {
    const n = 11;
    const mask = new Uint8Array(n * n).fill(1);
    const a = featherAlpha(mask, n, n, 3);
    const row = [...a.subarray(5 * n, 6 * n)];
    expect(row.slice(0, 6)).toEqual([43, 128, 213, 255, 255, 255]);
    expect(row).toEqual([...row].reverse());
    const partial = grid(['..###', '..###']);
    const b = featherAlpha(partial.mask, 5, 2, 2);
    expect(b[0]).toBe(0);
    expect(b[1]).toBe(0);
    expect(b[2]).toBeGreaterThan(0);
  });
});

describe('cutObject', () => {
  it('cuts the tight crop of the box: RGB of the image, alpha 255 on the mask and 0 elsewhere', () => {
    const img = ramp(6, 5);
    const { mask } = grid(['......', '..##..', '..#...', '...#..', '......']);
    const box = cleanMask(mask, 6, 5, 0).box;
    expect(box).toEqual([2, 1, 3, 3]);
    expect(cropRect(box)).toEqual([2, 1, 2, 3]);
    const o = cutObject(img, mask, box, 0);
    expect([o.width, o.height]).toEqual([2, 3]);
    const px = (x: number, y: number) => [...o.data.subarray((y * 2 + x) * 4, (y * 2 + x) * 4 + 4)];
    expect(px(0, 0)).toEqual([2, 1, 7, 255]);
    expect(px(1, 0)).toEqual([3, 1, 7, 255]);
    expect(px(1, 1)).toEqual([3, 2, 7, 0]);
    expect(px(0, 2)).toEqual([2, 3, 7, 0]);
    expect(px(1, 2)).toEqual([3, 3, 7, 255]);
    expect(() => cutObject(img, new Uint8Array(30), [0, 0, -1, -1], 0)).toThrow(/empty/);
  });
});

describe('tintMasks', () => {
  it('blends each mask in its colour over the image and leaves the rest as it was', () => {
    const img = { data: new Uint8Array(4 * 3).fill(100), width: 4, height: 1 };
    const a = Uint8Array.from([1, 0, 0, 0]);
    const b = Uint8Array.from([0, 1, 0, 1]);
    const out = tintMasks(img, [a, b], 0.5);
    const [r0, g0, b0] = MASK_COLORS[0]!;
    const [r1, g1, b1] = MASK_COLORS[1]!;
    expect([...out.subarray(0, 3)]).toEqual([Math.round(50 + r0 / 2), Math.round(50 + g0 / 2), Math.round(50 + b0 / 2)]);
    expect([...out.subarray(3, 6)]).toEqual([Math.round(50 + r1 / 2), Math.round(50 + g1 / 2), Math.round(50 + b1 / 2)]);
    expect([...out.subarray(6, 9)]).toEqual([100, 100, 100]);
    expect(img.data[0]).toBe(100);
    expect(() => tintMasks(img, [new Uint8Array(3)])).toThrow(/does not match/);
    expect(maskColorHex(0)).toBe('#e6194b');
    expect(maskColorHex(MASK_COLORS.length)).toBe('#e6194b');
  });
});
