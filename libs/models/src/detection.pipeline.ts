import { Injectable } from '@nestjs/common';
import { type ImageInput, imageSource } from '@aperture/imaging/decode.js';
import { decodeYoloObb, type ObbDetection } from '@aperture/inference/postprocess/obb.js';
import {
  decodeYoloDetect,
  type Detection,
  nmsAxisAligned,
  type NmsOptions,
  unscaleXyxy,
} from '@aperture/inference/postprocess/yolo-detect.js';
import { decodeYoloSegment, type SegmentDetection } from '@aperture/inference/postprocess/yolo-segment.js';
import { letterboxImage } from '@aperture/inference/preprocess.js';
import { float32Output } from '@aperture/inference/session-host.js';
import type { ModelEntry } from './manifest.js';
import { type InferenceTiming, ModelRunner, type PhaseMs } from './model-runner.js';
import { applyPreprocessOverrides } from './preprocess-overrides.js';

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

/** Thresholds of a detector or segmenter; the decoders' defaults apply to those not given. */
export interface DetectOptions {
  conf?: number | undefined;
  iou?: number | undefined;
  maxDet?: number | undefined;
}

const labelOf = (model: ModelEntry, classId: number): string => model.labels?.[classId] ?? String(classId);

function nmsOptions(o: DetectOptions): NmsOptions {
  // Only the options given: an undefined key would override the defaults when spread.
  const nms: NmsOptions = {};
  if (o.conf !== undefined) nms.conf = o.conf;
  if (o.iou !== undefined) nms.iou = o.iou;
  if (o.maxDet !== undefined) nms.maxDet = o.maxDet;
  return nms;
}

const inputSize = (model: ModelEntry): number => model.input_size?.[0] ?? 640;

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

/**
 * YOLO detectors and segmenters: letterbox → session.run → typed-array post-processing, in original-image pixels,
 * sorted by score. Each call is one inference in the model's statistics.
 */
@Injectable()
export class DetectionPipeline {
  constructor(private readonly runner: ModelRunner) {}

  /** The detections of a detector (YOLO detect or OBB layout), or the boxes of a segmenter. */
  async detect(
    name: string,
    img: ImageInput,
    o: DetectOptions,
    timing: InferenceTiming = {},
  ): Promise<{ model: ModelEntry; objects: DetectedObject[] } & PhaseMs> {
    const model = await this.runner.resolve(name, ['detector', 'segmenter']);
    const { lb, outputs, preprocessMs, computeMs } = await this.letterboxAndRun(model, img);
    const t1 = performance.now();
    const nms = nmsOptions(o);
    const objects = this.runner.post(model, () => {
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
    const phases = this.record(model, timing, preprocessMs, computeMs, t1);
    return { model, objects, ...phases };
  }

  /** Instance masks of a YOLO segment model as COCO RLE in original pixels. */
  async segmentInstances(
    name: string,
    img: ImageInput,
    o: DetectOptions,
    timing: InferenceTiming = {},
  ): Promise<{ model: ModelEntry; detections: SegmentDetection[] } & PhaseMs> {
    const model = await this.runner.resolve(name, ['segmenter']);
    const { lb, outputs, preprocessMs, computeMs } = await this.letterboxAndRun(model, img);
    const t1 = performance.now();
    const detections = this.runner.post(model, () =>
      decodeYoloSegment(float32Output(outputs, 'output0'), float32Output(outputs, 'output1'), lb, { ...nmsOptions(o), maskFormat: 'rle' }),
    );
    const phases = this.record(model, timing, preprocessMs, computeMs, t1);
    return { model, detections, ...phases };
  }

  /**
   * Letterboxes the image to the model's input size and runs the model once. An ImageSource not decoded yet is
   * resized while it is decoded (one pass, at the model's size); the letterbox geometry is that of its full size.
   */
  private async letterboxAndRun(model: ModelEntry, img: ImageInput) {
    const t0 = performance.now();
    const lb = await letterboxImage(imageSource(img), inputSize(model));
    applyPreprocessOverrides(lb, model.preprocess);
    const preprocessMs = performance.now() - t0;
    const { outputs, computeMs } = await this.runner.run(model, 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
    return { lb, outputs, preprocessMs, computeMs };
  }

  /** Records one inference whose post-processing started at `postStart`; returns its phases. */
  private record(model: ModelEntry, timing: InferenceTiming, preprocessMs: number, computeMs: number, postStart: number): PhaseMs {
    const phases = { preprocessMs, computeMs, postprocessMs: performance.now() - postStart };
    this.runner.record(model, timing, phases);
    return phases;
  }
}
