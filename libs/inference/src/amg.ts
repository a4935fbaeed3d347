/**
 * Segment Anything's automatic mask generator (facebookresearch/segment-anything, `SamAutomaticMaskGenerator` in
 * automatic_mask_generator.py and the helpers of utils/amg.py) as a pure library: no ONNX, no image decoding.
 * The caller supplies `decodeBatch`, which runs the SAM decoder for a batch of single positive clicks on one crop.
 *
 * Conventions: masks are row-major Uint8Array bitmaps (index y·width + x); boxes are XYXY with an inclusive max
 * (as batched_mask_to_box); RLE is COCO's uncompressed column-major form of `mask.ts`. Comparisons that torch makes
 * in float32 (predicted IoU, stability score, IoU inside NMS) are made on float32-rounded values here too.
 */
import { maskToBoxXyxy, type Rle, rleArea, rleDecode } from './mask.js';
import { LowResUpscaler, type ScanResult } from './mask-upscale.js';

export type AmgOutputMode = 'binary_mask' | 'uncompressed_rle' | 'coco_rle';

/** The parameters of SamAutomaticMaskGenerator, same names and defaults (`point_grids` is not supported). */
export interface AmgOptions {
  points_per_side: number;
  points_per_batch: number;
  pred_iou_thresh: number;
  stability_score_thresh: number;
  stability_score_offset: number;
  box_nms_thresh: number;
  crop_n_layers: number;
  crop_nms_thresh: number;
  crop_overlap_ratio: number;
  crop_n_points_downscale_factor: number;
  min_mask_region_area: number;
  output_mode: AmgOutputMode;
}

export const AMG_DEFAULTS: Readonly<AmgOptions> = Object.freeze({
  points_per_side: 32,
  points_per_batch: 64,
  pred_iou_thresh: 0.88,
  stability_score_thresh: 0.95,
  stability_score_offset: 1.0,
  box_nms_thresh: 0.7,
  crop_n_layers: 0,
  crop_nms_thresh: 0.7,
  crop_overlap_ratio: 512 / 1500,
  crop_n_points_downscale_factor: 1,
  min_mask_region_area: 0,
  output_mode: 'binary_mask',
});

/** SAM's `mask_threshold` (Sam.mask_threshold = 0.0). */
export const SAM_MASK_THRESHOLD = 0;
/** Tolerance of is_box_near_crop_edge, in pixels. */
export const CROP_EDGE_TOLERANCE = 20;

/** [x0, y0, x1, y1] with an exclusive max, as generate_crop_boxes writes it. */
export type CropBox = [number, number, number, number];
/** [x0, y0, x1, y1]; for a mask box the max is inclusive. */
export type BoxXyxy = [number, number, number, number];
export type BoxXywh = [number, number, number, number];
export type Point = [number, number];

/** pycocotools' compressed RLE: counts as the LEB128-like string that `frPyObjects(...)['counts'].decode()` gives. */
export interface CocoRle {
  size: [number, number];
  counts: string;
}

export interface SegmentationByMode {
  binary_mask: Uint8Array;
  uncompressed_rle: Rle;
  coco_rle: CocoRle;
}

export interface AmgRecord<M extends AmgOutputMode = AmgOutputMode> {
  /** Row-major H×W bitmap (binary_mask), or the RLE of the full image. */
  segmentation: SegmentationByMode[M];
  area: number;
  bbox: BoxXywh;
  predicted_iou: number;
  /** [[x, y]] in the image frame. */
  point_coords: [Point];
  stability_score: number;
  crop_box: BoxXywh;
}

/**
 * The decoder's answer for n points, n·3 logit planes, point-major (plane i·3 + j is multimask output j + 1 of point
 * i), either `masks`, each cropH·cropW row-major at the crop's size, or `lowRes`, SAM's low_res_masks (upscaled by
 * the generator to the crop's size as SAM's ONNX export does, and only the planes that pass pred_iou_thresh);
 * `iouPredictions` has n·3 values in the same order.
 */
