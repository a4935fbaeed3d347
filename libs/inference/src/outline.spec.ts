import { describe, expect, it } from 'vitest';
import { outlineArea, outlinePath, traceOutlines } from './outline.js';

const grid = (rows: string[]): { mask: Uint8Array; width: number; height: number } => {
  const height = rows.length;
  const width = rows[0]!.length;
  const mask = new Uint8Array(width * height);
  rows.forEach((r, y) => [...r].forEach((c, x) => (mask[y * width + x] = c === '#' ? 1 : 0)));
  return { mask, width, height };
};

describe('traceOutlines', () => {
  it('outlines a single pixel as a unit square, clockwise (y down)', () => {
    const { mask, width, height } = grid(['...', '.#.', '...']);
    const loops = traceOutlines(mask, width, height);
    expect(loops).toHaveLength(1);
    expect(loops[0]).toHaveLength(8);
    expect(outlineArea(loops)).toBe(1);
    expect(outlinePath(loops)).toMatch(/^M\d \d(L\d \d){3}Z$/);
  });

  it('keeps only corners: a rectangle touching the border is 4 vertices', () => {
    const { mask, width, height } = grid(['###.', '###.']);
    const loops = traceOutlines(mask, width, height);
    expect(loops).toHaveLength(1);
    expect(loops[0]).toHaveLength(8);
    expect(new Set(loops[0]!.map(String))).toEqual(new Set(['0', '3', '2']));
    expect(outlineArea(loops)).toBe(6);
  });

  it('gives a hole its own loop of opposite orientation: the area is the pixel count', () => {
    const { mask, width, height } = grid(['#####', '#...#', '#...#', '#####']);
    const loops = traceOutlines(mask, width, height);
    expect(loops).toHaveLength(2);
    expect(outlineArea(loops)).toBe(14);
  });

  it('closes loops through diagonal (saddle) contacts and separate components', () => {
    const { mask, width, height } = grid(['#..#', '.#..', '....', '##.#']);
    const loops = traceOutlines(mask, width, height);
    expect(outlineArea(loops)).toBe(6);
    for (const l of loops) expect(l.length % 2).toBe(0);
  });

  it('matches the pixel count on a random mask', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const width = 37;
    const height = 23;
    const mask = Uint8Array.from({ length: width * height }, () => (rnd() < 0.45 ? 1 : 0));
    expect(outlineArea(traceOutlines(mask, width, height))).toBe(mask.reduce((a, b) => a + b, 0));
  });

  it('returns no loop for an empty mask and refuses a wrong size', () => {
    expect(traceOutlines(new Uint8Array(6), 3, 2)).toEqual([]);
    expect(() => traceOutlines(new Uint8Array(5), 3, 2)).toThrow(/expected 3×2/);
  });
});
