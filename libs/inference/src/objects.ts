/**
 * Object extraction from binary masks (row-major Uint8Array bitmaps, as mask.ts): clean a mask (small holes filled,
 * specks removed), cut the tight crop of an RGB image with the mask as alpha (optionally feathered inwards), and tint
 * every mask over the image. Pure typed-array code: the caller encodes the pixels (sharp) and stores them.
 */
import type { RgbImage } from '@aperture/imaging/decode.js';
import { removeSmallRegions } from './amg.js';
import { maskArea, maskToBoxXyxy } from './mask.js';

/** A cleaned mask of the full image, its foreground pixels and its box (XYXY, inclusive max). */
export interface CleanMask {
  mask: Uint8Array;
  area: number;
  box: [number, number, number, number];
}

/**
 * Fills holes and removes islands (8-connected) smaller than minRegion pixels, as the automatic mask generator's
 * small-region step does (an object made only of small islands keeps its largest). minRegion ≤ 0 keeps the mask.
 * The work is done on the mask's box with a margin of background around it, so its cost follows the object's size,
 * not the image's; background that reaches the margin (the outside, also along the image's border) is never a hole.
 */
export function cleanMask(mask: Uint8Array, width: number, height: number, minRegion: number): CleanMask {
  if (mask.length !== width * height) throw new Error(`Mask has ${mask.length} pixels, expected ${width}×${height}`);
  const box = maskToBoxXyxy(mask, width, height);
  if (box[2] === 0 && box[3] === 0 && mask[0] === 0) return { mask, area: 0, box: [0, 0, -1, -1] }; // empty
  if (minRegion <= 0) return { mask, area: maskArea(mask), box };
  // A margin wide enough that the background around the box is never smaller than minRegion: (2·pad)² ≥ minRegion.
  const pad = Math.ceil(Math.sqrt(minRegion) / 2) + 1;
  const [x0, y0, x1, y1] = box;
  const bw = x1 - x0 + 1;
  const ww = bw + 2 * pad;
  const wh = y1 - y0 + 1 + 2 * pad;
  let win: Uint8Array = new Uint8Array(ww * wh);
  for (let y = y0; y <= y1; y++) win.set(mask.subarray(y * width + x0, y * width + x1 + 1), (y - y0 + pad) * ww + pad);
  win = removeSmallRegions(win, ww, wh, minRegion, 'holes').mask;
  win = removeSmallRegions(win, ww, wh, minRegion, 'islands').mask;
  // Holes lie inside the box and islands are only removed: the cleaned mask stays within the box.
  const out = new Uint8Array(width * height);
  for (let y = y0; y <= y1; y++) {
    const from = (y - y0 + pad) * ww + pad;
    out.set(win.subarray(from, from + bw), y * width + x0);
  }
  const [cx0, cy0, cx1, cy1] = maskToBoxXyxy(win, ww, wh);
  return { mask: out, area: maskArea(win), box: [cx0 + x0 - pad, cy0 + y0 - pad, cx1 + x0 - pad, cy1 + y0 - pad] };
}

/** A mask as 0 / 255 bytes (a greyscale image). */
export function maskBytes(mask: Uint8Array): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = mask[i] !== 0 ? 255 : 0;
  return out;
}

/** [x, y, width, height] of the pixels a XYXY inclusive box covers (the tight crop). */
export const cropRect = (box: readonly [number, number, number, number]): [number, number, number, number] => [
  box[0],
  box[1],
  box[2] - box[0] + 1,
  box[3] - box[1] + 1,
];

const INF = 1e20;

/** Felzenszwalb–Huttenlocher 1-D squared distance transform of f (n values) into d; v and z are scratch. */
function edt1d(f: Float64Array, n: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -INF;
  z[1] = INF;
  for (let q = 1; q < n; q++) {
    let s = (f[q]! + q * q - (f[v[k]!]! + v[k]! * v[k]!)) / (2 * q - 2 * v[k]!);
    while (s <= z[k]!) {
      k--;
      s = (f[q]! + q * q - (f[v[k]!]! + v[k]! * v[k]!)) / (2 * q - 2 * v[k]!);
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = INF;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1]! < q) k++;
    d[q] = (q - v[k]!) * (q - v[k]!) + f[v[k]!]!;
  }
}

/**
 * Euclidean distance of every pixel to the nearest background pixel (0 on background); outside the bitmap counts as
 * background, so a foreground pixel on the border is at distance 1.
 */
