/**
 * Segment Anything's ONNX mask post-processing (segment_anything/utils/onnx.py, SamOnnxModel.mask_postprocessing)
 * on typed arrays: the low-res logits (256² for the 1024 frame) are upscaled bilinearly to 1024², cropped to the
 * resized image (newH × newW) and resized bilinearly to the original size (H × W), each resize with half-pixel
 * centres clamped at the ends (F.interpolate with align_corners=False, ONNX Resize 'linear'). Both steps are linear
 * and separable, so each output row (column) is a fixed combination of at most four low-res rows (columns), its
 * taps: the upscaled plane is a horizontal pass over the low-res rows and a vertical pass over those, with no
 * 1024² intermediate.
 */

/** Four (index, weight) pairs per output sample; weights are ≥ 0 and sum to 1. */
export interface AxisTaps {
  index: Int32Array;
  weight: Float32Array;
}

export const SAM_FRAME = 1024;

/** Bilinear resize of inLen samples to outLen: each output's two inputs and the weight of the second. */
function resizeTaps(outLen: number, inLen: number): { i0: Int32Array; i1: Int32Array; w: Float64Array } {
  const i0 = new Int32Array(outLen);
  const i1 = new Int32Array(outLen);
  const w = new Float64Array(outLen);
  const scale = inLen / outLen;
  for (let j = 0; j < outLen; j++) {
    const x = Math.max(0, (j + 0.5) * scale - 0.5);
    const f = Math.floor(x);
    i0[j] = Math.min(f, inLen - 1);
    i1[j] = Math.min(f + 1, inLen - 1);
    w[j] = x - f;
  }
  return { i0, i1, w };
}

/** The taps of one axis: low-res (lowLen samples for the frame) → frame → first preLen samples → outLen. */
export function samUpscaleTaps(lowLen: number, preLen: number, outLen: number, frameLen = SAM_FRAME): AxisTaps {
  if (!(preLen >= 1 && preLen <= frameLen && outLen >= 1))
    throw new Error(`Invalid mask upscale ${lowLen} → ${preLen}/${frameLen} → ${outLen}`);
  const up = resizeTaps(frameLen, lowLen);
  const down = resizeTaps(outLen, preLen);
  const index = new Int32Array(4 * outLen);
  const weight = new Float32Array(4 * outLen);
  for (let j = 0; j < outLen; j++) {
    const a = down.i0[j]!;
    const b = down.i1[j]!;
    const w2 = down.w[j]!;
    index.set([up.i0[a]!, up.i1[a]!, up.i0[b]!, up.i1[b]!], 4 * j);
    weight.set([(1 - w2) * (1 - up.w[a]!), (1 - w2) * up.w[a]!, w2 * (1 - up.w[b]!), w2 * up.w[b]!], 4 * j);
  }
  return { index, weight };
}

/** What LowResUpscaler.scan finds in one plane. */
export interface ScanResult {
  /** Pixels with logit > hi, and > lo (SAM's stability score is inter / union). */
  inter: number;
  union: number;
  /** Box of the pixels > threshold, XYXY inclusive; null when there are none. */
  box: [number, number, number, number] | null;
}

/**
 * Upscales square low-res planes (size² covering the 1024 frame) to an outW × outH image whose ResizeLongestSide(1024)
 * size is newW × newH. One instance serves every plane of one crop; its buffers are reused.
 */
export class LowResUpscaler {
  private readonly tx: AxisTaps;
  private readonly ty: AxisTaps;
  /** Low-res rows and columns that any output depends on. */
  private readonly rowLim: number;
  private readonly colLim: number;
  /** For a low-res column c: the first output x whose taps reach c or beyond, the last one whose taps start at or before c. */
  private readonly xFrom: Int32Array;
  private readonly xTo: Int32Array;
  private readonly tmp: Float32Array;
  private readonly first: Int32Array;
  private readonly last: Int32Array;
  private readonly needed: Uint8Array;
  private readonly xs: Int32Array;
  private readonly xe: Int32Array;

  constructor(
    readonly size: number,
    newW: number,
    newH: number,
    readonly outW: number,
    readonly outH: number,
  ) {
    this.tx = samUpscaleTaps(size, newW, outW);
    this.ty = samUpscaleTaps(size, newH, outH);
    this.rowLim = Math.max(...this.ty.index) + 1;
    this.colLim = Math.max(...this.tx.index) + 1;
    this.xFrom = new Int32Array(this.colLim);
    this.xTo = new Int32Array(this.colLim);
    const ix = this.tx.index;
    for (let c = 0; c < this.colLim; c++) {
      let from = outW;
      for (let x = 0; x < outW; x++) {
        if (Math.max(ix[4 * x]!, ix[4 * x + 3]!) >= c) {
          from = x;
          break;
        }
      }
      let to = -1;
      for (let x = outW - 1; x >= 0; x--) {
        if (Math.min(ix[4 * x]!, ix[4 * x + 2]!) <= c) {
          to = x;
          break;
        }
      }
      this.xFrom[c] = from;
      this.xTo[c] = to;
    }
    this.tmp = new Float32Array(this.rowLim * outW);
    this.first = new Int32Array(this.rowLim);
    this.last = new Int32Array(this.rowLim);
    this.needed = new Uint8Array(this.rowLim);
    this.xs = new Int32Array(outH);
    this.xe = new Int32Array(outH);
  }

