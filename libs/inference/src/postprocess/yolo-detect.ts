/**
 * Ultralytics YOLOv8/YOLO11 detect head output [1, 4+nc, N], channel-major: element (c, i) = data[c·N + i];
 * rows 0–3 = cx, cy, w, h in letterboxed-input pixels, rows 4.. = per-class sigmoid scores (no objectness).
 * Post-processing follows ultralytics non_max_suppression + scale_boxes.
 */

/** The part of a letterbox result needed to map boxes back to the original image. */
export interface LetterboxMapping {
  gain: number;
  padX: number;
  padY: number;
  origW: number;
  origH: number;
}

export interface NmsOptions {
  /** Keep anchors whose best class score is strictly greater than this. Default 0.25. */
  conf?: number;
  /** IoU above which a lower-scored box of the same class is suppressed. Default 0.7. */
  iou?: number;
  /** Default 300. */
  maxDet?: number;
  /** Candidates kept (by score) before NMS. Default 30000. */
  maxNms?: number;
  /** One NMS over all classes instead of per class. Default false. */
  agnostic?: boolean;
  /** Keep only these class indices. */
  classes?: readonly number[];
}

export const NMS_DEFAULTS = { conf: 0.25, iou: 0.7, maxDet: 300, maxNms: 30000, agnostic: false } as const;
/** Ultralytics' per-class box offset (max_wh). */
export const MAX_WH = 7680;

export interface OutputTensor {
  data: Float32Array;
  dims: readonly number[];
}

export interface Detection {
  /** xyxy in original-image pixels, clipped to the image. */
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  score: number;
  classId: number;
}

/** Anchors that passed the confidence filter, best class only. */
export interface Candidates {
  count: number;
  /** anchor index i (column of the output) */
  anchor: Int32Array;
  score: Float32Array;
  classId: Int32Array;
}

/** Checks a [1, C, N] output and returns N. */
export function anchorsOf(out: OutputTensor, expectedRows: number | undefined, what: string): number {
  const d = out.dims;
  if (d.length !== 3 || d[0] !== 1) throw new Error(`${what} output must be [1, C, N], got [${d.join(', ')}]`);
  if (expectedRows !== undefined && d[1] !== expectedRows) throw new Error(`${what} output has ${d[1]} rows, expected ${expectedRows}`);
  const n = d[2]!;
  if (out.data.length !== d[1]! * n) throw new Error(`${what} output has ${out.data.length} values for dims [${d.join(', ')}]`);
  return n;
}

/**
 * Best class per anchor over class rows [classRow, classRow + nc), kept iff its score > conf (strictly), then the
 * optional class filter. Reads the channel-major tensor row by row (cache-friendly), no per-anchor objects.
 */
export function selectCandidates(
  data: Float32Array,
  n: number,
  nc: number,
  classRow: number,
  conf: number,
  classes?: readonly number[],
): Candidates {
  if (nc < 1) throw new Error('Output has no class rows');
  const best = new Float32Array(n).fill(-Infinity);
  const bestCls = new Int32Array(n);
  for (let c = 0; c < nc; c++) {
    const row = (classRow + c) * n;
    for (let i = 0; i < n; i++) {
      const s = data[row + i]!;
      if (s > best[i]!) {
        best[i] = s;
        bestCls[i] = c;
      }
    }
  }
  const allowed = classes ? new Set(classes) : undefined;
  let count = 0;
  for (let i = 0; i < n; i++) if (best[i]! > conf && (!allowed || allowed.has(bestCls[i]!))) count++;
  const anchor = new Int32Array(count);
  const score = new Float32Array(count);
  const classId = new Int32Array(count);
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (best[i]! > conf && (!allowed || allowed.has(bestCls[i]!))) {
      anchor[k] = i;
      score[k] = best[i]!;
      classId[k] = bestCls[i]!;
      k++;
    }
  }
  return { count, anchor, score, classId };
}

/** Candidate indices sorted by score, descending (ties by anchor order), truncated to maxNms. */
export function orderByScore(c: Candidates, maxNms: number): Int32Array {
  const order = Int32Array.from({ length: c.count }, (_, i) => i);
  order.sort((a, b) => c.score[b]! - c.score[a]! || a - b);
  return order.length > maxNms ? order.slice(0, maxNms) : order;
}

/**
 * Greedy NMS (torchvision.ops.nms semantics) over boxes xyxy (4 per box, already class-offset), visited in the given
 * score order: a box is dropped if its IoU with an already kept box is > iou. Returns positions into `order`'s
 * boxes array (box k lives at boxes[4k..4k+3]), at most maxDet.
 */
