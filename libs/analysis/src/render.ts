/**
 * Result images: the fragment overlay (masks blended over the photo, outlines, the calibration ball's circle), a
 * 16-bit label mask, the cumulative passing-size chart, and detections (possibly rotated boxes) drawn on an image.
 * Pixel work is done in typed arrays; sharp encodes, and renders the SVG parts (chart, box tags).
 */
import sharp from 'sharp';
import { rleDecode, type Rle } from '@aperture/inference/mask.js';
import { chw01ToRgb } from '@aperture/inference/preprocess.js';
import { type RgbImage } from '@aperture/imaging/decode.js';
import { roundTo } from '@aperture/common/round.js';
import { type FragmentAnalysis, type FragmentInput } from './fragments.js';

/** zlib level 3 for full-size result images: about a third faster than sharp's default 6, for a few percent more bytes. */
const RESULT_PNG = { compressionLevel: 3 } as const;

const GOLDEN = 0.6180339887498949;
/** Opacity of a fragment's colour over the photo. */
export const OVERLAY_ALPHA = 0.45;
/** The ball's circle: white, a colour colourFor never produces (its saturation is 0.7). */
export const BALL_COLOUR: readonly [number, number, number] = [255, 255, 255];

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][((i % 6) + 6) % 6]!;
  return [Math.round(r! * 255), Math.round(g! * 255), Math.round(b! * 255)];
}

/** A stable colour per index: hues in golden-ratio steps (neighbouring indices far apart), saturation 0.7, value 0.95. */
export function colourFor(index: number): [number, number, number] {
  if (!Number.isInteger(index)) throw new RangeError(`colourFor needs an integer, got ${index}`);
  const h = (((index * GOLDEN) % 1) + 1) % 1;
  return hsvToRgb(h, 0.7, 0.95);
}

/** FNV-1a of a string: a stable colour index per label across images and runs. */
function labelIndex(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0xffff;
}

/** Escapes text for SVG/XML content and attribute values. */
function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** At most 4 significant digits, no exponent for the sizes met here, no trailing zeros. */
function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toPrecision(3);
  const digits = Math.max(0, 3 - Math.floor(Math.log10(a)));
  return String(Number(v.toFixed(Math.min(digits, 6))));
}

/** Column and row range [x0, x1) × [y0, y1) that an RLE's foreground can occupy (whole columns when a run wraps). */
function rleExtent(rle: Rle): [number, number, number, number] | null {
  const [h, w] = rle.size;
  let x0 = w;
  let x1 = -1;
  let y0 = h;
  let y1 = -1;
  let p = 0;
  for (let i = 0; i < rle.counts.length; i++) {
    const c = rle.counts[i]!;
    if (i % 2 === 1 && c > 0) {
      const ca = Math.floor(p / h);
      const cb = Math.floor((p + c - 1) / h);
      x0 = Math.min(x0, ca);
      x1 = Math.max(x1, cb);
      if (ca !== cb) {
        y0 = 0;
        y1 = h - 1;
      } else {
        y0 = Math.min(y0, p - ca * h);
        y1 = Math.max(y1, p + c - 1 - ca * h);
      }
    }
    p += c;
  }
  if (x1 < 0) return null;
  return [x0, y0, Math.min(w, x1 + 1), Math.min(h, y1 + 1)];
}

function checkImage(img: RgbImage): void {
  const { width: w, height: h } = img;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w <= 0 || h <= 0) throw new Error(`Bad image size ${w}×${h}`);
  if (img.data.length !== w * h * 3) throw new Error(`RGB buffer has ${img.data.length} bytes, expected ${w}×${h}×3`);
}

function checkMaskSize(rle: Rle, width: number, height: number): void {
  if (rle.size[0] !== height || rle.size[1] !== width)
    throw new Error(`Mask is ${rle.size[1]}×${rle.size[0]}, image is ${width}×${height}`);
}

