import { Injectable } from '@nestjs/common';
import { type ImageInput, imageSource, type RgbImage } from '@aperture/imaging/decode.js';
import {
  type AmgDecodeResult,
  type AmgOptions,
  type AmgOutputMode,
  type AmgRecord,
  type CropBox,
  generateMasks,
  type Point,
  resolveAmgOptions,
} from '@aperture/inference/amg.js';
import type { SamDecoderFeeds } from '@aperture/inference/postprocess/sam.js';
import { float32Output } from '@aperture/inference/session-host.js';
import type { OutputTensor } from '@aperture/inference/session-types.js';
import { JobCancelledError, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { ModelEntry } from './manifest.js';
import { asJobError, type InferenceTiming, ModelRunner } from './model-runner.js';
import { type SamEmbedding, SamPipeline } from './sam.pipeline.js';

/**
 * The generator reads the low-res masks and IoUs only. SAM's decoder computes them before, and independently of,
 * orig_im_size (which only sizes the `masks` output); ONNX Runtime computes every output whichever are asked for, so
 * the generator passes a 1×1 orig_im_size, making `masks` a 1×1 afterthought instead of B·M full-size planes, and
 * upscales the low-res planes itself, only those that pass pred_iou_thresh (amg.ts).
 */
const DECODER_OUTPUTS = ['iou_predictions', 'low_res_masks'] as const;
const SAM_LOW_RES = 256;

export interface AutoMaskHooks {
  /** Points decoded so far and in all crops together, after each batch. */
  onProgress?: (done: number, total: number) => void;
  /** Checked before each crop encoding and each decoder run: an abort stops the run with JobCancelledError. */
  signal?: AbortSignal;
  /** The caller's queue and decode time, for the statistics. */
  timing?: InferenceTiming;
}

/** Where the time of one automatic mask generation went (milliseconds). */
export interface AutoMaskTimings {
  /** Image encoder runs (pre-processing and compute), one per crop; 0 for a cached whole-image embedding. */
  encodeMs: number;
  /** Decoder session runs (compute only). */
  decoderMs: number;
  /** Building the decoder feeds and picking the multimask planes. */
  promptMs: number;
  /** The generator's own work: filtering, stability, boxes, RLE, NMS, small regions. */
  postprocessMs: number;
  totalMs: number;
  encoderRuns: number;
  decoderRuns: number;
  /** Whether the whole-image embedding came from the cache. */
  cacheHit: boolean;
}

/** The RGB pixels of a crop [x0, y0, x1, y1) (exclusive max), copied row by row. */
export function cropRgb(img: RgbImage, [x0, y0, x1, y1]: CropBox): RgbImage {
  const w = x1 - x0;
  const h = y1 - y0;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const src = ((y + y0) * img.width + x0) * 3;
    data.set(img.data.subarray(src, src + w * 3), y * w * 3);
  }
  return { data, width: w, height: h };
}

/**
 * SAM's automatic mask generator ("segment everything") on a SAM model: `generateMasks` of amg.ts with a decoder
 * batch that encodes each crop once (the whole image through the embedding cache, smaller crops uncached) and gives
 * each grid point a positive click and the padding point, keeping the three multimask outputs. A decoder whose graph
 * has a dynamic dim 0 in point_coords (a batch of prompt sets) runs once per batch of points_per_batch points; the
 * official export (batch 1) runs once per point. One call is one inference in the model's statistics.
 */
@Injectable()
export class AutoMaskPipeline {
  constructor(
    private readonly runner: ModelRunner,
    private readonly sam: SamPipeline,
  ) {}

  async generate<M extends AmgOutputMode>(
    name: string,
    input: ImageInput,
    sha256: string | null,
    options: Partial<AmgOptions> & { output_mode: M },
    hooks: AutoMaskHooks = {},
  ): Promise<{ masks: AmgRecord<M>[]; timings: AutoMaskTimings }> {
    const model = await this.runner.resolve(name, ['sam']);
    // The whole image's encoding resizes from the file; crops (crop_n_layers > 0) need the full-size pixels.
    const img = imageSource(input);
    let resolved: AmgOptions;
    try {
      resolved = resolveAmgOptions(options);
    } catch (e) {
      throw new PermanentJobError((e as Error).message);
    }
    const t: AutoMaskTimings = {
      encodeMs: 0,
      decoderMs: 0,
      promptMs: 0,
      postprocessMs: 0,
      totalMs: 0,
      encoderRuns: 0,
      decoderRuns: 0,
      cacheHit: false,
    };
    let encPre = 0;
    let encCompute = 0;
    let inDecode = 0;
    let current: { key: string; embedding: SamEmbedding } | null = null;
    const checkAbort = (): void => {
      if (hooks.signal?.aborted) throw new JobCancelledError();
    };

    const embed = async (cropBox: CropBox): Promise<SamEmbedding> => {
      const key = cropBox.join(',');
      if (current?.key === key) return current.embedding;
      checkAbort();
      const t0 = performance.now();
      const whole = cropBox[0] === 0 && cropBox[1] === 0 && cropBox[2] === img.width && cropBox[3] === img.height;
      let embedding: SamEmbedding;
      if (whole && sha256) {
        const cached = await this.sam.samEncodeCached(model.name, img, sha256);
        embedding = cached.embedding;
        t.cacheHit = cached.hit;
      } else {
        embedding = await this.sam.samEncode(model.name, whole ? img : cropRgb(await img.rgb(), cropBox));
      }
      const enc = this.sam.claimEncodeMs(embedding);
      encPre += enc.preprocessMs;
      encCompute += enc.computeMs;
      if (enc.computeMs > 0) t.encoderRuns++;
      t.encodeMs += performance.now() - t0;
      current = { key, embedding };
      return embedding;
    };

    const batched = await this.batchedDecoder(model);
    const decodeBatch = async (cropBox: CropBox, points: Point[]): Promise<AmgDecodeResult> => {
      const t0 = performance.now();
      const embedding = await embed(cropBox);
      const planes: Float32Array[] = [];
      const iouPredictions: number[] = [];
      const runs = batched ? [points] : points.map((p) => [p]);
      for (const group of runs) {
        checkAbort();
        const p0 = performance.now();
        const feeds = gridFeeds(group, embedding);
        t.promptMs += performance.now() - p0;
        const { outputs, computeMs } = await this.runner.run(model, 'decoder', feeds, { outputNames: DECODER_OUTPUTS });
        t.decoderMs += computeMs;
        t.decoderRuns++;
        const p1 = performance.now();
        this.runner.post(model, () => multimaskPlanes(model, outputs, group.length, planes, iouPredictions));
        t.promptMs += performance.now() - p1;
      }
      inDecode += performance.now() - t0;
      const { newW, newH } = embedding.frame;
      return { lowRes: { planes, size: SAM_LOW_RES, newW, newH }, iouPredictions };
    };

    const started = performance.now();
    const masks = await generateMasks(img, resolved as Partial<AmgOptions> & { output_mode: M }, decodeBatch, {
      onProgress: hooks.onProgress,
    });
    t.totalMs = performance.now() - started;
    t.postprocessMs = Math.max(0, t.totalMs - inDecode);
    this.runner.record(model, hooks.timing ?? {}, {
      preprocessMs: encPre + t.promptMs,
      computeMs: encCompute + t.decoderMs,
      postprocessMs: t.postprocessMs,
    });
    return { masks, timings: t };
  }