  /** The whole outW × outH plane of logits. */
  upscale(plane: Float32Array, out = new Float32Array(this.outW * this.outH)): Float32Array {
    this.horizontal(plane, null, 0, this.outW - 1);
    const { index: iy, weight: wy } = this.ty;
    const W = this.outW;
    const tmp = this.tmp;
    for (let y = 0; y < this.outH; y++) {
      const r0 = iy[4 * y]! * W;
      const r1 = iy[4 * y + 1]! * W;
      const r2 = iy[4 * y + 2]! * W;
      const r3 = iy[4 * y + 3]! * W;
      const w0 = wy[4 * y]!;
      const w1 = wy[4 * y + 1]!;
      const w2 = wy[4 * y + 2]!;
      const w3 = wy[4 * y + 3]!;
      const o = y * W;
      for (let x = 0; x < W; x++) out[o + x] = w0 * tmp[r0 + x]! + w1 * tmp[r1 + x]! + w2 * tmp[r2 + x]! + w3 * tmp[r3 + x]!;
    }
    return out;
  }

  /**
   * One pass over the upscaled plane without making it: the stability counts (logit > hi, > lo), the binary mask at
   * `threshold` (written into `binary`, outW·outH, zeroed first) and its box. lo ≤ threshold ≤ hi. An output is a
   * convex combination of its taps, so rows and columns whose low-res taps are all ≤ lo are skipped: the work
   * follows the mask, not the image.
   */
  scan(plane: Float32Array, lo: number, hi: number, threshold: number, binary: Uint8Array): ScanResult {
    const { size, rowLim, colLim, first, last, needed, xs, xe } = this;
    const W = this.outW;
    binary.fill(0);
    for (let r = 0; r < rowLim; r++) {
      let f = -1;
      let l = -1;
      const o = r * size;
      for (let c = 0; c < colLim; c++) {
        if (plane[o + c]! > lo) {
          if (f < 0) f = c;
          l = c;
        }
      }
      first[r] = f;
      last[r] = l;
    }
    needed.fill(0);
    const { index: iy, weight: wy } = this.ty;
    let gx0 = W;
    let gx1 = -1;
    for (let y = 0; y < this.outH; y++) {
      let cmin = colLim;
      let cmax = -1;
      for (let k = 0; k < 4; k++) {
        const r = iy[4 * y + k]!;
        if (first[r]! >= 0) {
          if (first[r]! < cmin) cmin = first[r]!;
          if (last[r]! > cmax) cmax = last[r]!;
        }
      }
      if (cmax < 0) {
        xs[y] = 0;
        xe[y] = -1;
        continue;
      }
      const a = this.xFrom[cmin]!;
      const b = this.xTo[cmax]!;
      xs[y] = a;
      xe[y] = b;
      if (a > b) continue;
      for (let k = 0; k < 4; k++) needed[iy[4 * y + k]!] = 1;
      if (a < gx0) gx0 = a;
      if (b > gx1) gx1 = b;
    }
    let inter = 0;
    let union = 0;
    let bx0 = W;
    let by0 = this.outH;
    let bx1 = -1;
    let by1 = -1;
    if (gx1 < 0) return { inter, union, box: null };
    this.horizontal(plane, needed, gx0, gx1);
    const tmp = this.tmp;
    for (let y = 0; y < this.outH; y++) {
      const a = xs[y]!;
      const b = xe[y]!;
      if (a > b) continue;
      const r0 = iy[4 * y]! * W;
      const r1 = iy[4 * y + 1]! * W;
      const r2 = iy[4 * y + 2]! * W;
      const r3 = iy[4 * y + 3]! * W;
      const w0 = wy[4 * y]!;
      const w1 = wy[4 * y + 1]!;
      const w2 = wy[4 * y + 2]!;
      const w3 = wy[4 * y + 3]!;
      const o = y * W;
      let fx = -1;
      let lx = -1;
      for (let x = a; x <= b; x++) {
        const v = w0 * tmp[r0 + x]! + w1 * tmp[r1 + x]! + w2 * tmp[r2 + x]! + w3 * tmp[r3 + x]!;
        if (v > lo) {
          union++;
          if (v > hi) inter++;
          if (v > threshold) {
            binary[o + x] = 1;
            if (fx < 0) fx = x;
            lx = x;
          }
        }
      }
      if (fx < 0) continue;
      if (by0 > y) by0 = y;
      by1 = y;
      if (fx < bx0) bx0 = fx;
      if (lx > bx1) bx1 = lx;
    }
    return { inter, union, box: bx1 < 0 ? null : [bx0, by0, bx1, by1] };
  }

  /** tmp[r·outW + x] = the plane's row r resampled at output column x, for x in [x0, x1] and the rows needed (all when null). */
  private horizontal(plane: Float32Array, needed: Uint8Array | null, x0: number, x1: number): void {
    const { index: ix, weight: wx } = this.tx;
    const W = this.outW;
    const tmp = this.tmp;
    for (let r = 0; r < this.rowLim; r++) {
      if (needed && !needed[r]) continue;
      const src = r * this.size;
      const o = r * W;
      for (let x = x0; x <= x1; x++) {
        const t = 4 * x;
        tmp[o + x] =
          wx[t]! * plane[src + ix[t]!]! +
          wx[t + 1]! * plane[src + ix[t + 1]!]! +
          wx[t + 2]! * plane[src + ix[t + 2]!]! +
          wx[t + 3]! * plane[src + ix[t + 3]!]!;
      }
    }
  }
}