/**
 * Pairs the detections given to analyzeFragments with the analysis' rows: walking both in order, a detection whose
 * rounded box and score are those of the next row is that fragment, any other is a calibration ball.
 */
function fragmentIds(dets: FragmentInput[], analysis: FragmentAnalysis): (number | null)[] {
  const rows = analysis.fragments;
  let j = 0;
  const ids = dets.map((d) => {
    const r = rows[j];
    if (r && roundTo(d.score, 4) === r.score && d.box.every((v, k) => roundTo(v, 2) === r.box_xyxy[k])) {
      j++;
      return r.id;
    }
    return null;
  });
  if (j !== rows.length) throw new Error(`The detections do not match the analysis (${j} of its ${rows.length} fragments found)`);
  return ids;
}

/**
 * The photo with each fragment's mask blended at OVERLAY_ALPHA in colourFor(id), its outline in full colour, and
 * the calibration ball (analysis.ball) as a white circle; PNG, the image's size. `dets` are the detections that were
 * given to analyzeFragments (same order). One label buffer is reused for every mask.
 */
export async function renderFragmentOverlay(img: RgbImage, dets: FragmentInput[], analysis: FragmentAnalysis): Promise<Buffer> {
  checkImage(img);
  const { width: W, height: H } = img;
  const px = Buffer.from(img.data); // a copy
  const label = new Uint8Array(W * H);
  const t = Math.max(1, Math.round(Math.min(W, H) / 500)); // outline thickness
  const ids = fragmentIds(dets, analysis);
  dets.forEach((d, k) => {
    const id = ids[k];
    if (id === null || id === undefined) return;
    checkMaskSize(d.rle, W, H);
    const ext = rleExtent(d.rle);
    if (!ext) return;
    rleDecode(d.rle, label);
    const [cr, cg, cb] = colourFor(id);
    const [x0, y0, x1, y1] = ext;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = y * W + x;
        if (!label[i]) continue;
        let edge = false;
        for (let s = 1; s <= t && !edge; s++) {
          edge =
            x - s < 0 || x + s >= W || y - s < 0 || y + s >= H || !label[i - s] || !label[i + s] || !label[i - s * W] || !label[i + s * W];
        }
        const p = i * 3;
        if (edge) {
          px[p] = cr;
          px[p + 1] = cg;
          px[p + 2] = cb;
        } else {
          px[p] = Math.round(px[p]! * (1 - OVERLAY_ALPHA) + cr * OVERLAY_ALPHA);
          px[p + 1] = Math.round(px[p + 1]! * (1 - OVERLAY_ALPHA) + cg * OVERLAY_ALPHA);
          px[p + 2] = Math.round(px[p + 2]! * (1 - OVERLAY_ALPHA) + cb * OVERLAY_ALPHA);
        }
      }
    }
  });
  const ball = analysis.ball;
  if (ball && ball.radius_px > 0) {
    const half = Math.max(1, t); // ring half-width
    const rOut = ball.radius_px + half;
    const rIn = Math.max(0, ball.radius_px - half);
    const bx0 = Math.max(0, Math.floor(ball.cx - rOut));
    const bx1 = Math.min(W - 1, Math.ceil(ball.cx + rOut));
    const by0 = Math.max(0, Math.floor(ball.cy - rOut));
    const by1 = Math.min(H - 1, Math.ceil(ball.cy + rOut));
    for (let y = by0; y <= by1; y++) {
      for (let x = bx0; x <= bx1; x++) {
        const d2 = (x - ball.cx) ** 2 + (y - ball.cy) ** 2;
        if (d2 < rIn * rIn || d2 > rOut * rOut) continue;
        const p = (y * W + x) * 3;
        px[p] = BALL_COLOUR[0];
        px[p + 1] = BALL_COLOUR[1];
        px[p + 2] = BALL_COLOUR[2];
      }
    }
  }
  return sharp(px, { raw: { width: W, height: H, channels: 3 } })
    .png(RESULT_PNG)
    .toBuffer();
}

