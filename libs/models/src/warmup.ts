import type { InputTensor, ValueMetadata } from '@aperture/inference/session-types.js';
import type { ModelEntry } from './manifest.js';

/** Side of an image input whose height/width are symbolic and the manifest gives no input size (e.g. xray). */
export const WARMUP_DEFAULT_SIDE = 640;

/**
 * Inputs for one warm-up run of a freshly loaded session (Triton's model_warmup): zeros of each input's dtype and
 * shape, symbolic dims resolved to 1, except an image's height and width (the manifest's input size, else 640).
 * SAM's decoder gets a valid prompt: padding points only (label -1) and orig_im_size of the 1024 frame, since an
 * original size of 0×0 cannot be resized to. The first run of an ONNX Runtime session allocates its arena and
 * picks its kernels; doing it at load keeps that cost out of the first request and makes a loaded model's memory
 * what it will be while serving, so unloading visibly returns it.
 */
export function warmupFeeds(model: ModelEntry, inputs: readonly ValueMetadata[]): Record<string, InputTensor> {
  const [h, w] = model.input_size ?? [WARMUP_DEFAULT_SIDE, WARMUP_DEFAULT_SIDE];
  const feeds: Record<string, InputTensor> = {};
  for (const input of inputs) {
    const shape = input.shape ?? [];
    const image = shape.length === 4;
    const dims = shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : image && i === 2 ? h : image && i === 3 ? w : 1));
    const size = dims.reduce((a, b) => a * b, 1);
    const type = input.type ?? 'float32';
    let tensor: InputTensor;
    switch (type) {
      case 'float32': {
        const data = new Float32Array(size);
        if (input.name === 'point_labels') data.fill(-1);
        if (input.name === 'orig_im_size') data.set([h, w].slice(0, size));
        tensor = { type, dims, data };
        break;
      }
      case 'int64':
        tensor = { type, dims, data: new BigInt64Array(size) };
        break;
      case 'int32':
        tensor = { type, dims, data: new Int32Array(size) };
        break;
      case 'uint8':
      case 'bool':
        tensor = { type, dims, data: new Uint8Array(size) };
        break;
      default:
        throw new Error(`input ${input.name} has type ${type}, which a warm-up run cannot fill`);
    }
    feeds[input.name] = tensor;
  }
  return feeds;
}