export type AmgDecodeResult = ({ masks: readonly Float32Array[]; lowRes?: never } | { lowRes: AmgLowResMasks; masks?: never }) & {
  iouPredictions: Float32Array | readonly number[];
};

/** Low-resolution mask logits: square planes covering SAM's 1024 frame, of which the crop's resized image fills the top-left. */
export interface AmgLowResMasks {
  planes: readonly Float32Array[];
  /** Side of each plane (256 for SAM). */
  size: number;
  /** The crop's ResizeLongestSide(1024) size (samResizeGeometry of the crop). */
  newW: number;
  newH: number;
}

/**
 * Runs the decoder on `points` (pixels of the crop, before ResizeLongestSide; each a single positive click) for the
 * crop `cropBox` of the image. Batches of one crop are asked consecutively, crops in generateCropBoxes order, so an
 * implementation can keep one crop embedding at a time.
 */
export type AmgDecodeBatch = (cropBox: CropBox, points: Point[]) => Promise<AmgDecodeResult>;

export interface GenerateMasksHooks {
  /** Called after each point batch: points decoded so far and in all crops together. */
  onProgress?: (done: number, total: number) => void;
}

// ---------------------------------------------------------------------------------------------------------------
// Options

const isInt = (v: number): boolean => Number.isInteger(v);

/** Throws one Error naming every invalid option; returns nothing when all are valid. */
export function validateAmgOptions(o: AmgOptions): void {
  const bad: string[] = [];
  const inUnit = (name: keyof AmgOptions, v: number): void => {
    if (!(Number.isFinite(v) && v >= 0 && v <= 1)) bad.push(`${name} must be in [0, 1], got ${v}`);
  };
  if (!(isInt(o.points_per_side) && o.points_per_side >= 1 && o.points_per_side <= 128)) {
    bad.push(`points_per_side must be an integer in 1–128, got ${o.points_per_side}`);
  }
  if (!(isInt(o.points_per_batch) && o.points_per_batch >= 1))
    bad.push(`points_per_batch must be a positive integer, got ${o.points_per_batch}`);
  inUnit('pred_iou_thresh', o.pred_iou_thresh);
  inUnit('stability_score_thresh', o.stability_score_thresh);
  if (!(Number.isFinite(o.stability_score_offset) && o.stability_score_offset >= 0)) {
    bad.push(`stability_score_offset must be a finite number ≥ 0, got ${o.stability_score_offset}`);
  }
  inUnit('box_nms_thresh', o.box_nms_thresh);
  inUnit('crop_nms_thresh', o.crop_nms_thresh);
  if (!(isInt(o.crop_n_layers) && o.crop_n_layers >= 0 && o.crop_n_layers <= 3)) {
    bad.push(`crop_n_layers must be an integer in 0–3, got ${o.crop_n_layers}`);
  }
  if (!(Number.isFinite(o.crop_overlap_ratio) && o.crop_overlap_ratio >= 0 && o.crop_overlap_ratio < 1)) {
    bad.push(`crop_overlap_ratio must be in [0, 1), got ${o.crop_overlap_ratio}`);
  }
  const factor = o.crop_n_points_downscale_factor;
  if (!(isInt(factor) && factor >= 1)) {
    bad.push(`crop_n_points_downscale_factor must be a positive integer, got ${factor}`);
  } else if (bad.length === 0 && Math.trunc(o.points_per_side / factor ** o.crop_n_layers) < 1) {
    bad.push(`crop layer ${o.crop_n_layers} would have no points: points_per_side / factor^layer < 1`);
  }
  if (!(isInt(o.min_mask_region_area) && o.min_mask_region_area >= 0)) {
    bad.push(`min_mask_region_area must be an integer ≥ 0, got ${o.min_mask_region_area}`);
  }
  if (!['binary_mask', 'uncompressed_rle', 'coco_rle'].includes(o.output_mode)) bad.push(`Unknown output_mode ${String(o.output_mode)}`);
  if (bad.length > 0) throw new Error(`Invalid automatic mask generator options: ${bad.join('; ')}`);
}

