import { Injectable } from '@nestjs/common';
import { type ImageInput, imageSource } from '@aperture/imaging/decode.js';
import {
  encodeSamPrompt,
  SAM_ENCODER_INPUT,
  SAM_ENCODER_OUTPUT,
  type SamDecoderFeeds,
  type SamFrame,
  type SamMaskResult,
  samMaskFromOutputs,
  type SamPrompt,
} from '@aperture/inference/postprocess/sam.js';
import { samPreprocessImage } from '@aperture/inference/preprocess.js';
import { float32Output } from '@aperture/inference/session-host.js';
import { PermanentJobError } from '@aperture/queue/job-handler.js';
import { EmbeddingCache } from './embedding-cache.js';
import type { ModelEntry } from './manifest.js';
import { type InferenceTiming, ModelRunner, type PhaseMs } from './model-runner.js';

/**
 * The image encoder's output for one image: what every prompt on that image is decoded from. Immutable once made
 * (decoders get a copy of `data`), so it can be cached and shared by any number of samDecode calls.
 */
export interface SamEmbedding {
  readonly model: string;
  /** The original size and the ResizeLongestSide(1024) size of the image. */
  readonly frame: Readonly<SamFrame>;
  /** image_embeddings [1, 256, 64, 64]. */
  readonly data: Float32Array;
  /** The encoder's pre-processing and compute. */
  readonly encodeMs: { readonly preprocessMs: number; readonly computeMs: number };
}

/** samEncodeCached's answer: the embedding, and whether it came from the cache (no encoder run). */
export interface CachedSamEmbedding {
  readonly embedding: SamEmbedding;
  readonly hit: boolean;
}

/** One prompt set's mask: the chosen mask of the decoder's outputs (see samMaskFromOutputs). */
export type SamMask = SamMaskResult;

const NO_PROMPT = 'A SAM model needs a prompt: points and/or a box';

/**
 * Segment Anything (SAM1 / MobileSAM): encode an image once, decode many prompt sets from its embedding.
 *
 * Statistics: a samDecode call is one inference of the model. The encoder's pre-processing and compute are added to
 * the first decode of that embedding (the request that paid for the encoding), so one encode + one decode counts
 * once, and decodes from a cached embedding count only their own time.
 *
 * Caching: samEncodeCached looks the image up in the EmbeddingCache first. The pipeline subscribes the cache to the
 * registry, so a model's entries are dropped when its sessions are unloaded or reloaded, and the cache's counters of
 * a SAM model appear in its statistics (`embedding_cache`).
 */
@Injectable()
export class SamPipeline {
  /** Embeddings whose encoder time is not in the statistics yet. */
  private readonly unrecorded = new WeakSet<SamEmbedding>();

  constructor(
    private readonly runner: ModelRunner,
    private readonly cache: EmbeddingCache,
  ) {
    const registry = runner.registry;
    registry.observe({
      sessionsChanged: (model) => void cache.invalidate(model),
      stats: (model) => (registry.model(model).kind === 'sam' ? { embedding_cache: cache.stats(model) } : {}),
    });
  }

  /**
   * The SAM model a job names (an installed one this worker missed is fetched first); a PermanentJobError when there
   * is none of that name or it is not a SAM model.
   */
  samModel(name: string): Promise<ModelEntry> {
    return this.runner.resolve(name, ['sam']);
  }

  /** Runs the image encoder. */
  async samEncode(name: string, img: ImageInput): Promise<SamEmbedding> {
    return (await this.encode(await this.runner.resolve(name, ['sam']), img)).embedding;
  }

  /**
   * The embedding of an image whose file's sha256 the caller computed: from the cache when this load of the model
   * already encoded it (a hit runs no encoder), else encoded and cached. The result is the same either way.
   */
  async samEncodeCached(name: string, img: ImageInput, sha256: string): Promise<CachedSamEmbedding> {
    const model = await this.runner.resolve(name, ['sam']);
    const registry = this.runner.registry;
    const key = { sha256, model: model.name, version: model.version };
    const cached = this.cache.get({ ...key, generation: registry.generation(model.name) });
    if (cached) return { embedding: cached, hit: true };
    const { embedding, generation } = await this.encode(model, img);
    // Sessions that were replaced while this encode ran produced it: the cache has been cleared of them, keep it so.
    if (generation === registry.generation(model.name)) this.cache.set({ ...key, generation }, embedding);
    return { embedding, hit: false };
  }