export function distanceToBackground(mask: Uint8Array, width: number, height: number): Float32Array {
  // Padded by one background pixel on each side.
  const pw = width + 2;
  const ph = height + 2;
  const grid = new Float64Array(pw * ph);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if (mask[y * width + x] !== 0) grid[(y + 1) * pw + x + 1] = INF;
  }
  const n = Math.max(pw, ph);
  const f = new Float64Array(n);
  const d = new Float64Array(n);
  const v = new Int32Array(n);
  const z = new Float64Array(n + 1);
  for (let x = 0; x < pw; x++) {
    for (let y = 0; y < ph; y++) f[y] = grid[y * pw + x]!;
    edt1d(f, ph, d, v, z);
    for (let y = 0; y < ph; y++) grid[y * pw + x] = d[y]!;
  }
  for (let y = 0; y < ph; y++) {
    const row = y * pw;
    for (let x = 0; x < pw; x++) f[x] = grid[row + x]!;
    edt1d(f, pw, d, v, z);
    for (let x = 0; x < pw; x++) grid[row + x] = d[x]!;
  }
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[y * width + x] = Math.sqrt(grid[(y + 1) * pw + x + 1]!);
  }
  return out;
}

/**
 * The alpha channel of a mask: 0 outside it, 255 inside; with a feather radius r > 0 the edge fades inwards over r
 * pixels (alpha = 255·clamp((d − ½) / r, 0, 1), d the distance to the background), so nothing outside the mask
 * becomes visible and pixels at least r + ½ from the edge stay opaque.
 */
export function featherAlpha(mask: Uint8Array, width: number, height: number, radius: number): Uint8Array {
  const alpha = new Uint8Array(width * height);
  if (!(radius > 0)) {
    for (let i = 0; i < alpha.length; i++) alpha[i] = mask[i] !== 0 ? 255 : 0;
    return alpha;
  }
  const dist = distanceToBackground(mask, width, height);
  for (let i = 0; i < alpha.length; i++) {
    if (mask[i] === 0) continue;
    alpha[i] = Math.round(255 * Math.min(1, Math.max(0, (dist[i]! - 0.5) / radius)));
  }
  return alpha;
}

/** An RGBA bitmap (4 bytes a pixel, row-major). */
export interface RgbaImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * The object of a full-image mask: the tight crop rect [x, y, width, height] of its box, the image's RGB there and
 * the (feathered) mask as alpha.
 */
export function cutObject(img: RgbImage, mask: Uint8Array, box: readonly [number, number, number, number], feather: number): RgbaImage {
  const [cx, cy, w, h] = cropRect(box);
  if (w <= 0 || h <= 0) throw new Error('Cannot cut an empty mask');
  const crop = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) crop.set(mask.subarray((cy + y) * img.width + cx, (cy + y) * img.width + cx + w), y * w);
  const alpha = featherAlpha(crop, w, h, feather);
  const data = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    let src = ((cy + y) * img.width + cx) * 3;
    let dst = y * w * 4;
    for (let x = 0; x < w; x++, src += 3, dst += 4) {
      data[dst] = img.data[src]!;
      data[dst + 1] = img.data[src + 1]!;
      data[dst + 2] = img.data[src + 2]!;
      data[dst + 3] = alpha[y * w + x]!;
    }
  }
  return { data, width: w, height: h };
}

/** Distinct colours for masks, in order (RGB). */
export const MASK_COLORS: readonly (readonly [number, number, number])[] = [
  [230, 25, 75],
  [60, 180, 75],
  [67, 99, 216],
  [245, 130, 49],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
  [188, 246, 12],
  [0, 128, 128],
  [154, 99, 36],
];

/** '#rrggbb' of MASK_COLORS[i mod n]. */
export const maskColorHex = (i: number): string =>
  `#${MASK_COLORS[i % MASK_COLORS.length]!.map((c) => c.toString(16).padStart(2, '0')).join('')}`;

/** The image with mask i blended in MASK_COLORS[i] at `opacity` (later masks over earlier ones); a new RGB buffer. */
export function tintMasks(img: RgbImage, masks: readonly Uint8Array[], opacity = 0.5): Uint8Array {
  const out = Uint8Array.from(img.data);
  const keep = 1 - opacity;
  masks.forEach((mask, i) => {
    if (mask.length !== img.width * img.height) throw new Error(`Mask ${i} does not match the ${img.width}×${img.height} image`);
    const [r, g, b] = MASK_COLORS[i % MASK_COLORS.length]!;
    for (let p = 0, o = 0; p < mask.length; p++, o += 3) {
      if (mask[p] === 0) continue;
      out[o] = Math.round(out[o]! * keep + r * opacity);
      out[o + 1] = Math.round(out[o + 1]! * keep + g * opacity);
      out[o + 2] = Math.round(out[o + 2]! * keep + b * opacity);
    }
  });
  return out;
}