/** Defaults overlaid with `partial`, validated. */
export function resolveAmgOptions(partial: Partial<AmgOptions> = {}): AmgOptions {
  const o: AmgOptions = { ...AMG_DEFAULTS };
  const target: Record<string, unknown> = o as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(partial)) {
    if (!(k in AMG_DEFAULTS)) throw new Error(`Invalid automatic mask generator options: unknown option ${k}`);
    if (v !== undefined) target[k] = v;
  }
  validateAmgOptions(o);
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Grids and crops (amg.py build_point_grid, build_all_layer_point_grids, generate_crop_boxes)

/** numpy.linspace(start, stop, num) with endpoint: i·step + start, the last one exactly stop. */
function linspace(start: number, stop: number, num: number): Float64Array {
  const y = new Float64Array(num);
  const div = num - 1;
  const step = div > 0 ? (stop - start) / div : NaN;
  for (let i = 0; i < num; i++) y[i] = div > 0 ? i * step + start : i * (stop - start) + start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

/** n×n points in [0, 1]², interleaved [x, y, x, y, …], x varying fastest (build_point_grid). */
export function buildPointGrid(nPerSide: number): Float64Array {
  const offset = 1 / (2 * nPerSide);
  const side = linspace(offset, 1 - offset, nPerSide);
  const out = new Float64Array(2 * nPerSide * nPerSide);
  for (let r = 0; r < nPerSide; r++) {
    for (let c = 0; c < nPerSide; c++) {
      out[2 * (r * nPerSide + c)] = side[c]!;
      out[2 * (r * nPerSide + c) + 1] = side[r]!;
    }
  }
  return out;
}

/** One grid per layer 0..nLayers; layer i has int(nPerSide / scalePerLayer^i) points a side. */
export function buildPointGrids(nPerSide: number, nLayers: number, scalePerLayer: number): Float64Array[] {
  const grids: Float64Array[] = [];
  for (let i = 0; i <= nLayers; i++) grids.push(buildPointGrid(Math.trunc(nPerSide / scalePerLayer ** i)));
  return grids;
}

/** generate_crop_boxes: the image, then (2^i)² crops for layer i = 1..nLayers, x0 outer and y0 inner. */
export function generateCropBoxes(
  imW: number,
  imH: number,
  nLayers: number,
  overlapRatio: number,
): { boxes: CropBox[]; layerIdxs: number[] } {
  const boxes: CropBox[] = [[0, 0, imW, imH]];
  const layerIdxs = [0];
  const shortSide = Math.min(imH, imW);
  const cropLen = (origLen: number, nCrops: number, overlap: number): number => Math.ceil((overlap * (nCrops - 1) + origLen) / nCrops);
  for (let layer = 0; layer < nLayers; layer++) {
    const n = 2 ** (layer + 1);
    const overlap = Math.trunc(overlapRatio * shortSide * (2 / n));
    const cropW = cropLen(imW, n, overlap);
    const cropH = cropLen(imH, n, overlap);
    for (let i = 0; i < n; i++) {
      const x0 = (cropW - overlap) * i;
      for (let j = 0; j < n; j++) {
        const y0 = (cropH - overlap) * j;
        boxes.push([x0, y0, Math.min(x0 + cropW, imW), Math.min(y0 + cropH, imH)]);
        layerIdxs.push(layer + 1);
      }
    }
  }
  return { boxes, layerIdxs };
}

// ---------------------------------------------------------------------------------------------------------------
// Per-mask helpers

/** count(logit > t + offset) / count(logit > t − offset), as float32; NaN when nothing is above t − offset. */
export function calculateStabilityScore(logits: Float32Array, threshold: number, offset: number): number {
  const hi = Math.fround(threshold + offset);
  const lo = Math.fround(threshold - offset);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > lo) union++;
    if (v > hi) inter++;
  }
  return Math.fround(inter / union);
}

