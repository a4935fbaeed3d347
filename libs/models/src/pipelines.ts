/**
 * The model pipelines the worker's job handlers (and the bench) share: letterbox → session.run → typed-array
 * post-processing, per model kind, with the time of each phase. Everything is in original-image pixels.
 * Errors from a model that does not fit are ModelError (the handlers turn them into permanent job failures).
 */
import { decodeYoloObb, type ObbDetection } from '@aperture/inference/postprocess/obb.js';
import { decodeYoloDetect, type Detection, nmsAxisAligned, type NmsOptions, unscaleXyxy } from '@aperture/inference/postprocess/yolo-detect.js';
import { decodeYoloSegment, type SegmentDetection } from '@aperture/inference/postprocess/yolo-segment.js';
import { letterbox } from '@aperture/inference/preprocess.js';
import { type RgbImage } from '@aperture/imaging/decode.js';
import { float32Output } from '@aperture/inference/session-host.js';
import type { ModelEntry } from './manifest.js';
import { ModelError, type ModelRegistry } from './model-registry.js';

/** Milliseconds of each phase of one model call. */
export interface PhaseMs {
  preprocessMs: number;
  computeMs: number;
  postprocessMs: number;
}

/** An oriented (OBB models) or axis-aligned (detect models) detection, in original-image pixels. */
export interface DetectedObject {
  classId: number;
  label: string;
  score: number;
  /** Axis-aligned enclosing box x1, y1, x2, y2. */
  box: [number, number, number, number];
  /** The four corners (clockwise in image coordinates for OBB, as Ultralytics' xywhr2xyxyxyxy). */
  corners: [number, number][];
  /** The rotated box for OBB models; null for axis-aligned ones. */
  rbox: { cx: number; cy: number; w: number; h: number; angle: number } | null;
}

export const labelOf = (model: ModelEntry, classId: number): string => model.labels?.[classId] ?? String(classId);

function nmsOptions(o: { conf?: number | undefined; iou?: number | undefined; maxDet?: number | undefined }): NmsOptions {
  // Only the options given: an undefined key would override the defaults when spread.
  const nms: NmsOptions = {};
  if (o.conf !== undefined) nms.conf = o.conf;
  if (o.iou !== undefined) nms.iou = o.iou;
  if (o.maxDet !== undefined) nms.maxDet = o.maxDet;
  return nms;
}

function inputSize(model: ModelEntry): number {
  return model.input_size?.[0] ?? 640;
}

function expectKind(model: ModelEntry, kinds: readonly string[]): void {
  if (!kinds.includes(model.kind)) throw new ModelError(`Model ${model.name} is a ${model.kind}; expected ${kinds.join(' or ')}`);
}

/** Post-processing failures (an output that does not fit the contract) are model errors, not bugs of the caller. */
function post<T>(model: ModelEntry, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError(`Model ${model.name}: ${(e as Error).message}`);
  }
}

function fromObb(model: ModelEntry, d: ObbDetection): DetectedObject {
  const c = d.corners;
  const xs = [c[0], c[2], c[4], c[6]];
  const ys = [c[1], c[3], c[5], c[7]];
  return {
    classId: d.classId,
    label: labelOf(model, d.classId),
    score: d.score,
    box: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)],
    corners: [0, 1, 2, 3].map((k) => [xs[k]!, ys[k]!] as [number, number]),
    rbox: { cx: d.cx, cy: d.cy, w: d.w, h: d.h, angle: d.angle },
  };
}

function fromBox(model: ModelEntry, d: Detection): DetectedObject {
  return {
    classId: d.classId,
    label: labelOf(model, d.classId),
    score: d.score,
    box: [d.x1, d.y1, d.x2, d.y2],
    corners: [
      [d.x1, d.y1],
      [d.x2, d.y1],
      [d.x2, d.y2],
      [d.x1, d.y2],
    ],
    rbox: null,
  };
}