/**
 * A 16-bit grayscale PNG of the fragments: pixel = fragment id (1-based in input order, the ball's class skipped,
 * as analyzeFragments numbers them), 0 = background; where masks overlap the earlier fragment keeps the pixel.
 */
export async function renderLabelMask(width: number, height: number, dets: FragmentInput[], ballClassId: number): Promise<Buffer> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0)
    throw new Error(`Bad image size ${width}×${height}`);
  const out = new Uint16Array(width * height);
  const label = new Uint8Array(width * height);
  let id = 0;
  for (const d of dets) {
    if (d.classId === ballClassId) continue;
    id++;
    if (id > 65535) throw new RangeError('A 16-bit label mask holds at most 65535 fragments');
    checkMaskSize(d.rle, width, height);
    const ext = rleExtent(d.rle);
    if (!ext) continue;
    rleDecode(d.rle, label);
    const [x0, y0, x1, y1] = ext;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = y * width + x;
        if (label[i] && out[i] === 0) out[i] = id;
      }
    }
  }
  return sharp(out, { raw: { width, height, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
}

const CHART_WIDTH = 900;
const CHART_HEIGHT = 560;
const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="${FONT}" ${attrs}>${escapeXml(s)}</text>`;
}

/** Ticks of a linear axis: 1, 2 or 5 × 10^k steps, about `target` of them. */
function linearTicks(lo: number, hi: number, target = 6): number[] {
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/**
 * Cumulative % passing (y) against the equivalent diameter (x, log axis when all diameters are positive, else
 * linear) as an SVG string, CHART_WIDTH × CHART_HEIGHT. The line joins (D_i, 100·i/(n−1)) over the sorted
 * diameters, the curve numpy's linear percentiles read, so D10/D50/D90 (dashed) fall on it; the dots are the
 * fragments.
 */
export function passingChartSvg(analysis: FragmentAnalysis): string {
  const Wc = CHART_WIDTH;
  const Hc = CHART_HEIGHT;
  const unitLabel = analysis.calibrated ? analysis.unit : 'px, uncalibrated';
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${Wc}" height="${Hc}" viewBox="0 0 ${Wc} ${Hc}">`,
    `<rect width="${Wc}" height="${Hc}" fill="#ffffff"/>`,
    text(
      Wc / 2,
      32,
      'Fragment size distribution: cumulative % passing',
      'font-size="20" font-weight="bold" text-anchor="middle" fill="#222"',
    ),
  ];
  const d = analysis.diameters;
  if (d.length === 0) {
    parts.push(text(Wc / 2, Hc / 2, 'No fragments detected', 'font-size="28" text-anchor="middle" fill="#666"'));
    if (analysis.warning) parts.push(text(Wc / 2, Hc / 2 + 36, analysis.warning, 'font-size="14" text-anchor="middle" fill="#a33"'));
    parts.push('</svg>');
    return parts.join('');
  }
  const plural = analysis.count === 1 ? '' : 's';
  const subtitle = `${analysis.count} fragment${plural}; diameters in ${unitLabel}${analysis.warning ? ` (${analysis.warning})` : ''}`;
  parts.push(text(Wc / 2, 54, subtitle, 'font-size="13" text-anchor="middle" fill="#555"'));
  const L = 80;
  const R = Wc - 30;
  const T = 75;
  const B = Hc - 70;
  const min = d[0]!;
  const max = d[d.length - 1]!;
  const log = min > 0;
  let toX: (v: number) => number;
  let xTicks: number[];
  if (log) {
    let lo = 10 ** Math.floor(Math.log10(min));
    let hi = 10 ** Math.ceil(Math.log10(max));
    if (hi <= lo) hi = lo * 10;
    // trim to the 1-2-5 steps around the data so a narrow range does not sit in a corner
    for (const m of [5, 2])
      if (lo * m <= min) {
        lo *= m;
        break;
      }
    for (const m of [0.2, 0.5])
      if (hi * m >= max) {
        hi *= m;
        break;
      }
    const a = Math.log10(lo);
    const b = Math.log10(hi);
    toX = (v) => L + ((Math.log10(v) - a) / (b - a)) * (R - L);
    xTicks = [];
    for (let k = Math.floor(a) - 1; k <= Math.ceil(b); k++)
      for (const m of [1, 2, 5]) {
        const v = Number((m * 10 ** k).toPrecision(12));
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) xTicks.push(v);
      }
  } else {
    const lo = Math.min(0, min);
    const hi = max > lo ? max : lo + 1;
    toX = (v) => L + ((v - lo) / (hi - lo)) * (R - L);
    xTicks = linearTicks(lo, hi);
  }
  const toY = (p: number): number => B - (p / 100) * (B - T);
  // grid, ticks and labels
  for (let p = 0; p <= 100; p += 10) {
    const y = toY(p);
    parts.push(
      `<line x1="${L}" y1="${y.toFixed(1)}" x2="${R}" y2="${y.toFixed(1)}" stroke="${p % 50 === 0 ? '#ccc' : '#eee'}" stroke-width="1"/>`,
    );
    if (p % 20 === 0) parts.push(text(L - 8, y + 4, String(p), 'font-size="12" text-anchor="end" fill="#333"'));
  }
  for (const v of xTicks) {
    const x = toX(v);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${T}" x2="${x.toFixed(1)}" y2="${B}" stroke="#eee" stroke-width="1"/>`);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${B}" x2="${x.toFixed(1)}" y2="${B + 5}" stroke="#333" stroke-width="1"/>`);
    parts.push(text(x, B + 20, fmt(v), 'font-size="12" text-anchor="middle" fill="#333"'));
  }
  parts.push(`<rect x="${L}" y="${T}" width="${R - L}" height="${B - T}" fill="none" stroke="#333" stroke-width="1"/>`);
  parts.push(
    text(
      (L + R) / 2,
      Hc - 22,
      `Equivalent diameter (${unitLabel}${log ? ', log scale' : ''})`,
      'font-size="14" text-anchor="middle" fill="#222"',
    ),
  );
  parts.push(
    text(
      22,
      (T + B) / 2,
      'Cumulative % passing',
      `font-size="14" text-anchor="middle" fill="#222" transform="rotate(-90 22 ${((T + B) / 2).toFixed(1)})"`,
    ),
  );
  // the curve and the fragments
  const n = d.length;
  const pts =
    n === 1
      ? [
          [toX(d[0]!), toY(0)],
          [toX(d[0]!), toY(100)],
        ]
      : d.map((v, i) => [toX(v), toY((100 * i) / (n - 1))]);
  parts.push(
    `<polyline points="${pts.map(([x, y]) => `${x!.toFixed(1)},${y!.toFixed(1)}`).join(' ')}" ` +
      'fill="none" stroke="#1f5fa8" stroke-width="2.5"/>',
  );
  if (n > 1) for (const [x, y] of pts) parts.push(`<circle cx="${x!.toFixed(1)}" cy="${y!.toFixed(1)}" r="3" fill="#1f5fa8"/>`);
  // D10, D50, D90
  const marks: [string, number | null, number, string][] = [
    ['D10', analysis.d10, 10, '#2a9d3a'],
    ['D50', analysis.d50, 50, '#d2691e'],
    ['D90', analysis.d90, 90, '#b22222'],
  ];
  for (const [name, v, p, colour] of marks) {
    if (v === null || (log && v <= 0)) continue;
    const x = toX(v);
    const y = toY(p);
    parts.push(
      `<polyline points="${L},${y.toFixed(1)} ${x.toFixed(1)},${y.toFixed(1)} ${x.toFixed(1)},${B}" ` +
        `fill="none" stroke="${colour}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
    const label = `${name} = ${fmt(v)} ${analysis.unit}`;
    const right = x < (L + R) / 2;
    parts.push(
      text(
        right ? x + 8 : x - 8,
        y - 8,
        label,
        `font-size="13" font-weight="bold" text-anchor="${right ? 'start' : 'end'}" fill="${colour}"`,
      ),
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

/** passingChartSvg rendered to a PNG (CHART_WIDTH × CHART_HEIGHT). */
export async function renderPassingChart(analysis: FragmentAnalysis): Promise<Buffer> {
  return sharp(Buffer.from(passingChartSvg(analysis)))
    .png()
    .toBuffer();
}

export interface DrawnDetection {
  label: string;
  score: number;
  /** The class index: its colour (a hash of the label when absent). */
  classId?: number;
  /** 4 corners in original pixels. */
  corners: [number, number][];
}

/**
 * The image with each detection's (possibly rotated) box as a polygon and a "label 0.93" tag, one colour per label
 * (colourFor of the class index, else of a hash of the label, so a class keeps its colour across images); an SVG
 * overlay composited by sharp.
 * JPEG (quality 90) by default, or PNG.
 */
export async function renderDetections(img: RgbImage, dets: DrawnDetection[], format: 'jpeg' | 'png' = 'jpeg'): Promise<Buffer> {
  checkImage(img);
  const { width: W, height: H } = img;
  const sw = Math.max(2, Math.round(Math.min(W, H) / 300));
  const fs = Math.max(12, Math.round(Math.min(W, H) / 45));
  const tagH = Math.round(fs * 1.35);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`];
  for (const d of dets) {
    if (d.corners.length < 3 || !d.corners.every((c) => c.length === 2 && Number.isFinite(c[0]) && Number.isFinite(c[1]))) {
      throw new Error(`Detection "${d.label}" needs finite corners`);
    }
    const [r, g, b] = colourFor(d.classId ?? labelIndex(d.label));
    const colour = `rgb(${r},${g},${b})`;
    parts.push(
      `<polygon points="${d.corners.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}" ` +
        `fill="none" stroke="${colour}" stroke-width="${sw}" stroke-linejoin="round"/>`,
    );
    const caption = `${d.label} ${d.score.toFixed(2)}`;
    const tagW = Math.ceil(caption.length * fs * 0.6) + 8; // DejaVu Sans averages ≈ 0.55 em per character
    const top = d.corners.reduce((a, c) => (c[1] < a[1] ? c : a));
    const x = Math.max(0, Math.min(W - tagW, top[0] - sw / 2));
    const y = top[1] - tagH - sw / 2 >= 0 ? top[1] - tagH - sw / 2 : Math.max(0, Math.min(H - tagH, top[1] + sw / 2));
    const ink = 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000' : '#fff';
    parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${tagW}" height="${tagH}" fill="${colour}"/>`);
    parts.push(text(x + 4, y + tagH - Math.round(fs * 0.35), caption, `font-size="${fs}" fill="${ink}"`));
  }
  parts.push('</svg>');
  const base = sharp(img.data, { raw: { width: W, height: H, channels: 3 } })
    .composite([{ input: Buffer.from(parts.join('')), top: 0, left: 0 }])
    .removeAlpha();
  return format === 'png' ? base.png(RESULT_PNG).toBuffer() : base.jpeg({ quality: 90 }).toBuffer();
}

/**
 * Each [3, h, w] 0..1 image of a [count, 3, h, w] model output as a PNG, in batch order. The encodes run at once:
 * zlib is single-threaded per image, so on several cores they overlap.
 */
export function outputPngs(data: Float32Array, count: number, width: number, height: number): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      sharp(chw01ToRgb(data, i, width, height), { raw: { width, height, channels: 3 } })
        .png(RESULT_PNG)
        .toBuffer(),
    ),
  );
}
