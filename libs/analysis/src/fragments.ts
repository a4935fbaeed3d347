/**
 * Fragment sizing: equivalent diameters of segmented fragments, calibrated by a red ball of known
 * real radius, and the D10/D50/D90 of the size distribution.
 *
 *   D_px   = sqrt(4·A/π), A = mask area in original-image pixels
 *   scale  = realRadius / ball_radius_px (units per pixel, linear)
 *   D_real = D_px · scale
 *   Dxx    = numpy.percentile(D, xx) with the default 'linear' method
 *
 * The ball's radius is measured on the image itself, not taken from the segmentation mask: inside the ball
 * detection's box grown by 20 % per side, the pixels that are red in HSV (RED_HSV) and lie in the dilated mask or
 * the box form candidate regions; the largest 8-connected one, holes filled, is the ball. Its radius is the
 * equivalent radius sqrt(count/π) and its centre the centroid. (On the six fixtures the equivalent radius is within
 * 0.11 % of the true radius; the enclosing circle around the centroid overestimates by 1.4–3.9 %, the mask's equivalent
 * radius errs by −0.8..+4.7 %.) When the region is implausible (fewer than 20 pixels, under half or over twice the
 * mask's area, or filling under 0.7 of its enclosing circle around the centroid: the source system's
 * "circularity > 0.7"), the mask's equivalent radius sqrt(area/π) and centroid are used instead (method 'mask').
 */
import type { RgbImage } from '@aperture/imaging/decode.js';
import { LENGTH_UNITS, type LengthUnit } from '@aperture/common/length-units.js';
import { roundTo as round } from '@aperture/common/round.js';
import { rleArea, rleDecode, type Rle } from '@aperture/inference/mask.js';

export interface FragmentInput {
  classId: number;
  score: number;
  /** x1, y1, x2, y2 in original-image pixels. */
  box: [number, number, number, number];
  rle: Rle;
  /** Foreground pixels of the mask (original-image pixels). */
  area: number;
}

export interface FragmentAnalysisParams {
  /** The calibration ball's real radius in `unit`; null: no calibration (results in px). */
  realRadius: number | null;
  unit: LengthUnit;
  ballClassId: number;
}

export interface BallCalibration {
  cx: number;
  cy: number;
  radius_px: number;
  score: number;
  method: 'red-pixels' | 'mask';
}

export interface FragmentRow {
  /** 1-based, in input order among the fragments (the ball is not counted). */
  id: number;
  score: number;
  box_xyxy: [number, number, number, number];
  area_px: number;
  diameter_px: number;
  /** In the analysis' unit (equal to diameter_px when uncalibrated). */
  diameter: number;
}

export interface FragmentAnalysis {
  calibrated: boolean;
  unit: LengthUnit;
  /** Units per pixel; 1 when the unit is px. */
  scale: number;
  ball: BallCalibration | null;
  warning: string | null;
  count: number;
  /** Sorted ascending, in unit. */
  diameters: number[];
  d10: number | null;
  d50: number | null;
  d90: number | null;
  min: number | null;
  max: number | null;
  mean: number | null;
  fragments: FragmentRow[];
}

/**
 * Red in HSV: hue within ±20° of 0°, saturation ≥ 0.7, value ≥ 40/255. The value floor is low because shaded balls
 * go down to ≈ 0.45 of full brightness (V ≈ 97 on the fixtures). The saturation floor sits between the ball (≈ 0.88)
 * and the grey/brown background (≤ 0.3), where an edge pixel half ball, half background lands (≈ 0.7), so the
 * region's area is that of the disc itself: measured on the six fixtures, S ≥ 0.5 / 0.6 / 0.7 / 0.8 give radius
 * errors of +0.3..+3.1 % / −0.1..+1.3 % / −0.11..+0.04 % / −1.3..−0.1 %.
 */
const RED_HSV = { hueDeg: 20, minSaturation: 0.7, minValue: 40 } as const;
/** The ball detection's box is grown by this fraction of its width/height on each side before looking for red. */
const BOX_GROWTH = 0.2;
const MIN_RED_PIXELS = 20;
const MIN_FILL = 0.7;

/** Diameter of the disc with the same area: sqrt(4A/π). */
export function equivalentDiameter(areaPx: number): number {
  if (!(areaPx >= 0)) throw new RangeError(`Area must be a non-negative number, got ${areaPx}`);
  return Math.sqrt((4 * areaPx) / Math.PI);
}