  /** Whether the model's decoder takes a batch of prompt sets: dim 0 of point_coords is symbolic (or > 1). */
  async batchedDecoder(model: ModelEntry): Promise<boolean> {
    const inputs = await this.runner.registry.inputMetadata(model.name, 'decoder').catch((e: unknown) => {
      throw asJobError(e);
    });
    const d0 = inputs.find((i) => i.name === 'point_coords')?.shape?.[0];
    return typeof d0 === 'string' || (typeof d0 === 'number' && d0 !== 1);
  }
}

/**
 * Decoder feeds for single positive clicks (crop pixels) on one embedding, one prompt set per point: point_coords
 * [B, 2, 2] (the click in the resized frame, then the (0, 0) padding point), point_labels [B, 2] = [1, −1], no mask
 * input, orig_im_size 1×1 (see DECODER_OUTPUTS). Equal, for B = 1, to encodeSamPrompt's feeds for one click.
 */
function gridFeeds(points: readonly Point[], embedding: SamEmbedding): SamDecoderFeeds {
  const b = points.length;
  const { origW, origH, newW, newH } = embedding.frame;
  const sx = newW / origW;
  const sy = newH / origH;
  const coords = new Float32Array(4 * b);
  const labels = new Float32Array(2 * b);
  points.forEach(([x, y], i) => {
    coords[4 * i] = x * sx;
    coords[4 * i + 1] = y * sy;
    labels[2 * i] = 1;
    labels[2 * i + 1] = -1;
  });
  return {
    image_embeddings: { type: 'float32', dims: [1, 256, 64, 64], data: embedding.data.slice() },
    point_coords: { type: 'float32', dims: [b, 2, 2], data: coords },
    point_labels: { type: 'float32', dims: [b, 2], data: labels },
    mask_input: { type: 'float32', dims: [1, 1, SAM_LOW_RES, SAM_LOW_RES], data: new Float32Array(SAM_LOW_RES * SAM_LOW_RES) },
    has_mask_input: { type: 'float32', dims: [1], data: new Float32Array(1) },
    orig_im_size: { type: 'float32', dims: [2], data: Float32Array.of(1, 1) },
  };
}

/**
 * Appends the three multimask low-res planes (outputs 1..3 of 4, or all of 3) of each of the b prompt sets of one
 * decoder run, and their IoUs (views into the output, no copies).
 */
function multimaskPlanes(
  model: ModelEntry,
  outputs: Record<string, OutputTensor>,
  b: number,
  planes: Float32Array[],
  ious: number[],
): void {
  const m = float32Output(outputs, 'low_res_masks');
  const iou = float32Output(outputs, 'iou_predictions');
  const d = m.dims;
  if (d.length !== 4 || d[0] !== b || d[2] !== SAM_LOW_RES || d[3] !== SAM_LOW_RES) {
    throw new Error(`SAM low_res_masks must be [${b}, M, ${SAM_LOW_RES}, ${SAM_LOW_RES}], got [${d.join(', ')}]`);
  }
  const count = d[1]!;
  if (count !== 3 && count !== 4) {
    throw new PermanentJobError(`Model ${model.name}: the automatic mask generator needs a multimask decoder (3 or 4 masks), got ${count}`);
  }
  if (iou.data.length !== b * count) throw new Error(`iou_predictions has ${iou.data.length} values for ${b}×${count} masks`);
  const plane = SAM_LOW_RES * SAM_LOW_RES;
  for (let i = 0; i < b; i++) {
    for (let k = count - 3; k < count; k++) {
      const at = i * count + k;
      planes.push(m.data.subarray(at * plane, (at + 1) * plane));
      ious.push(iou.data[at]!);
    }
  }
}
