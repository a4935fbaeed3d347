/**
 * Ultralytics OBB head output [1, 4+nc+1, N], channel-major: rows cx, cy, w, h (letterboxed pixels), nc class
 * scores, then the angle in radians ((sigmoid − 0.25)·π ∈ [−π/4, 3π/4]). Post-processing follows ultralytics
 * non_max_suppression(rotated=True) (class offset on cx, cy only; Fast-NMS with ProbIoU), regularize_rboxes,
 * scale_boxes(xywh=True) and xywhr2xyxyxyxy.
 */
import {
  MAX_WH,
  NMS_DEFAULTS,
  anchorsOf,
  orderByScore,
  selectCandidates,
  type LetterboxMapping,
  type NmsOptions,
  type OutputTensor,
} from './yolo-detect.js';

const EPS = 1e-7;

/** A rotated box: centre, size and angle in radians (rotation of the w side from the +x axis, y pointing down). */
export interface Xywhr {
  cx: number;
  cy: number;
  w: number;
  h: number;
  angle: number;
}

export interface ObbDetection extends Xywhr {
  score: number;
  classId: number;
  /** Four corners [x1, y1, … x4, y4] in original-image pixels, in xywhr2xyxyxyxy order. */
  corners: [number, number, number, number, number, number, number, number];
}

/**
 * ProbIoU of two rotated boxes (ultralytics batch_probiou): each box is a Gaussian with variances w²/12, h²/12
 * rotated by its angle; Bhattacharyya distance clamped to [1e-7, 100]; IoU = 1 − √(1 − e^(−bd) + 1e-7).
 * Boxes are given as 5 consecutive values (cx, cy, w, h, angle) at offsets ia / ib of their arrays.
 */
function probIoUAt(a: ArrayLike<number>, ia: number, b: ArrayLike<number>, ib: number): number {
  const x1 = a[ia]!;
  const y1 = a[ia + 1]!;
  const x2 = b[ib]!;
  const y2 = b[ib + 1]!;
  const [a1, b1, c1] = covariance(a[ia + 2]!, a[ia + 3]!, a[ia + 4]!);
  const [a2, b2, c2] = covariance(b[ib + 2]!, b[ib + 3]!, b[ib + 4]!);
  const A = a1 + a2;
  const B = b1 + b2;
  const C = c1 + c2;
  const det = A * B - C * C;
  const t1 = ((A * (y1 - y2) ** 2 + B * (x1 - x2) ** 2) / (det + EPS)) * 0.25;
  const t2 = ((C * (x2 - x1) * (y1 - y2)) / (det + EPS)) * 0.5;
  const d1 = Math.max(a1 * b1 - c1 * c1, 0);
  const d2 = Math.max(a2 * b2 - c2 * c2, 0);
  const t3 = Math.log(det / (4 * Math.sqrt(d1 * d2) + EPS) + EPS) * 0.5;
  let bd = t1 + t2 + t3;
  bd = bd < EPS ? EPS : bd > 100 ? 100 : bd;
  const hd = Math.sqrt(1 - Math.exp(-bd) + EPS);
  return 1 - hd;
}

export function probIoU(a: Xywhr, b: Xywhr): number {
  return probIoUAt([a.cx, a.cy, a.w, a.h, a.angle], 0, [b.cx, b.cy, b.w, b.h, b.angle], 0);
}

function covariance(w: number, h: number, r: number): [number, number, number] {
  const a = (w * w) / 12;
  const b = (h * h) / 12;
  const cos = Math.cos(r);
  const sin = Math.sin(r);
  const cos2 = cos * cos;
  const sin2 = sin * sin;
  return [a * cos2 + b * sin2, a * sin2 + b * cos2, (a - b) * cos * sin];
}

/**
 * Rotated Fast-NMS (ultralytics TorchNMS.fast_nms): boxes (5 values each, class offset already applied) are in
 * descending score order; box i is kept iff its ProbIoU with EVERY earlier box — suppressed or not — is < iou.
 * Returns kept positions, at most maxDet.
 */