/**
 * numpy.percentile(a, p) with the default method='linear' on an already ascending array: virtual index (n−1)·p/100,
 * then numpy's _lerp (a + (b−a)·t, computed from the upper neighbour when t ≥ 0.5), so results match bit for bit.
 */
export function percentileLinear(sortedAsc: ArrayLike<number>, p: number): number {
  const n = sortedAsc.length;
  if (n === 0) throw new RangeError('percentileLinear of an empty array');
  if (!(p >= 0 && p <= 100)) throw new RangeError(`Percentile must be within [0, 100], got ${p}`);
  const virtual = (n - 1) * (p / 100);
  const lo = Math.min(Math.max(Math.floor(virtual), 0), n - 1);
  const hi = Math.min(lo + 1, n - 1);
  const t = virtual - lo;
  const a = sortedAsc[lo]!;
  const b = sortedAsc[hi]!;
  const diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

/** Red in HSV (see RED_HSV), on 0–255 channels without computing the hue: max = R and |G − B| ≤ chroma·hue/60. */
export function isRedPixel(r: number, g: number, b: number): boolean {
  if (r < g || r < b || r < RED_HSV.minValue) return false;
  const chroma = r - (g < b ? g : b);
  if (chroma < RED_HSV.minSaturation * r || chroma === 0) return false;
  return Math.abs(g - b) * 60 <= chroma * RED_HSV.hueDeg;
}

/** Square dilation by k pixels of a w×h window mask (separable running max). */
function dilate(src: Uint8Array, w: number, h: number, k: number): Uint8Array {
  const tmp = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let last = -Infinity; // x of the last set pixel seen going right
    for (let x = 0; x < w + k; x++) {
      if (x < w && src[row + x]) last = x;
      const t = x - k;
      if (t >= 0 && t < w && x - last <= 2 * k) tmp[row + t] = 1;
    }
  }
  const out = new Uint8Array(w * h);
  for (let x = 0; x < w; x++) {
    let last = -Infinity;
    for (let y = 0; y < h + k; y++) {
      if (y < h && tmp[y * w + x]) last = y;
      const t = y - k;
      if (t >= 0 && t < h && y - last <= 2 * k) out[t * w + x] = 1;
    }
  }
  return out;
}

/**
 * The largest 8-connected region of `fg` (a w×h window) with its holes filled (pixels that the window's border
 * cannot reach through 4-connected non-region pixels, e.g. a specular highlight): its pixel indices and sums of x, y.
 */
function largestRegion(fg: Uint8Array, w: number, h: number): { count: number; sx: number; sy: number; pixels: Int32Array } | null {
  const n = w * h;
  const label = new Int32Array(n); // 0 = unvisited
  const queue = new Int32Array(n);
  let bestId = 0;
  let bestCount = 0;
  let id = 0;
  for (let s = 0; s < n; s++) {
    if (!fg[s] || label[s]) continue;
    id++;
    let head = 0;
    let tail = 0;
    queue[tail++] = s;
    label[s] = id;
    while (head < tail) {
      const p = queue[head++]!;
      const y = (p / w) | 0;
      const x = p - y * w;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          const q = yy * w + xx;
          if (fg[q] && !label[q]) {
            label[q] = id;
            queue[tail++] = q;
          }
        }
      }
    }
    if (tail > bestCount) {
      bestCount = tail;
      bestId = id;
    }
  }
  if (bestId === 0) return null;
  // Outside = reachable from the border without crossing the region; everything else is the filled region.
  const outside = new Uint8Array(n);
  let head = 0;
  let tail = 0;
  const seed = (q: number): void => {
    if (label[q] !== bestId && !outside[q]) {
      outside[q] = 1;
      queue[tail++] = q;
    }
  };
  for (let x = 0; x < w; x++) {
    seed(x);
    seed((h - 1) * w + x);
  }
  for (let y = 0; y < h; y++) {
    seed(y * w);
    seed(y * w + w - 1);
  }
  while (head < tail) {
    const p = queue[head++]!;
    const y = (p / w) | 0;
    const x = p - y * w;
    if (x > 0) seed(p - 1);
    if (x < w - 1) seed(p + 1);
    if (y > 0) seed(p - w);
    if (y < h - 1) seed(p + w);
  }
  const pixels = new Int32Array(n - tail);
  let k = 0;
  let sx = 0;
  let sy = 0;
  for (let p = 0; p < n; p++) {
    if (outside[p]) continue;
    pixels[k++] = p;
    const y = (p / w) | 0;
    sx += p - y * w;
    sy += y;
  }
  return { count: k, sx, sy, pixels };
}

