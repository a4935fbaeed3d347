import { describe, expect, it } from 'vitest';
import { maskArea, maskIoU, maskToBbox, rleArea, rleDecode, rleEncode } from './mask.js';

describe('mask utilities', () => {
  it('RLE is column-major, starts with zeros and round-trips', () => {
    // 3 rows × 4 cols; foreground at (x=1,y=0), (x=1,y=1), (x=3,y=2)
    const w = 4;
    const h = 3;
    const m = new Uint8Array(w * h);
    m[0 * w + 1] = 1;
    m[1 * w + 1] = 1;
    m[2 * w + 3] = 1;
    const rle = rleEncode(m, w, h);
    expect(rle.size).toEqual([3, 4]);
    // column-major sequence: col0 000, col1 110, col2 000, col3 001
    expect(rle.counts).toEqual([3, 2, 6, 1]);
    expect(rleArea(rle)).toBe(3);
    expect(rleDecode(rle)).toEqual(m);
    const full = new Uint8Array(6).fill(1);
    expect(rleEncode(full, 3, 2).counts).toEqual([0, 6]);
    expect(rleEncode(new Uint8Array(6), 3, 2).counts).toEqual([6]);
  });

  it('round-trips random masks and rejects bad counts', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (const [w, h] of [
      [17, 9],
      [1, 30],
      [64, 48],
    ] as const) {
      const m = new Uint8Array(w * h).map(() => (rnd() > 0.6 ? 1 : 0));
      const rle = rleEncode(m, w, h);
      expect(rleDecode(rle)).toEqual(m);
      expect(rleArea(rle)).toBe(maskArea(m));
    }
    expect(() => rleDecode({ size: [2, 2], counts: [1, 2] })).toThrow();
    expect(() => rleDecode({ size: [2, 2], counts: [3, 2] })).toThrow();
  });

  it('bbox uses an inclusive max (SAM AMG), IoU and area', () => {
    const w = 10;
    const h = 8;
    const a = new Uint8Array(w * h);
    for (let y = 2; y <= 5; y++) for (let x = 3; x <= 7; x++) a[y * w + x] = 1;
    expect(maskToBbox(a, w, h)).toEqual([3, 2, 4, 3]);
    expect(maskToBbox(new Uint8Array(w * h), w, h)).toEqual([0, 0, 0, 0]);
    expect(maskArea(a)).toBe(20);
    const b = new Uint8Array(w * h);
    for (let y = 2; y <= 5; y++) for (let x = 5; x <= 9; x++) b[y * w + x] = 1;
    expect(maskIoU(a, b)).toBeCloseTo(12 / 28, 10);
    expect(maskIoU(a, a)).toBe(1);
  });
});