function rotatedFastNms(boxes: Float32Array | Float64Array, count: number, iou: number, maxDet: number): number[] {
  const keep: number[] = [];
  for (let i = 0; i < count && keep.length < maxDet; i++) {
    let ok = true;
    for (let j = 0; j < i; j++) {
      if (probIoUAt(boxes, 5 * j, boxes, 5 * i) >= iou) {
        ok = false;
        break;
      }
    }
    if (ok) keep.push(i);
  }
  return keep;
}

/** regularize_rboxes: the longer side becomes w (swap and θ += π/2 when h ≥ w), θ mod π ∈ [0, π). */
export function regularizeRbox(box: Xywhr): Xywhr {
  const keep = box.w > box.h;
  let t = (keep ? box.angle : box.angle + Math.PI / 2) % Math.PI;
  if (t < 0) t += Math.PI;
  if (t >= Math.PI) t -= Math.PI;
  return { cx: box.cx, cy: box.cy, w: keep ? box.w : box.h, h: keep ? box.h : box.w, angle: t };
}

/** xywhr2xyxyxyxy: ctr ± (w/2)(cos, sin) ± (h/2)(−sin, cos), in the order (+,+), (+,−), (−,−), (−,+). */
export function rboxCorners(b: Xywhr): ObbDetection['corners'] {
  const c = Math.cos(b.angle);
  const s = Math.sin(b.angle);
  const v1x = (b.w / 2) * c;
  const v1y = (b.w / 2) * s;
  const v2x = (-b.h / 2) * s;
  const v2y = (b.h / 2) * c;
  return [
    b.cx + v1x + v2x,
    b.cy + v1y + v2y,
    b.cx + v1x - v2x,
    b.cy + v1y - v2y,
    b.cx - v1x - v2x,
    b.cy - v1y - v2y,
    b.cx - v1x + v2x,
    b.cy - v1y + v2y,
  ];
}

/** OBB head: output0 [1, 4+nc+1, N] → oriented boxes in original-image pixels, best first. */
export function decodeYoloObb(
  output0: OutputTensor,
  lb: LetterboxMapping,
  options: NmsOptions & { numClasses?: number } = {},
): ObbDetection[] {
  const o = { ...NMS_DEFAULTS, ...options };
  const nc = options.numClasses ?? output0.dims[1]! - 5;
  const n = anchorsOf(output0, 4 + nc + 1, 'YOLO OBB');
  const data = output0.data;
  const angleRow = (4 + nc) * n;
  const cand = selectCandidates(data, n, nc, 4, o.conf, o.classes);
  const order = orderByScore(cand, o.maxNms);
  const m = order.length;
  const boxes = new Float64Array(5 * m);
  for (let k = 0; k < m; k++) {
    const c = order[k]!;
    const i = cand.anchor[c]!;
    const off = o.agnostic ? 0 : cand.classId[c]! * MAX_WH;
    boxes[5 * k] = data[i]! + off;
    boxes[5 * k + 1] = data[n + i]! + off;
    boxes[5 * k + 2] = data[2 * n + i]!;
    boxes[5 * k + 3] = data[3 * n + i]!;
    boxes[5 * k + 4] = data[angleRow + i]!;
  }
  const keep = rotatedFastNms(boxes, m, o.iou, o.maxDet);
  return keep.map((k) => {
    const c = order[k]!;
    const i = cand.anchor[c]!;
    const r = regularizeRbox({ cx: data[i]!, cy: data[n + i]!, w: data[2 * n + i]!, h: data[3 * n + i]!, angle: data[angleRow + i]! });
    // scale_boxes(xywh=True): the pad moves the centre only; all four are divided by the gain; no clipping.
    const box: Xywhr = {
      cx: (r.cx - lb.padX) / lb.gain,
      cy: (r.cy - lb.padY) / lb.gain,
      w: r.w / lb.gain,
      h: r.h / lb.gain,
      angle: r.angle,
    };
    return { ...box, score: cand.score[c]!, classId: cand.classId[c]!, corners: rboxCorners(box) };
  });
}