function checkRle(rle: Rle, img: RgbImage, what: string): void {
  if (rle.size[0] !== img.height || rle.size[1] !== img.width) {
    throw new Error(`${what}: mask is ${rle.size[1]}×${rle.size[0]}, image is ${img.width}×${img.height}`);
  }
}

/** What measureBall found, before rounding; `red` describes the red region even when it was rejected. */
export interface BallMeasurement {
  cx: number;
  cy: number;
  radiusPx: number;
  method: 'red-pixels' | 'mask';
  red: { count: number; cx: number; cy: number; equivalentRadius: number; enclosingRadius: number; fill: number } | null;
  maskArea: number;
}

/**
 * Measures the calibration ball of one detection (see the file comment). Returns null when neither the red pixels
 * nor the mask give anything (no red region and an empty mask).
 */
export function measureBall(img: RgbImage, det: FragmentInput): BallMeasurement | null {
  const { width: W, height: H, data } = img;
  checkRle(det.rle, img, 'calibration ball');
  const mask = rleDecode(det.rle);
  let maskArea = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) {
      if (mask[row + x]) {
        maskArea++;
        mx += x;
        my += y;
      }
    }
  }
  const [bx1, by1, bx2, by2] = det.box;
  const gx = BOX_GROWTH * Math.max(0, bx2 - bx1);
  const gy = BOX_GROWTH * Math.max(0, by2 - by1);
  const X0 = Math.max(0, Math.floor(bx1 - gx));
  const Y0 = Math.max(0, Math.floor(by1 - gy));
  const X1 = Math.min(W, Math.ceil(bx2 + gx));
  const Y1 = Math.min(H, Math.ceil(by2 + gy));
  let red: BallMeasurement['red'] = null;
  let redOk = false;
  if (X0 < X1 && Y0 < Y1) {
    const w = X1 - X0;
    const h = Y1 - Y0;
    const win = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) win[y * w + x] = mask[(y + Y0) * W + x + X0]!;
    const k = Math.max(2, Math.ceil(0.15 * Math.sqrt(maskArea / Math.PI)));
    const allowed = dilate(win, w, h, k);
    const fg = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      const Y = y + Y0;
      const inBoxY = Y >= Math.floor(by1) && Y < Math.ceil(by2);
      for (let x = 0; x < w; x++) {
        const X = x + X0;
        const i = y * w + x;
        if (!allowed[i] && !(inBoxY && X >= Math.floor(bx1) && X < Math.ceil(bx2))) continue;
        const p = (Y * W + X) * 3;
        if (isRedPixel(data[p]!, data[p + 1]!, data[p + 2]!)) fg[i] = 1;
      }
    }
    const region = largestRegion(fg, w, h);
    if (region) {
      const cx = region.sx / region.count;
      const cy = region.sy / region.count;
      let r2 = 0;
      for (let j = 0; j < region.pixels.length; j++) {
        const p = region.pixels[j]!;
        const y = (p / w) | 0;
        const dx = p - y * w - cx;
        const dy = y - cy;
        const d2 = dx * dx + dy * dy;
        if (d2 > r2) r2 = d2;
      }
      const enclosingRadius = Math.sqrt(r2) + 0.5;
      const fill = region.count / (Math.PI * enclosingRadius * enclosingRadius);
      red = { count: region.count, cx: cx + X0, cy: cy + Y0, equivalentRadius: Math.sqrt(region.count / Math.PI), enclosingRadius, fill };
      redOk =
        region.count >= MIN_RED_PIXELS &&
        fill >= MIN_FILL &&
        (maskArea === 0 || (region.count >= 0.5 * maskArea && region.count <= 2 * maskArea));
    }
  }
  if (red && redOk) return { cx: red.cx, cy: red.cy, radiusPx: red.equivalentRadius, method: 'red-pixels', red, maskArea };
  if (maskArea > 0) return { cx: mx / maskArea, cy: my / maskArea, radiusPx: Math.sqrt(maskArea / Math.PI), method: 'mask', red, maskArea };
  return null;
}