function greedyNms(boxes: Float32Array, count: number, iou: number, maxDet: number): number[] {
  const keep: number[] = [];
  const removed = new Uint8Array(count);
  for (let i = 0; i < count && keep.length < maxDet; i++) {
    if (removed[i]) continue;
    keep.push(i);
    const ax1 = boxes[4 * i]!;
    const ay1 = boxes[4 * i + 1]!;
    const ax2 = boxes[4 * i + 2]!;
    const ay2 = boxes[4 * i + 3]!;
    const areaA = (ax2 - ax1) * (ay2 - ay1);
    for (let j = i + 1; j < count; j++) {
      if (removed[j]) continue;
      const bx1 = boxes[4 * j]!;
      const by1 = boxes[4 * j + 1]!;
      const bx2 = boxes[4 * j + 2]!;
      const by2 = boxes[4 * j + 3]!;
      const iw = Math.min(ax2, bx2) - Math.max(ax1, bx1);
      const ih = Math.min(ay2, by2) - Math.max(ay1, by1);
      if (iw <= 0 || ih <= 0) continue;
      const inter = iw * ih;
      const union = areaA + (bx2 - bx1) * (by2 - by1) - inter;
      if (union > 0 && inter / union > iou) removed[j] = 1;
    }
  }
  return keep;
}

/** A detection with its box still in letterboxed-input pixels (before un-scaling); `anchor` is its column in the output. */
export interface RawDetection extends Detection {
  anchor: number;
}

/**
 * Confidence filter + best class + max_nms + per-class (or agnostic) NMS + max_det on a [1, 4+nc+extra, N] output
 * whose first 4 rows are cx, cy, w, h. Boxes stay in letterboxed-input pixels. Sorted by score descending.
 */
export function nmsAxisAligned(out: OutputTensor, nc: number, options: NmsOptions = {}): RawDetection[] {
  const o = { ...NMS_DEFAULTS, ...options };
  const n = anchorsOf(out, undefined, 'YOLO');
  const data = out.data;
  const cand = selectCandidates(data, n, nc, 4, o.conf, o.classes);
  const order = orderByScore(cand, o.maxNms);
  const m = order.length;
  const boxes = new Float32Array(4 * m);
  const raw = new Float32Array(4 * m);
  for (let k = 0; k < m; k++) {
    const c = order[k]!;
    const i = cand.anchor[c]!;
    const cx = data[i]!;
    const cy = data[n + i]!;
    const hw = data[2 * n + i]! / 2;
    const hh = data[3 * n + i]! / 2;
    raw[4 * k] = cx - hw;
    raw[4 * k + 1] = cy - hh;
    raw[4 * k + 2] = cx + hw;
    raw[4 * k + 3] = cy + hh;
    const off = o.agnostic ? 0 : cand.classId[c]! * MAX_WH;
    boxes[4 * k] = raw[4 * k]! + off;
    boxes[4 * k + 1] = raw[4 * k + 1]! + off;
    boxes[4 * k + 2] = raw[4 * k + 2]! + off;
    boxes[4 * k + 3] = raw[4 * k + 3]! + off;
  }
  const keep = greedyNms(boxes, m, o.iou, o.maxDet);
  return keep.map((k) => {
    const c = order[k]!;
    return {
      anchor: cand.anchor[c]!,
      x1: raw[4 * k]!,
      y1: raw[4 * k + 1]!,
      x2: raw[4 * k + 2]!,
      y2: raw[4 * k + 3]!,
      score: cand.score[c]!,
      classId: cand.classId[c]!,
    };
  });
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** scale_boxes: letterboxed xyxy → original pixels (x − padX, ÷ gain, clip to the image). */
export function unscaleXyxy(x1: number, y1: number, x2: number, y2: number, lb: LetterboxMapping): [number, number, number, number] {
  return [
    clamp((x1 - lb.padX) / lb.gain, 0, lb.origW),
    clamp((y1 - lb.padY) / lb.gain, 0, lb.origH),
    clamp((x2 - lb.padX) / lb.gain, 0, lb.origW),
    clamp((y2 - lb.padY) / lb.gain, 0, lb.origH),
  ];
}

/** Detect head: output0 [1, 4+nc, N] → detections in original-image pixels, best first. nc defaults to rows − 4. */
export function decodeYoloDetect(
  output0: OutputTensor,
  lb: LetterboxMapping,
  options: NmsOptions & { numClasses?: number } = {},
): Detection[] {
  const nc = options.numClasses ?? output0.dims[1]! - 4;
  anchorsOf(output0, 4 + nc, 'YOLO detect');
  return nmsAxisAligned(output0, nc, options).map((d) => {
    const [x1, y1, x2, y2] = unscaleXyxy(d.x1, d.y1, d.x2, d.y2, lb);
    return { x1, y1, x2, y2, score: d.score, classId: d.classId };
  });
}