/** batched_mask_to_box: 4 values per mask, XYXY inclusive max, zeros for an empty mask. */
export function batchedMaskToBox(masks: readonly Uint8Array[], width: number, height: number): Int32Array {
  const out = new Int32Array(4 * masks.length);
  masks.forEach((m, i) => out.set(maskToBoxXyxy(m, width, height), 4 * i));
  return out;
}

/** A box (crop frame) within `atol` of an edge of its crop that is not also (within atol) the image's edge. */
export function isBoxNearCropEdge(box: ArrayLike<number>, cropBox: CropBox, origBox: CropBox, atol = CROP_EDGE_TOLERANCE): boolean {
  const off = [cropBox[0], cropBox[1], cropBox[0], cropBox[1]];
  for (let k = 0; k < 4; k++) {
    const v = Math.fround(box[k]! + off[k]!);
    if (Math.abs(v - cropBox[k]!) <= atol && !(Math.abs(v - origBox[k]!) <= atol)) return true;
  }
  return false;
}

/** Adds the crop's origin to XYXY boxes (flat, 4 per box); returns a new array. */
export function uncropBoxesXyxy(boxes: ArrayLike<number>, cropBox: CropBox): Float64Array {
  const out = Float64Array.from(boxes);
  for (let i = 0; i < out.length; i++) out[i]! += i % 2 === 0 ? cropBox[0] : cropBox[1];
  return out;
}

/** Adds the crop's origin to points (flat, [x, y, …]); returns a new array. */
export function uncropPoints(points: ArrayLike<number>, cropBox: CropBox): Float64Array {
  return uncropBoxesXyxy(points, cropBox);
}

/** Pastes a crop-size mask into a zero imW×imH mask (the mask itself when the crop is the image). */
export function uncropMask(mask: Uint8Array, cropBox: CropBox, imW: number, imH: number): Uint8Array {
  const [x0, y0, x1, y1] = cropBox;
  if (x0 === 0 && y0 === 0 && x1 === imW && y1 === imH) return mask;
  const cw = x1 - x0;
  const out = new Uint8Array(imW * imH);
  for (let y = 0; y < y1 - y0; y++) out.set(mask.subarray(y * cw, (y + 1) * cw), (y + y0) * imW + x0);
  return out;
}

export const areaFromRle = rleArea;

export function boxXyxyToXywh(box: ArrayLike<number>): BoxXywh {
  return [box[0]!, box[1]!, box[2]! - box[0]!, box[3]! - box[1]!];
}

/**
 * Uncompressed RLE of a crop-size mask pasted into the image (uncrop_masks + mask_to_rle_pytorch) without building
 * the full-size mask; `box` (crop frame, inclusive, from maskToBoxXyxy) bounds the foreground so only its window is
 * scanned. Equals rleEncode(uncropMask(mask, cropBox, imW, imH), imW, imH).
 */
export function rleEncodeCropMask(mask: Uint8Array, box: BoxXyxy, cropBox: CropBox, imW: number, imH: number): Rle {
  const [cx0, cy0, cx1] = cropBox;
  const cw = cx1 - cx0;
  const [bx0, by0, bx1, by1] = box;
  if (bx0 === 0 && by0 === 0 && bx1 === 0 && by1 === 0 && mask[0] === 0) return { size: [imH, imW], counts: [imW * imH] };
  const counts: number[] = [];
  // Zeros before the box's first column and above its top row; then, column by column, runs inside the box window,
  // where the gap between one column's bottom and the next column's top is a run of zeros.
  let run = (cx0 + bx0) * imH + cy0 + by0;
  let current = 0;
  const gap = imH - (by1 - by0 + 1);
  for (let x = bx0; x <= bx1; x++) {
    if (x > bx0 && gap > 0) {
      if (current === 0) {
        run += gap;
      } else {
        counts.push(run);
        current = 0;
        run = gap;
      }
    }
    for (let i = by0 * cw + x, end = by1 * cw + x; i <= end; i += cw) {
      const v = mask[i] !== 0 ? 1 : 0;
      if (v === current) {
        run++;
      } else {
        counts.push(run);
        current = v;
        run = 1;
      }
    }
  }
  const tail = imH - (cy0 + by1) - 1 + (imW - (cx0 + bx1) - 1) * imH;
  if (current === 0) {
    run += tail;
  } else if (tail > 0) {
    counts.push(run);
    run = tail;
  }
  counts.push(run);
  return { size: [imH, imW], counts };
}