/** A detector (YOLO detect or OBB layout), or the boxes of a segmenter, sorted by score. */
export async function detectObjects(
  registry: ModelRegistry,
  model: ModelEntry,
  img: RgbImage,
  o: { conf?: number | undefined; iou?: number | undefined; maxDet?: number | undefined },
): Promise<{ objects: DetectedObject[] } & PhaseMs> {
  expectKind(model, ['detector', 'segmenter']);
  const t0 = performance.now();
  const lb = await letterbox(img.data, img.width, img.height, inputSize(model));
  const preprocessMs = performance.now() - t0;
  const { outputs, computeMs } = await registry.run(model.name, 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
  const t1 = performance.now();
  const nms = nmsOptions(o);
  const objects = post(model, () => {
    const out0 = float32Output(outputs, 'output0');
    if (model.contract === 'ultralytics-obb') return decodeYoloObb(out0, lb, nms).map((d) => fromObb(model, d));
    if (model.kind === 'segmenter') {
      // Boxes only: the mask coefficients are ignored (no prototype product).
      const nc = model.labels?.length ?? (out0.dims[1] ?? 0) - 4 - 32;
      return nmsAxisAligned(out0, nc, nms).map((d) => {
        const [x1, y1, x2, y2] = unscaleXyxy(d.x1, d.y1, d.x2, d.y2, lb);
        return fromBox(model, { x1, y1, x2, y2, score: d.score, classId: d.classId });
      });
    }
    return decodeYoloDetect(out0, lb, nms).map((d) => fromBox(model, d));
  });
  return { objects, preprocessMs, computeMs, postprocessMs: performance.now() - t1 };
}

/** Instance masks of a YOLO segment model as COCO RLE in original pixels, sorted by score. */
export async function segmentInstances(
  registry: ModelRegistry,
  model: ModelEntry,
  img: RgbImage,
  o: { conf?: number | undefined; iou?: number | undefined; maxDet?: number | undefined },
): Promise<{ detections: SegmentDetection[] } & PhaseMs> {
  expectKind(model, ['segmenter']);
  const t0 = performance.now();
  const lb = await letterbox(img.data, img.width, img.height, inputSize(model));
  const preprocessMs = performance.now() - t0;
  const { outputs, computeMs } = await registry.run(model.name, 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
  const t1 = performance.now();
  const detections = post(model, () => decodeYoloSegment(float32Output(outputs, 'output0'), float32Output(outputs, 'output1'), lb, { ...nmsOptions(o), maskFormat: 'rle' }));
  return { detections, preprocessMs, computeMs, postprocessMs: performance.now() - t1 };
}

/**
 * The scene of seed 001 from the detected primitives: one row per primitive (in the order given: by score), the
 * class one-hot over the classifier's primitive classes followed by the 4 corners normalized by the image size.
 * Returns null probabilities when there is no primitive (a sequence model has nothing to read).
 */
export async function classifyPrimitives(
  registry: ModelRegistry,
  classifier: ModelEntry,
  detector: ModelEntry,
  objects: readonly DetectedObject[],
  width: number,
  height: number,
): Promise<{ probs: Float32Array | null } & PhaseMs> {
  expectKind(classifier, ['classifier']);
  const t0 = performance.now();
  const input = classifier.files[0]?.inputs[0];
  const rowLen = typeof input?.shape[2] === 'number' ? input.shape[2] : 13;
  const nc = rowLen - 8;
  const classes = detector.labels ?? [];
  if (classes.length !== nc) {
    throw new ModelError(`Classifier ${classifier.name} reads ${nc} primitive classes; detector ${detector.name} has ${classes.length}: they do not go together`);
  }
  if (objects.length === 0) return { probs: null, preprocessMs: performance.now() - t0, computeMs: 0, postprocessMs: 0 };
  const rows = new Float32Array(objects.length * rowLen);
  objects.forEach((o, i) => {
    const base = i * rowLen;
    rows[base + o.classId] = 1;
    o.corners.forEach(([x, y], k) => {
      rows[base + nc + 2 * k] = x / width;
      rows[base + nc + 2 * k + 1] = y / height;
    });
  });
  const preprocessMs = performance.now() - t0;
  const { outputs, computeMs } = await registry.run(classifier.name, 'model', { [input?.name ?? 'primitives']: { type: 'float32', dims: [1, objects.length, rowLen], data: rows } });
  const t1 = performance.now();
  const outName = classifier.files[0]?.outputs[0]?.name ?? 'probs';
  const probs = post(classifier, () => {
    const out = float32Output(outputs, outName).data;
    const labels = classifier.labels ?? [];
    if (labels.length && out.length !== labels.length) throw new Error(`output has ${out.length} values for ${labels.length} labels`);
    const sum = out.reduce((a, b) => a + b, 0);
    // Probabilities already (the shipped model softmaxes); logits are softmaxed here.
    if (Math.abs(sum - 1) < 1e-3 && out.every((v) => v >= 0)) return Float32Array.from(out);
    const max = Math.max(...out);
    const e = out.map((v) => Math.exp(v - max));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  });
  return { probs, preprocessMs, computeMs, postprocessMs: performance.now() - t1 };
}