  private async encode(model: ModelEntry, img: ImageInput): Promise<{ embedding: SamEmbedding; generation: number }> {
    const t0 = performance.now();
    const pre = await samPreprocessImage(imageSource(img));
    const preprocessMs = performance.now() - t0;
    const { outputs, computeMs, generation } = await this.runner.run(model, 'encoder', {
      [SAM_ENCODER_INPUT]: { type: 'float32', dims: pre.dims, data: pre.tensor },
    });
    const data = this.runner.post(model, () => float32Output(outputs, SAM_ENCODER_OUTPUT).data);
    const embedding: SamEmbedding = {
      model: model.name,
      frame: Object.freeze({ origW: img.width, origH: img.height, newW: pre.newW, newH: pre.newH }),
      data,
      encodeMs: Object.freeze({ preprocessMs, computeMs }),
    };
    this.unrecorded.add(embedding);
    return { embedding: Object.freeze(embedding), generation };
  }

  /**
   * The encoder time of an embedding that no statistics record holds yet (zeros once claimed): for a caller that
   * runs the decoder itself and records the inference (the automatic mask generator), so it is counted once.
   */
  claimEncodeMs(embedding: SamEmbedding): { preprocessMs: number; computeMs: number } {
    return this.unrecorded.delete(embedding) ? { ...embedding.encodeMs } : { preprocessMs: 0, computeMs: 0 };
  }

  /**
   * Records the encoder run that made an embedding as one inference of the model, for a caller that wanted only the
   * embedding (it is decoded elsewhere, e.g. on a client). Nothing when it is already in the statistics (a cached
   * embedding, or one a decode or this call already counted), so an encoder run is counted once.
   */
  recordEncode(embedding: SamEmbedding, timing: InferenceTiming = {}): void {
    if (!this.unrecorded.delete(embedding)) return;
    const model = this.runner.entry(embedding.model, ['sam']);
    this.runner.record(model, timing, { ...embedding.encodeMs, postprocessMs: 0 });
  }

  /**
   * Decodes several prompt sets from one embedding: one mask per prompt set, in order. The exported decoder takes
   * one prompt set per run (batch 1), so it runs once per set. Each prompt set needs points and/or a box.
   * The phases returned are the decoder's (prompt encoding, compute, mask thresholding), all sets together.
   * With `multimask`, `multimasks[i]` also holds every multimask output of set i (tokens 1..M−1; token 0 when the
   * decoder returns one mask); `masks` is the same either way.
   */
  async samDecode(
    embedding: SamEmbedding,
    prompts: readonly SamPrompt[],
    timing: InferenceTiming = {},
    options: { multimask?: boolean } = {},
  ): Promise<{ masks: SamMask[]; multimasks?: SamMask[][] } & PhaseMs> {
    const model = await this.runner.resolve(embedding.model, ['sam']);
    if (prompts.length === 0 || prompts.some((p) => !p.points?.length && !p.box)) throw new PermanentJobError(NO_PROMPT);
    const phases: PhaseMs = { preprocessMs: 0, computeMs: 0, postprocessMs: 0 };
    const masks: SamMask[] = [];
    const multimasks: SamMask[][] = [];
    for (const prompt of prompts) {
      const t0 = performance.now();
      const feeds = this.feeds(model, prompt, embedding);
      phases.preprocessMs += performance.now() - t0;
      const { outputs, computeMs } = await this.runner.run(model, 'decoder', feeds);
      phases.computeMs += computeMs;
      const t1 = performance.now();
      const mask = this.runner.post(model, () =>
        samMaskFromOutputs(float32Output(outputs, 'masks'), float32Output(outputs, 'iou_predictions'), prompt),
      );
      masks.push(mask);
      if (options.multimask) {
        const m = outputs['masks']?.dims[1] ?? 1;
        const indices = m > 1 ? Array.from({ length: m - 1 }, (_, i) => i + 1) : [0];
        multimasks.push(
          indices.map((i) =>
            this.runner.post(model, () =>
              samMaskFromOutputs(float32Output(outputs, 'masks'), float32Output(outputs, 'iou_predictions'), prompt, i),
            ),
          ),
        );
      }
      phases.postprocessMs += performance.now() - t1;
    }
    const recorded = { ...phases };
    if (this.unrecorded.delete(embedding)) {
      recorded.preprocessMs += embedding.encodeMs.preprocessMs;
      recorded.computeMs += embedding.encodeMs.computeMs;
    }
    this.runner.record(model, timing, recorded);
    return options.multimask ? { masks, multimasks, ...phases } : { masks, ...phases };
  }

  /** The decoder's inputs for a prompt set, with a copy of the embedding (a run takes its input buffers). */
  private feeds(model: ModelEntry, prompt: SamPrompt, embedding: SamEmbedding): SamDecoderFeeds {
    try {
      return encodeSamPrompt(prompt, embedding.frame, embedding.data.slice());
    } catch (e) {
      throw new PermanentJobError(`Model ${model.name}: ${(e as Error).message}`);
    }
  }
}