/** pycocotools rleToString: counts (after the first two, as differences from counts[i−2]) in 6-bit chars from 48. */
export function cocoRleString(counts: readonly number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]!;
    if (i > 2) x -= counts[i - 2]!;
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** coco_encode_rle: the uncompressed RLE as pycocotools' compressed form (frPyObjects, counts decoded to a string). */
export function cocoEncodeRle(rle: Rle): CocoRle {
  return { size: [rle.size[0], rle.size[1]], counts: cocoRleString(rle.counts) };
}

// ---------------------------------------------------------------------------------------------------------------
// NMS (torchvision batched_nms with one category = nms)

/**
 * Greedy NMS as torchvision's CPU kernel: order by score descending (stable for ties), suppress a later box whose
 * IoU with a kept one is > iouThresh (float32 IoU; 0/0 = NaN never suppresses). Returns kept indices, best first.
 */
export function boxNms(boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThresh: number): number[] {
  const n = scores.length;
  if (boxes.length !== 4 * n) throw new Error(`boxNms: ${boxes.length / 4} boxes for ${n} scores`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const areas = new Float64Array(n);
  for (let i = 0; i < n; i++) areas[i] = Math.fround((boxes[4 * i + 2]! - boxes[4 * i]!) * (boxes[4 * i + 3]! - boxes[4 * i + 1]!));
  const suppressed = new Uint8Array(n);
  const keep: number[] = [];
  for (let a = 0; a < n; a++) {
    const i = order[a]!;
    if (suppressed[i]) continue;
    keep.push(i);
    const ix1 = boxes[4 * i]!;
    const iy1 = boxes[4 * i + 1]!;
    const ix2 = boxes[4 * i + 2]!;
    const iy2 = boxes[4 * i + 3]!;
    for (let b = a + 1; b < n; b++) {
      const j = order[b]!;
      if (suppressed[j]) continue;
      const w = Math.max(0, Math.min(ix2, boxes[4 * j + 2]!) - Math.max(ix1, boxes[4 * j]!));
      const h = Math.max(0, Math.min(iy2, boxes[4 * j + 3]!) - Math.max(iy1, boxes[4 * j + 1]!));
      const inter = Math.fround(w * h);
      const ovr = Math.fround(inter / Math.fround(areas[i]! + areas[j]! - inter));
      if (ovr > iouThresh) suppressed[j] = 1;
    }
  }
  return keep;
}

// ---------------------------------------------------------------------------------------------------------------
// Small regions (amg.py remove_small_regions with cv2.connectedComponentsWithStats, connectivity 8)

/**
 * 8-connected components of the non-zero pixels: labels (0 = background, 1.. in raster order of each component's
 * first pixel) and the area of each label (index 0 = background).
 */
export function connectedComponents8(mask: Uint8Array, width: number, height: number): { labels: Int32Array; areas: number[] } {
  const labels = new Int32Array(width * height);
  const areas: number[] = [0];
  const stack = new Int32Array(width * height);
  for (let p = 0; p < mask.length; p++) {
    if (mask[p] === 0) {
      areas[0]!++;
      continue;
    }
    if (labels[p] !== 0) continue;
    const label = areas.length;
    let area = 0;
    let top = 0;
    stack[top++] = p;
    labels[p] = label;
    while (top > 0) {
      const q = stack[--top]!;
      area++;
      const qy = Math.floor(q / width);
      const qx = q - qy * width;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = qy + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = qx + dx;
          if (nx < 0 || nx >= width) continue;
          const r = ny * width + nx;
          if (mask[r] !== 0 && labels[r] === 0) {
            labels[r] = label;
            stack[top++] = r;
          }
        }
      }
    }
    areas.push(area);
  }
  return { labels, areas };
}

