/**
 * Ultralytics YOLO segment outputs: output0 [1, 4+nc+nm, N] (boxes, class scores, nm = 32 mask coefficients per
 * anchor) and output1 [1, nm, mh, mw] prototypes (mh = imgsz/4). Follows process_mask (default path,
 * retina_masks=False) then scale_masks:
 *   logits = coeffs · protos (mh×mw) → zero outside the box scaled to proto size (x1 ≤ x < x2, y1 ≤ y < y2)
 *   → bilinear upsample (align_corners=False) to the letterboxed input → crop the padding → bilinear resize to the
 *   original size → binarize logit > 0 (≡ sigmoid > 0.5).
 * The two resizes are evaluated composed, only over the pixels that can be non-zero, one detection at a time, so
 * memory stays at one input-sized scratch buffer plus the masks returned.
 *
 * Deliberate addition: with `cropToBox` (default true) the final mask is also cut to the original-frame box, as
 * Ultralytics' retina_masks path does; without it the bilinear upsample lets a mask bleed up to about one proto cell
 * past its box, as the default Ultralytics path does.
 */
import { rleEncode, type Rle } from '../mask.js';
import {
  anchorsOf,
  nmsAxisAligned,
  unscaleXyxy,
  type Detection,
  type LetterboxMapping,
  type NmsOptions,
  type OutputTensor,
} from './yolo-detect.js';

export interface SegmentLetterbox extends LetterboxMapping {
  inputW: number;
  inputH: number;
  newW: number;
  newH: number;
}

export interface SegmentOptions extends NmsOptions {
  numClasses?: number;
  /** 'bitmap' (default): Uint8Array origH×origW per detection; 'rle': COCO uncompressed RLE (bounded memory). */
  maskFormat?: 'bitmap' | 'rle';
  /** Cut the final mask to the detection's box in original pixels. Default true. */
  cropToBox?: boolean;
}

export interface SegmentDetection extends Detection {
  /** Present when maskFormat is 'bitmap': row-major origH×origW, 1 = object. */
  mask?: Uint8Array;
  /** Present when maskFormat is 'rle'. */
  rle?: Rle;
  /** Foreground pixels of the mask. */
  area: number;
}

