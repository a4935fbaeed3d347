import { Injectable } from '@nestjs/common';
import { type RgbImage } from '@aperture/imaging/decode.js';
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
import { encodeSamPrompt } from '@aperture/inference/postprocess/sam.js';
import { float32Output } from '@aperture/inference/session-host.js';
import type { OutputTensor } from '@aperture/inference/session-types.js';
import { JobCancelledError, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { ModelEntry } from './manifest.js';
import { type InferenceTiming, ModelRunner } from './model-runner.js';
import { type SamEmbedding, SamPipeline } from './sam.pipeline.js';

const DECODER_OUTPUTS = ['masks', 'iou_predictions'] as const;

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
 * batch that encodes each crop once (the whole image through the embedding cache, smaller crops uncached) and runs
 * the decoder once per grid point (the exported decoder has batch 1) with a positive click and the padding point,
 * keeping the three multimask outputs. One call is one inference in the model's statistics.
 */
@Injectable()
export class AutoMaskPipeline {
  constructor(
    private readonly runner: ModelRunner,
    private readonly sam: SamPipeline,
  ) {}

  async generate<M extends AmgOutputMode>(
    name: string,
    img: RgbImage,
    sha256: string | null,
    options: Partial<AmgOptions> & { output_mode: M },
    hooks: AutoMaskHooks = {},
  ): Promise<{ masks: AmgRecord<M>[]; timings: AutoMaskTimings }> {
    const model = this.runner.entry(name, ['sam']);
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
        embedding = await this.sam.samEncode(model.name, whole ? img : cropRgb(img, cropBox));
      }
      const enc = this.sam.claimEncodeMs(embedding);
      encPre += enc.preprocessMs;
      encCompute += enc.computeMs;
      if (enc.computeMs > 0) t.encoderRuns++;
      t.encodeMs += performance.now() - t0;
      current = { key, embedding };
      return embedding;
    };

    const decodeBatch = async (cropBox: CropBox, points: Point[]): Promise<AmgDecodeResult> => {
      const t0 = performance.now();
      const embedding = await embed(cropBox);
      const masks: Float32Array[] = [];
      const iouPredictions: number[] = [];
      for (const [x, y] of points) {
        checkAbort();
        const p0 = performance.now();
        const feeds = encodeSamPrompt({ points: [{ x, y, label: 1 }] }, embedding.frame, embedding.data.slice());
        t.promptMs += performance.now() - p0;
        const { outputs, computeMs } = await this.runner.run(model, 'decoder', feeds, { outputNames: DECODER_OUTPUTS });
        t.decoderMs += computeMs;
        t.decoderRuns++;
        const p1 = performance.now();
        this.runner.post(model, () => multimaskPlanes(model, outputs, masks, iouPredictions));
        t.promptMs += performance.now() - p1;
      }
      inDecode += performance.now() - t0;
      return { masks, iouPredictions };
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
}

/** Appends the three multimask logit planes (outputs 1..3 of 4, or all of 3) of one decoder run and their IoUs. */
function multimaskPlanes(model: ModelEntry, outputs: Record<string, OutputTensor>, masks: Float32Array[], ious: number[]): void {
  const m = float32Output(outputs, 'masks');
  const iou = float32Output(outputs, 'iou_predictions');
  const d = m.dims;
  if (d.length !== 4 || d[0] !== 1) throw new Error(`SAM masks must be [1, M, H, W], got [${d.join(', ')}]`);
  const count = d[1]!;
  if (count !== 3 && count !== 4) {
    throw new PermanentJobError(`Model ${model.name}: the automatic mask generator needs a multimask decoder (3 or 4 masks), got ${count}`);
  }
  if (iou.data.length !== count) throw new Error(`iou_predictions has ${iou.data.length} values for ${count} masks`);
  const plane = d[2]! * d[3]!;
  for (let k = count - 3; k < count; k++) {
    masks.push(m.data.subarray(k * plane, (k + 1) * plane));
    ious.push(iou.data[k]!);
  }
}