/**
 * 'holes': fills background components (8-connected, border ones included) smaller than areaThresh;
 * 'islands': removes foreground components smaller than it, keeping the largest when all are small.
 * `changed` is true whenever some component was small (as amg.py, even if the pixels end up the same);
 * an unchanged call returns the input mask itself.
 */
export function removeSmallRegions(
  mask: Uint8Array,
  width: number,
  height: number,
  areaThresh: number,
  mode: 'holes' | 'islands',
): { mask: Uint8Array; changed: boolean } {
  const correctHoles = mode === 'holes';
  const working = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) working[i] = (mask[i] !== 0) !== correctHoles ? 1 : 0;
  const { labels, areas } = connectedComponents8(working, width, height);
  const nLabels = areas.length;
  const small = new Uint8Array(nLabels);
  let anySmall = false;
  for (let l = 1; l < nLabels; l++) {
    if (areas[l]! < areaThresh) {
      small[l] = 1;
      anySmall = true;
    }
  }
  if (!anySmall) return { mask, changed: false };
  const fill = new Uint8Array(nLabels);
  if (correctHoles) {
    fill[0] = 1;
    for (let l = 1; l < nLabels; l++) fill[l] = small[l]!;
  } else {
    let anyKept = false;
    for (let l = 1; l < nLabels; l++) {
      fill[l] = small[l] ? 0 : 1;
      if (fill[l]) anyKept = true;
    }
    if (!anyKept) {
      let best = 1;
      for (let l = 2; l < nLabels; l++) if (areas[l]! > areas[best]!) best = l;
      fill[best] = 1;
    }
  }
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < out.length; i++) out[i] = fill[labels[i]!]!;
  return { mask: out, changed: true };
}

// ---------------------------------------------------------------------------------------------------------------
// The generator

interface MaskEntry {
  rle: Rle;
  /** XYXY inclusive, image frame. */
  box: BoxXyxy;
  iou: number;
  point: Point;
  stability: number;
  cropBox: CropBox;
}

function checkDecodeResult(res: AmgDecodeResult, nPoints: number, planeSize: number): void {
  const planes = res.lowRes ? res.lowRes.planes : res.masks;
  if (planes.length !== 3 * nPoints || res.iouPredictions.length !== 3 * nPoints) {
    const got = `${planes.length} masks and ${res.iouPredictions.length} IoU predictions`;
    throw new Error(`decodeBatch returned ${got} for ${nPoints} points (expected 3 each)`);
  }
  const size = res.lowRes ? res.lowRes.size * res.lowRes.size : planeSize;
  for (const m of planes) {
    if (m.length !== size) throw new Error(`decodeBatch returned a mask of ${m.length} values, expected ${size}`);
  }
}

/** Stability counts, the binary mask at the threshold and its box, in one pass over a crop-size logit plane. */
function scanPlane(logits: Float32Array, cw: number, ch: number, lo: number, hi: number, binary: Uint8Array): ScanResult {
  let inter = 0;
  let union = 0;
  let bx0 = cw;
  let by0 = ch;
  let bx1 = -1;
  let by1 = -1;
  for (let y = 0; y < ch; y++) {
    const row = y * cw;
    let first = -1;
    let last = -1;
    for (let x = 0; x < cw; x++) {
      const v = logits[row + x]!;
      if (v > lo) {
        union++;
        if (v > hi) inter++; // hi ≥ lo: the offset is validated ≥ 0
      }
      if (v > SAM_MASK_THRESHOLD) {
        binary[row + x] = 1;
        if (first < 0) first = x;
        last = x;
      } else {
        binary[row + x] = 0;
      }
    }
    if (first < 0) continue;
    if (by0 > y) by0 = y;
    by1 = y;
    if (first < bx0) bx0 = first;
    if (last > bx1) bx1 = last;
  }
  return { inter, union, box: bx1 < 0 ? null : [bx0, by0, bx1, by1] };
}