/** Bilinear sampling table for align_corners=False: dst index → (i0, i1, weight of i1). */
function sampleTable(dst: number, src: number, offset = 0): { i0: Int32Array; i1: Int32Array; w: Float32Array } {
  const scale = src / dst;
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w = new Float32Array(dst);
  for (let d = 0; d < dst; d++) {
    let s = (d + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    let a = Math.floor(s);
    if (a > src - 1) a = src - 1;
    i0[d] = a + offset;
    i1[d] = (a < src - 1 ? a + 1 : a) + offset;
    w[d] = s - a;
  }
  return { i0, i1, w };
}

export function decodeYoloSegment(
  output0: OutputTensor,
  output1: OutputTensor,
  lb: SegmentLetterbox,
  options: SegmentOptions = {},
): SegmentDetection[] {
  const pd = output1.dims;
  if (pd.length !== 4 || pd[0] !== 1) throw new Error(`YOLO segment output1 must be [1, nm, mh, mw], got [${pd.join(', ')}]`);
  const nm = pd[1]!;
  const mh = pd[2]!;
  const mw = pd[3]!;
  if (output1.data.length !== nm * mh * mw) throw new Error('YOLO segment output1 size does not match its dims');
  const nc = options.numClasses ?? output0.dims[1]! - 4 - nm;
  const n = anchorsOf(output0, 4 + nc + nm, 'YOLO segment');
  const { inputW: iw, inputH: ih, origW: w0, origH: h0 } = lb;
  const cropToBox = options.cropToBox ?? true;
  const asRle = options.maskFormat === 'rle';

  const dets = nmsAxisAligned(output0, nc, options);
  const protos = output1.data;
  const plane = mh * mw;
  const proto = new Float32Array(plane);
  // letterbox pixel → proto pixel, original pixel → letterbox pixel (through the un-padded crop)
  const lx = sampleTable(iw, mw);
  const ly = sampleTable(ih, mh);
  const ox = sampleTable(w0, lb.newW, lb.padX);
  const oy = sampleTable(h0, lb.newH, lb.padY);
  const letter = new Float32Array(iw * ih); // scratch: letterboxed logits, only the needed window is written
  const scratch = asRle ? new Uint8Array(w0 * h0) : undefined;
  const bleed = Math.ceil(iw / mw / lb.gain) + 2; // how far bilinear upsampling can carry a value, in original px

  return dets.map((d) => {
    // 1. logits in proto space, zero outside the box scaled to the proto size
    proto.fill(0);
    const bx1 = (d.x1 * mw) / iw;
    const bx2 = (d.x2 * mw) / iw;
    const by1 = (d.y1 * mh) / ih;
    const by2 = (d.y2 * mh) / ih;
    const px0 = Math.max(0, Math.ceil(bx1));
    const px1 = Math.min(mw, Math.ceil(bx2)); // r < x2
    const py0 = Math.max(0, Math.ceil(by1));
    const py1 = Math.min(mh, Math.ceil(by2));
    const coeffRow = (4 + nc) * n + d.anchor;
    for (let k = 0; k < nm; k++) {
      const c = output0.data[coeffRow + k * n]!;
      if (c === 0) continue;
      const base = k * plane;
      for (let y = py0; y < py1; y++) {
        const row = y * mw;
        for (let x = px0; x < px1; x++) proto[row + x]! += c * protos[base + row + x]!;
      }
    }

    // 2. the original-frame window that can be non-zero
    const [ox1, oy1, ox2, oy2] = unscaleXyxy(d.x1, d.y1, d.x2, d.y2, lb);
    const X0 = cropToBox ? Math.max(0, Math.ceil(ox1)) : Math.max(0, Math.floor(ox1) - bleed);
    const X1 = cropToBox ? Math.min(w0, Math.ceil(ox2)) : Math.min(w0, Math.ceil(ox2) + bleed);
    const Y0 = cropToBox ? Math.max(0, Math.ceil(oy1)) : Math.max(0, Math.floor(oy1) - bleed);
    const Y1 = cropToBox ? Math.min(h0, Math.ceil(oy2)) : Math.min(h0, Math.ceil(oy2) + bleed);

    const mask = scratch ?? new Uint8Array(w0 * h0);
    if (scratch) scratch.fill(0);
    let area = 0;
    if (X0 < X1 && Y0 < Y1) {
      // 3. letterboxed logits over the window's footprint (upsample from proto, align_corners=False)
      const u0 = ox.i0[X0]!;
      const u1 = ox.i1[X1 - 1]!;
      const v0 = oy.i0[Y0]!;
      const v1 = oy.i1[Y1 - 1]!;
      for (let v = v0; v <= v1; v++) {
        const q0 = ly.i0[v]! * mw;
        const q1 = ly.i1[v]! * mw;
        const wv = ly.w[v]!;
        for (let u = u0; u <= u1; u++) {
          const p0 = lx.i0[u]!;
          const p1 = lx.i1[u]!;
          const wu = lx.w[u]!;
          const top = proto[q0 + p0]! * (1 - wu) + proto[q0 + p1]! * wu;
          const bot = proto[q1 + p0]! * (1 - wu) + proto[q1 + p1]! * wu;
          letter[v * iw + u] = top * (1 - wv) + bot * wv;
        }
      }
      // 4. un-padded crop resized to the original (bilinear), binarized at logit > 0
      for (let Y = Y0; Y < Y1; Y++) {
        const r0 = oy.i0[Y]! * iw;
        const r1 = oy.i1[Y]! * iw;
        const wy = oy.w[Y]!;
        const out = Y * w0;
        for (let X = X0; X < X1; X++) {
          const c0 = ox.i0[X]!;
          const c1 = ox.i1[X]!;
          const wx = ox.w[X]!;
          const top = letter[r0 + c0]! * (1 - wx) + letter[r0 + c1]! * wx;
          const bot = letter[r1 + c0]! * (1 - wx) + letter[r1 + c1]! * wx;
          if (top * (1 - wy) + bot * wy > 0) {
            mask[out + X] = 1;
            area++;
          }
        }
      }
    }
    const det: SegmentDetection = { x1: ox1, y1: oy1, x2: ox2, y2: oy2, score: d.score, classId: d.classId, area };
    if (asRle) det.rle = rleEncode(mask, w0, h0);
    else det.mask = mask;
    return det;
  });
}
