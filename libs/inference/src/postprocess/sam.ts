/**
 * Segment Anything (SAM1 / MobileSAM) ONNX prompt decoder, as exported by segment-anything's
 * scripts/export_onnx_model.py. Inputs (all float32): image_embeddings [1,256,64,64], point_coords [1,N,2] in the
 * ResizeLongestSide(1024) frame, point_labels [1,N] (1 fg, 0 bg, 2/3 box corners, −1 padding), mask_input
 * [1,1,256,256], has_mask_input [1], orig_im_size [2] = (H, W). Outputs: masks [1,M,H,W] logits at the original size,
 * iou_predictions [1,M], low_res_masks [1,M,256,256].
 */

export const SAM_ENCODER_INPUT = 'image';
export const SAM_ENCODER_OUTPUT = 'image_embeddings';
const SAM_EMBEDDING_DIMS = [1, 256, 64, 64] as const;
const SAM_LOW_RES = 256;

export interface SamPoint {
  /** Original-image pixels. */
  x: number;
  y: number;
  /** 1 = foreground, 0 = background. */
  label: 0 | 1;
}

export interface SamBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface SamPrompt {
  points?: readonly SamPoint[];
  box?: SamBox;
  /** A previous low_res_masks plane (256×256 logits) to refine; zeros and has_mask_input = 0 when absent. */
  maskInput?: Float32Array;
}

/** The original size and the ResizeLongestSide(1024) size of the image (see samPreprocess / samResizeGeometry). */
export interface SamFrame {
  origW: number;
  origH: number;
  newW: number;
  newH: number;
}

export interface Float32Feed {
  type: 'float32';
  dims: number[];
  data: Float32Array;
}

/** A type alias (not an interface) so that it is assignable to SessionHost.run()'s Record<string, InputTensor>. */
export type SamDecoderFeeds = {
  point_coords: Float32Feed;
  point_labels: Float32Feed;
  mask_input: Float32Feed;
  has_mask_input: Float32Feed;
  orig_im_size: Float32Feed;
  image_embeddings?: Float32Feed;
};

/**
 * Builds the decoder inputs for a prompt: points first, then the box as two points labelled 2 (top-left) and 3
 * (bottom-right); without a box a (0, 0) point labelled −1 is appended (the official notebook's padding point).
 * Coordinates are mapped to the resized frame: x·newW/origW, y·newH/origH.
 */
export function encodeSamPrompt(prompt: SamPrompt, frame: SamFrame, imageEmbeddings?: Float32Array): SamDecoderFeeds {
  const points = prompt.points ?? [];
  if (points.length === 0 && !prompt.box) throw new Error('A SAM prompt needs at least one point or a box');
  const n = points.length + (prompt.box ? 2 : 1);
  const coords = new Float32Array(2 * n);
  const labels = new Float32Array(n);
  const sx = frame.newW / frame.origW;
  const sy = frame.newH / frame.origH;
  points.forEach((p, i) => {
    if (p.label !== 0 && p.label !== 1) throw new Error(`Point label ${String(p.label)} is not 0 or 1`);
    coords[2 * i] = p.x * sx;
    coords[2 * i + 1] = p.y * sy;
    labels[i] = p.label;
  });
  const k = points.length;
  if (prompt.box) {
    const b = prompt.box;
    coords.set([Math.min(b.x1, b.x2) * sx, Math.min(b.y1, b.y2) * sy, Math.max(b.x1, b.x2) * sx, Math.max(b.y1, b.y2) * sy], 2 * k);
    labels[k] = 2;
    labels[k + 1] = 3;
  } else {
    labels[k] = -1; // coords already (0, 0)
  }
  let maskInput = prompt.maskInput;
  if (maskInput && maskInput.length !== SAM_LOW_RES * SAM_LOW_RES) throw new Error('maskInput must be 256×256');
  const hasMask = maskInput ? 1 : 0;
  maskInput ??= new Float32Array(SAM_LOW_RES * SAM_LOW_RES);
  const feeds: SamDecoderFeeds = {
    point_coords: { type: 'float32', dims: [1, n, 2], data: coords },
    point_labels: { type: 'float32', dims: [1, n], data: labels },
    mask_input: { type: 'float32', dims: [1, 1, SAM_LOW_RES, SAM_LOW_RES], data: maskInput },
    has_mask_input: { type: 'float32', dims: [1], data: Float32Array.of(hasMask) },
    orig_im_size: { type: 'float32', dims: [2], data: Float32Array.of(frame.origH, frame.origW) },
  };
  if (imageEmbeddings) {
    if (imageEmbeddings.length !== 256 * 64 * 64) throw new Error('image_embeddings must be [1, 256, 64, 64]');
    feeds.image_embeddings = { type: 'float32', dims: [...SAM_EMBEDDING_DIMS], data: imageEmbeddings };
  }
  return feeds;
}

/**
 * Which of the decoder's M masks to use. M = 1 (--return-single-mask export): 0. Otherwise (M = 4: token 0 is the
 * single-mask output, 1–3 the multimask set): a prompt of exactly one point and no box is ambiguous, so the mask
 * of 1..M−1 with the highest iou_prediction wins; several points or a box are not, so token 0 is used (what
 * SamPredictor's multimask_output=False returns). Note: the exported select_masks counts the padding point, so for a
 * box alone (N = 2) it would pick the best of 1–3; we use token 0 for any box, as the SAM notebooks do.
 */
export function selectSamMaskIndex(iouPredictions: Float32Array, prompt: SamPrompt): number {
  const m = iouPredictions.length;
  if (m <= 1) return 0;
  const single = (prompt.points?.length ?? 0) === 1 && !prompt.box;
  if (!single) return 0;
  let best = 1;
  for (let i = 2; i < m; i++) if (iouPredictions[i]! > iouPredictions[best]!) best = i;
  return best;
}

export interface SamMaskResult {
  /** Row-major H×W, 1 where the logit is > 0. */
  mask: Uint8Array;
  width: number;
  height: number;
  index: number;
  /** iou_predictions[index] */
  score: number;
  area: number;
}

/**
 * Thresholds the chosen mask of masks [1, M, H, W] at logit > 0. `index` overrides the selection rule.
 */
export function samMaskFromOutputs(
  masks: { data: Float32Array; dims: readonly number[] },
  iouPredictions: { data: Float32Array; dims: readonly number[] },
  prompt: SamPrompt,
  index?: number,
): SamMaskResult {
  const d = masks.dims;
  if (d.length !== 4 || d[0] !== 1) throw new Error(`SAM masks must be [1, M, H, W], got [${d.join(', ')}]`);
  const [, m, h, w] = d as [number, number, number, number];
  if (masks.data.length !== m * h * w) throw new Error('SAM masks size does not match its dims');
  if (iouPredictions.data.length !== m) throw new Error(`iou_predictions has ${iouPredictions.data.length} values for ${m} masks`);
  const i = index ?? selectSamMaskIndex(iouPredictions.data, prompt);
  if (!Number.isInteger(i) || i < 0 || i >= m) throw new Error(`Mask index ${i} out of range 0..${m - 1}`);
  const plane = w * h;
  const src = masks.data.subarray(i * plane, (i + 1) * plane);
  const mask = new Uint8Array(plane);
  let area = 0;
  for (let k = 0; k < plane; k++) {
    if (src[k]! > 0) {
      mask[k] = 1;
      area++;
    }
  }
  return { mask, width: w, height: h, index: i, score: iouPredictions.data[i]!, area };
}
