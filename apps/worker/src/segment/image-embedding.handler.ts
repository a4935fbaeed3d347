import { Inject, Injectable } from '@nestjs/common';
import { samResizeGeometry } from '@aperture/inference/preprocess.js';
import { SamPipeline } from '@aperture/models/sam.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { ImageEmbeddingResult } from '@aperture/queue/job-registry.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort, StorageNotFoundError } from '@aperture/storage/storage.port.js';
import { contentSha256, queueMs, readStoredSource } from '../tasks/image-job-support.js';

/**
 * The SAM image embedding of one image, for a client that runs the decoder itself: taken from the embedding cache
 * (no encoder run when a prompt on the image came first) or encoded, then stored under a key derived from the file's
 * sha256, the model and its version (StorageKeys.embedding), so every later request for those bytes reads it from
 * storage. The raw float32 bytes are written first, their description (meta.json) last: meta present = both complete.
 */
@Injectable()
@HandlesJob('image.embedding')
export class ImageEmbeddingHandler implements JobHandler<'image.embedding'> {
  constructor(
    private readonly sam: SamPipeline,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async handle(ctx: JobContext<'image.embedding'>): Promise<ImageEmbeddingResult> {
    const { model, imageKey, imageId } = ctx.params;
    const entry = await this.sam.samModel(model);
    let read: Awaited<ReturnType<typeof readStoredSource>>;
    try {
      read = await readStoredSource(this.storage, imageKey);
    } catch (e) {
      if (e instanceof StorageNotFoundError) throw new PermanentJobError(`The file of image ${imageId} is missing from storage`);
      throw e;
    }
    const { bytes, src: img, decodeMs } = read;
    if (ctx.signal.aborted) throw new JobCancelledError();
    const sha256 = contentSha256(bytes);
    const { embedding, hit } = await this.sam.samEncodeCached(model, img, sha256);
    this.sam.recordEncode(embedding, { queueMs: queueMs(ctx.job), decodeMs });
    if (ctx.signal.aborted) throw new JobCancelledError();
    const shape = embeddingShape(entry.files.find((f) => f.role === 'encoder')?.outputs[0]?.shape, embedding.data.length);
    const inputSize = encoderInputSize(entry.files.find((f) => f.role === 'encoder')?.inputs[0]?.shape);
    const { scale } = samResizeGeometry(img.width, img.height, inputSize);
    const keys = StorageKeys.embedding(sha256, model, entry.version);
    const data = Buffer.from(embedding.data.buffer, embedding.data.byteOffset, embedding.data.byteLength);
    const result: ImageEmbeddingResult = {
      model,
      version: entry.version,
      sha256,
      data_key: keys.data,
      shape,
      dtype: 'float32',
      byte_length: data.byteLength,
      width: img.width,
      height: img.height,
      input_size: inputSize,
      scale,
      resized_width: embedding.frame.newW,
      resized_height: embedding.frame.newH,
      cache_hit: hit,
    };
    await this.storage.put(keys.data, data);
    await this.storage.put(keys.meta, Buffer.from(JSON.stringify(result)));
    return result;
  }
}

/** The encoder output's dims from the manifest when they are all fixed and match the data, else [1, C, S, S]. */
function embeddingShape(spec: (number | string)[] | undefined, length: number): number[] {
  if (spec && spec.every((d) => typeof d === 'number') && (spec as number[]).reduce((a, b) => a * b, 1) === length) return spec as number[];
  const side = Math.sqrt(length / 256);
  if (Number.isInteger(side)) return [1, 256, side, side];
  throw new PermanentJobError(`The image embedding has ${length} values, which is not [1, 256, S, S]`);
}

/** The encoder's square input side from its input dims [1, 3, S, S]; SAM's 1024 when the manifest does not fix it. */
function encoderInputSize(spec: (number | string)[] | undefined): number {
  const side = spec?.[3];
  return typeof side === 'number' && side > 0 ? side : 1024;
}
