/**
 * Binary masks are Uint8Array bitmaps, row-major (index y·width + x), 0 = background, anything else = foreground.
 * RLE is COCO's uncompressed form, as SAM's automatic mask generator writes it: column-major (Fortran) order,
 * the first count is a run of zeros (possibly 0), runs alternate.
 */

export interface Rle {
  /** [height, width] */
  size: [number, number];
  counts: number[];
}

/** [x, y, width, height] with an inclusive max (width = x1 − x0, as SAM's AMG); [0, 0, 0, 0] for an empty mask. */
export type BboxXywh = [number, number, number, number];

function checkSize(mask: Uint8Array, width: number, height: number): void {
  if (mask.length !== width * height) throw new Error(`Mask has ${mask.length} pixels, expected ${width}×${height}`);
}

export function rleEncode(mask: Uint8Array, width: number, height: number): Rle {
  checkSize(mask, width, height);
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let i = x; i < mask.length; i += width) {
      const v = mask[i] !== 0 ? 1 : 0;
      if (v !== current) {
        counts.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  }
  counts.push(run);
  return { size: [height, width], counts };
}

/** Decodes into out (allocated when absent); throws if the counts do not cover height·width exactly. */
export function rleDecode(rle: Rle, out?: Uint8Array): Uint8Array {
  const [height, width] = rle.size;
  const n = width * height;
  const mask = out ?? new Uint8Array(n);
  checkSize(mask, width, height);
  if (out) mask.fill(0);
  let p = 0; // position in column-major order
  let v = 0;
  for (const c of rle.counts) {
    if (c < 0 || p + c > n) throw new Error('RLE counts exceed the mask size');
    if (v === 1) {
      for (let k = p; k < p + c; k++) {
        const x = Math.floor(k / height);
        mask[(k - x * height) * width + x] = 1;
      }
    }
    p += c;
    v ^= 1;
  }
  if (p !== n) throw new Error(`RLE counts cover ${p} pixels, expected ${n}`);
  return mask;
}

/** Foreground pixels of an RLE: the sum of the odd-indexed counts. */
export function rleArea(rle: Rle): number {
  let a = 0;
  for (let i = 1; i < rle.counts.length; i += 2) a += rle.counts[i]!;
  return a;
}

export function maskArea(mask: Uint8Array): number {
  let a = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) a++;
  return a;
}

export function maskToBbox(mask: Uint8Array, width: number, height: number): BboxXywh {
  checkSize(mask, width, height);
  const [x0, y0, x1, y1] = maskToBoxXyxy(mask, width, height);
  return [x0, y0, x1 - x0, y1 - y0];
}

/** Box of one mask, XYXY with an inclusive max; [0, 0, 0, 0] when empty. */
export function maskToBoxXyxy(mask: Uint8Array, width: number, height: number): [number, number, number, number] {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let first = -1;
    let last = -1;
    for (let x = 0; x < width; x++) {
      if (mask[row + x] !== 0) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    if (y0 > y) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1, y1];
}

/** Intersection over union of two same-size masks; 0 when both are empty. */
export function maskIoU(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error('Masks differ in size');
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const fa = a[i] !== 0;
    const fb = b[i] !== 0;
    if (fa && fb) inter++;
    if (fa || fb) union++;
  }
  return union === 0 ? 0 : inter / union;
}
