/**
 * Outlines of a binary mask (row-major, 0 = background) as closed polygons on the pixel grid, for drawing a mask as
 * a vector path. Each foreground pixel's sides that face background (or the image border) are directed edges with
 * the foreground on their right (clockwise around an object, counter-clockwise around a hole, y pointing down);
 * edges are chained into loops and only the corners are kept. Filled with fill-rule evenodd or nonzero, the loops
 * cover exactly the mask's pixels.
 */

/** One closed loop: corner coordinates x0, y0, x1, y1, … on the pixel grid (0..width, 0..height). */
export type OutlineLoop = number[];

export function traceOutlines(mask: Uint8Array, width: number, height: number): OutlineLoop[] {
  if (mask.length !== width * height) throw new Error(`Mask has ${mask.length} pixels, expected ${width}×${height}`);
  const stride = width + 1;
  const on = (x: number, y: number): boolean => x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] !== 0;
  // Outgoing edges per grid vertex (a saddle vertex has two).
  const next = new Map<number, number[]>();
  const add = (x0: number, y0: number, x1: number, y1: number): void => {
    const from = y0 * stride + x0;
    const list = next.get(from);
    if (list) list.push(y1 * stride + x1);
    else next.set(from, [y1 * stride + x1]);
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (mask[y * width + x] === 0) continue;
      if (!on(x, y - 1)) add(x, y, x + 1, y);
      if (!on(x + 1, y)) add(x + 1, y, x + 1, y + 1);
      if (!on(x, y + 1)) add(x + 1, y + 1, x, y + 1);
      if (!on(x - 1, y)) add(x, y + 1, x, y);
    }
  }
  const loops: OutlineLoop[] = [];
  for (const [start, outs] of next) {
    while (outs.length > 0) {
      const vertices: number[] = [start];
      let v = outs.pop()!;
      while (v !== start) {
        vertices.push(v);
        const o = next.get(v);
        if (!o || o.length === 0) throw new Error('Outline did not close'); // cannot happen: every vertex is balanced
        v = o.pop()!;
      }
      loops.push(corners(vertices, stride));
    }
  }
  return loops;
}

/** The loop's vertices where the direction changes, as flat x, y coordinates. */
function corners(vertices: number[], stride: number): OutlineLoop {
  const n = vertices.length;
  const xy = (i: number): [number, number] => {
    const v = vertices[((i % n) + n) % n]!;
    return [v % stride, Math.floor(v / stride)];
  };
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const [px, py] = xy(i - 1);
    const [x, y] = xy(i);
    const [nx, ny] = xy(i + 1);
    if (x - px !== nx - x || y - py !== ny - y) out.push(x, y);
  }
  return out;
}

/** An SVG path's d attribute for the loops: one closed subpath per loop. */
export function outlinePath(loops: readonly OutlineLoop[]): string {
  return loops
    .map((loop) => {
      let d = `M${loop[0]} ${loop[1]}`;
      for (let i = 2; i < loop.length; i += 2) d += `L${loop[i]} ${loop[i + 1]}`;
      return `${d}Z`;
    })
    .join('');
}

/** The area enclosed by the loops (shoelace; holes count negative): equals the mask's pixel count. */
export function outlineArea(loops: readonly OutlineLoop[]): number {
  let total = 0;
  for (const loop of loops) {
    let a = 0;
    for (let i = 0; i < loop.length; i += 2) {
      const j = (i + 2) % loop.length;
      a += loop[i]! * loop[j + 1]! - loop[j]! * loop[i + 1]!;
    }
    total += a / 2;
  }
  return total;
}