/** Boxes of entries as a flat array for boxNms. */
function flatBoxes(entries: readonly { box: ArrayLike<number> }[]): Float64Array {
  const out = new Float64Array(4 * entries.length);
  entries.forEach((e, i) => {
    for (let k = 0; k < 4; k++) out[4 * i + k] = e.box[k]!;
  });
  return out;
}

async function processCrop(
  cropBox: CropBox,
  grid: Float64Array,
  imW: number,
  imH: number,
  o: AmgOptions,
  decodeBatch: AmgDecodeBatch,
  progress: (n: number) => void,
): Promise<MaskEntry[]> {
  const [x0, y0, x1, y1] = cropBox;
  const cw = x1 - x0;
  const ch = y1 - y0;
  const nPoints = grid.length / 2;
  const origBox: CropBox = [0, 0, imW, imH];
  const iouThresh = Math.fround(o.pred_iou_thresh);
  const stabThresh = Math.fround(o.stability_score_thresh);
  const hi = Math.fround(SAM_MASK_THRESHOLD + o.stability_score_offset);
  const lo = Math.fround(SAM_MASK_THRESHOLD - o.stability_score_offset);
  const entries: MaskEntry[] = [];
  const binary = new Uint8Array(cw * ch);
  let upscaler: LowResUpscaler | null = null;
  for (let start = 0; start < nPoints; start += o.points_per_batch) {
    const end = Math.min(start + o.points_per_batch, nPoints);
    const points: Point[] = [];
    for (let p = start; p < end; p++) points.push([grid[2 * p]! * cw, grid[2 * p + 1]! * ch]);
    const res = await decodeBatch([...cropBox], points);
    checkDecodeResult(res, points.length, cw * ch);
    const low = res.lowRes;
    if (low && !(upscaler && upscaler.size === low.size && upscaler.outW === cw && upscaler.outH === ch)) {
      upscaler = new LowResUpscaler(low.size, low.newW, low.newH, cw, ch);
    }
    for (let k = 0; k < 3 * points.length; k++) {
      const iou = res.iouPredictions[k]!;
      // Only the masks that pass the predicted IoU are upscaled (from low-res planes) and scanned.
      if (o.pred_iou_thresh > 0 && !(Math.fround(iou) > iouThresh)) continue;
      const scan = low
        ? upscaler!.scan(low.planes[k]!, lo, hi, SAM_MASK_THRESHOLD, binary)
        : scanPlane(res.masks[k]!, cw, ch, lo, hi, binary);
      const stability = Math.fround(scan.inter / scan.union);
      if (o.stability_score_thresh > 0 && !(stability >= stabThresh)) continue;
      const box: BoxXyxy = scan.box ?? [0, 0, 0, 0];
      if (isBoxNearCropEdge(box, cropBox, origBox)) continue;
      const point = points[Math.floor(k / 3)]!;
      entries.push({ rle: rleEncodeCropMask(binary, box, cropBox, imW, imH), box, iou: Math.fround(iou), point, stability, cropBox });
    }
    progress(points.length);
  }
  // Duplicates within the crop (boxes still in the crop frame, as in _process_crop), then back to the image frame.
  const keep = boxNms(
    flatBoxes(entries),
    entries.map((e) => e.iou),
    o.box_nms_thresh,
  );
  return keep.map((i) => {
    const e = entries[i]!;
    return {
      ...e,
      box: [e.box[0] + x0, e.box[1] + y0, e.box[2] + x0, e.box[3] + y0],
      point: [e.point[0] + x0, e.point[1] + y0],
    };
  });
}

