/** x rounded to `digits` decimals (half away from zero for positives, as Math.round), never −0. */
export function roundTo(x: number, digits: number): number {
  const k = 10 ** digits;
  const r = Math.round(x * k) / k;
  return Object.is(r, -0) ? 0 : r;
}