function stats(sorted: number[]): Pick<FragmentAnalysis, 'd10' | 'd50' | 'd90' | 'min' | 'max' | 'mean'> {
  if (sorted.length === 0) return { d10: null, d50: null, d90: null, min: null, max: null, mean: null };
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    d10: round(percentileLinear(sorted, 10), 4),
    d50: round(percentileLinear(sorted, 50), 4),
    d90: round(percentileLinear(sorted, 90), 4),
    min: round(sorted[0]!, 4),
    max: round(sorted[sorted.length - 1]!, 4),
    mean: round(sum / sorted.length, 4),
  };
}

/**
 * Sizes the fragments of one image. Detections of `ballClassId` are calibration balls (the highest-scored one is
 * used), all others fragments, numbered from 1 in input order. Everything is computed at full precision and rounded
 * at the end (4 decimals; ball centre 2, scale 8).
 */
export function analyzeFragments(img: RgbImage, dets: FragmentInput[], params: FragmentAnalysisParams): FragmentAnalysis {
  if (!(LENGTH_UNITS as readonly string[]).includes(params.unit)) throw new Error(`Unknown unit ${String(params.unit)}`);
  if (params.realRadius !== null && !(Number.isFinite(params.realRadius) && params.realRadius > 0)) {
    throw new RangeError(`realRadius must be a positive number or null, got ${params.realRadius}`);
  }
  let ballDet: FragmentInput | null = null;
  const frags: FragmentInput[] = [];
  for (const d of dets) {
    if (d.classId === params.ballClassId) {
      if (!ballDet || d.score > ballDet.score) ballDet = d;
    } else {
      frags.push(d);
    }
  }

  const measured = ballDet ? measureBall(img, ballDet) : null;
  const ball: BallCalibration | null =
    ballDet && measured
      ? {
          cx: round(measured.cx, 2),
          cy: round(measured.cy, 2),
          radius_px: round(measured.radiusPx, 4),
          score: round(ballDet.score, 4),
          method: measured.method,
        }
      : null;

  let calibrated = false;
  let unit: LengthUnit = 'px';
  let scale = 1;
  let warning: string | null = null;
  if (params.realRadius !== null && params.unit !== 'px') {
    if (measured && measured.radiusPx > 0) {
      calibrated = true;
      unit = params.unit;
      scale = params.realRadius / measured.radiusPx;
    } else {
      warning = ballDet
        ? `A calibration ball was detected (score ${round(ballDet.score, 4)}) but could not be measured ` +
          '(no red pixels and an empty mask); diameters are in px.'
        : 'No calibration ball was detected; diameters are in px.';
    }
  }

  const fragments: FragmentRow[] = [];
  const diameters: number[] = [];
  frags.forEach((d, i) => {
    checkRle(d.rle, img, `fragment ${i + 1}`);
    const area = Number.isFinite(d.area) && d.area >= 0 ? d.area : rleArea(d.rle);
    const dPx = equivalentDiameter(area);
    const dReal = dPx * scale;
    diameters.push(dReal);
    fragments.push({
      id: i + 1,
      score: round(d.score, 4),
      box_xyxy: [round(d.box[0], 2), round(d.box[1], 2), round(d.box[2], 2), round(d.box[3], 2)],
      area_px: area,
      diameter_px: round(dPx, 4),
      diameter: round(dReal, 4),
    });
  });
  diameters.sort((a, b) => a - b);
  return {
    calibrated,
    unit,
    scale: round(scale, 8),
    ball,
    warning,
    count: fragments.length,
    ...stats(diameters),
    diameters: diameters.map((v) => round(v, 4)),
    fragments,
  };
}

/**
 * CSV of the fragment rows, LF line endings and a final LF: header `id,score,x1,y1,x2,y2,area_px,diameter_px,
 * diameter_<unit>` (uncalibrated, the last column is `diameter_px` too and equals the one before it).
 */
export function fragmentsCsv(a: FragmentAnalysis): string {
  const lines = [`id,score,x1,y1,x2,y2,area_px,diameter_px,diameter_${a.unit}`];
  for (const f of a.fragments)
    lines.push([f.id, f.score, ...f.box_xyxy, f.area_px, f.diameter_px, f.diameter].map((v) => String(v)).join(','));
  return lines.join('\n') + '\n';
}