/** postprocess_small_regions: fill small holes, drop small islands, NMS preferring masks that needed neither. */
function postprocessSmallRegions(entries: MaskEntry[], minArea: number, nmsThresh: number): MaskEntry[] {
  if (entries.length === 0) return entries;
  const masks: Uint8Array[] = [];
  const scores: number[] = [];
  const boxes = new Float64Array(4 * entries.length);
  entries.forEach((e, i) => {
    const [h, w] = e.rle.size;
    const holes = removeSmallRegions(rleDecode(e.rle), w, h, minArea, 'holes');
    const islands = removeSmallRegions(holes.mask, w, h, minArea, 'islands');
    masks.push(islands.mask);
    scores.push(holes.changed || islands.changed ? 0 : 1);
    boxes.set(maskToBoxXyxy(islands.mask, w, h), 4 * i);
  });
  const keep = boxNms(boxes, scores, nmsThresh);
  return keep.map((i) => {
    const e = entries[i]!;
    if (scores[i] !== 0) return e;
    const [h, w] = e.rle.size;
    const box: BoxXyxy = [boxes[4 * i]!, boxes[4 * i + 1]!, boxes[4 * i + 2]!, boxes[4 * i + 3]!];
    const full: CropBox = [0, 0, w, h];
    return { ...e, rle: rleEncodeCropMask(masks[i]!, box, full, w, h), box };
  });
}

function segmentationOf<M extends AmgOutputMode>(rle: Rle, mode: M): SegmentationByMode[M] {
  const byMode = {
    binary_mask: () => rleDecode(rle),
    uncompressed_rle: () => rle,
    coco_rle: () => cocoEncodeRle(rle),
  } satisfies { [K in AmgOutputMode]: () => SegmentationByMode[K] };
  return byMode[mode]() as SegmentationByMode[M];
}

/**
 * SamAutomaticMaskGenerator.generate without the model: for each crop, points_per_batch grid points at a time through
 * `decodeBatch`, filtered by predicted IoU and stability, binarised at 0, boxes near inner crop edges dropped, box NMS
 * per crop; NMS across crops scored 1/crop area; then, with min_mask_region_area > 0, postprocess_small_regions.
 * Records are in the order SAM returns them.
 */
export async function generateMasks<M extends AmgOutputMode = 'binary_mask'>(
  image: { width: number; height: number },
  options: Partial<AmgOptions> & { output_mode?: M },
  decodeBatch: AmgDecodeBatch,
  hooks: GenerateMasksHooks = {},
): Promise<AmgRecord<M>[]> {
  const o = resolveAmgOptions(options);
  const { width: imW, height: imH } = image;
  if (!(isInt(imW) && isInt(imH) && imW > 0 && imH > 0)) throw new Error(`Invalid image size ${imW}×${imH}`);
  const grids = buildPointGrids(o.points_per_side, o.crop_n_layers, o.crop_n_points_downscale_factor);
  const { boxes: cropBoxes, layerIdxs } = generateCropBoxes(imW, imH, o.crop_n_layers, o.crop_overlap_ratio);
  const total = layerIdxs.reduce((s, l) => s + grids[l]!.length / 2, 0);
  let done = 0;
  const progress = (n: number): void => {
    done += n;
    hooks.onProgress?.(done, total);
  };

  let entries: MaskEntry[] = [];
  for (let c = 0; c < cropBoxes.length; c++) {
    entries.push(...(await processCrop(cropBoxes[c]!, grids[layerIdxs[c]!]!, imW, imH, o, decodeBatch, progress)));
  }
  if (cropBoxes.length > 1) {
    // Prefer masks from smaller crops (scores = 1 / box_area(crop_boxes), float32).
    const scores = entries.map((e) => Math.fround(1 / ((e.cropBox[2] - e.cropBox[0]) * (e.cropBox[3] - e.cropBox[1]))));
    entries = boxNms(flatBoxes(entries), scores, o.crop_nms_thresh).map((i) => entries[i]!);
  }
  if (o.min_mask_region_area > 0) {
    entries = postprocessSmallRegions(entries, o.min_mask_region_area, Math.max(o.box_nms_thresh, o.crop_nms_thresh));
  }
  const mode = o.output_mode as M;
  return entries.map((e) => ({
    segmentation: segmentationOf(e.rle, mode),
    area: areaFromRle(e.rle),
    bbox: boxXyxyToXywh(e.box),
    predicted_iou: e.iou,
    point_coords: [[e.point[0], e.point[1]]],
    stability_score: e.stability,
    crop_box: boxXyxyToXywh(e.cropBox),
  }));
}
