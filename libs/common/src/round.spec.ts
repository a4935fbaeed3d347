import { describe, expect, it } from 'vitest';
import { roundTo } from './round.js';

describe('roundTo', () => {
  it('rounds to the given number of decimals', () => {
    expect(roundTo(1.23456, 2)).toBe(1.23);
    expect(roundTo(1.23456, 4)).toBe(1.2346);
    expect(roundTo(0.0005, 3)).toBe(0.001);
    expect(roundTo(72.45, 0)).toBe(72);
  });

  it('never answers −0', () => {
    expect(Object.is(roundTo(-0.0001, 2), 0)).toBe(true);
  });
});
