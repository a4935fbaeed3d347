import { ImageSource, type RgbImage } from '@aperture/imaging/decode.js';

/** Python 3 round(): halves go to the even neighbour (round(2.5) = 2), as Ultralytics' arithmetic does. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function checkRgb(rgb: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0)
    throw new Error(`Bad image size ${width}×${height}`);
  if (rgb.length !== width * height * 3) throw new Error(`RGB buffer has ${rgb.length} bytes, expected ${width}×${height}×3`);
}

/**
 * Decoded pixels as an ImageSource. The resizes below are bilinear (sharp's 'linear' kernel: the closest to cv2
 * INTER_LINEAR / PIL BILINEAR it has), from the pixels given, or for an ImageSource of encoded bytes straight from
 * the file when the model input is smaller than the image (see ImageSource.resized).
 */
function sourceOf(rgb: Uint8Array, width: number, height: number): ImageSource {
  checkRgb(rgb, width, height);
  return ImageSource.fromRgb({ data: rgb, width, height });
}

/** Writes HWC uint8 pixels into a planar CHW float tensor at (left, top), one pass, v → v·scale + offset per channel. */
function writeChw(
  src: Uint8Array,
  w: number,
  h: number,
  dst: Float32Array,
  dstW: number,
  dstH: number,
  left: number,
  top: number,
  scale: readonly [number, number, number],
  offset: readonly [number, number, number],
): void {
  const plane = dstW * dstH;
  const [s0, s1, s2] = scale;
  const [o0, o1, o2] = offset;
  for (let y = 0; y < h; y++) {
    let si = y * w * 3;
    let di = (y + top) * dstW + left;
    for (let x = 0; x < w; x++, si += 3, di++) {
      dst[di] = src[si]! * s0 + o0;
      dst[di + plane] = src[si + 1]! * s1 + o1;
      dst[di + 2 * plane] = src[si + 2]! * s2 + o2;
    }
  }
}

export interface LetterboxResult {
  /** [1, 3, inputH, inputW] float32, RGB, /255, pad 114/255. */
  tensor: Float32Array;
  dims: [1, 3, number, number];
  /** Scale from original to letterboxed pixels (same for x and y). */
  gain: number;
  /** Left and top padding in letterboxed pixels. Original x = (x − padX) / gain. */
  padX: number;
  padY: number;
  newW: number;
  newH: number;
  inputW: number;
  inputH: number;
  origW: number;
  origH: number;
}

/** The geometry Ultralytics' LetterBox computes (auto=False, scaleup=True, center=True). */
export function letterboxGeometry(
  width: number,
  height: number,
  size: number | readonly [number, number],
): Omit<LetterboxResult, 'tensor' | 'dims'> {
  const [inputH, inputW] = typeof size === 'number' ? [size, size] : size;
  const gain = Math.min(inputH / height, inputW / width);
  const newW = pyRound(width * gain);
  const newH = pyRound(height * gain);
  const dw = (inputW - newW) / 2;
  const dh = (inputH - newH) / 2;
  const padY = pyRound(dh - 0.1);
  const padX = pyRound(dw - 0.1);
  return { gain, padX, padY, newW, newH, inputW, inputH, origW: width, origH: height };
}

/**
 * Ultralytics letterbox for detect/segment/obb/pose: keep aspect, bilinear resize, centre on a 114 grey canvas of
 * `size` ([h, w] or a square side), then RGB CHW /255. No mean/std.
 */
export async function letterbox(
  rgb: Uint8Array,
  width: number,
  height: number,
  size: number | readonly [number, number],
): Promise<LetterboxResult> {
  return letterboxImage(sourceOf(rgb, width, height), size);
}

/**
 * letterbox() of an ImageSource: the geometry is letterboxGeometry of the source's (oriented, original) size, the
 * pixels are resized to newW×newH in one pass from the encoded image when that is smaller than the image.
 */
export async function letterboxImage(src: ImageSource, size: number | readonly [number, number]): Promise<LetterboxResult> {
  const g = letterboxGeometry(src.width, src.height, size);
  const resized = await src.resized(g.newW, g.newH);
  const tensor = new Float32Array(3 * g.inputW * g.inputH).fill(114 / 255);
  const k = 1 / 255;
  writeChw(resized, g.newW, g.newH, tensor, g.inputW, g.inputH, g.padX, g.padY, [k, k, k], [0, 0, 0]);
  return { tensor, dims: [1, 3, g.inputH, g.inputW], ...g };
}

const SAM_SIZE = 1024;
export const SAM_MEAN: readonly [number, number, number] = [123.675, 116.28, 103.53];
export const SAM_STD: readonly [number, number, number] = [58.395, 57.12, 57.375];

export interface SamPreprocessResult {
  /** [1, 3, 1024, 1024] float32, (v − mean) / std on the 0–255 scale, zero-padded bottom/right after normalizing. */
  tensor: Float32Array;
  dims: [1, 3, 1024, 1024];
  newW: number;
  newH: number;
  /** 1024 / max(w, h) */
  scale: number;
  origW: number;
  origH: number;
}

/** SAM1 ResizeLongestSide(1024): newW = int(w·s + 0.5), newH = int(h·s + 0.5) with s = 1024 / max(w, h). */
export function samResizeGeometry(width: number, height: number, target = SAM_SIZE): { newW: number; newH: number; scale: number } {
  const scale = target / Math.max(width, height);
  return { newW: Math.floor(width * scale + 0.5), newH: Math.floor(height * scale + 0.5), scale };
}

/** SAM1 image-encoder input: aspect-preserving resize of the long side to 1024, normalize, then zero-pad. */
export async function samPreprocess(rgb: Uint8Array, width: number, height: number): Promise<SamPreprocessResult> {
  return samPreprocessImage(sourceOf(rgb, width, height));
}

/** samPreprocess() of an ImageSource (resized in one pass from the encoded image when it is larger than 1024). */
export async function samPreprocessImage(src: ImageSource): Promise<SamPreprocessResult> {
  const { width, height } = src;
  const { newW, newH, scale } = samResizeGeometry(width, height);
  const resized = await src.resized(newW, newH);
  const tensor = new Float32Array(3 * SAM_SIZE * SAM_SIZE); // zeros = the padding, which comes after normalizing
  const s = [1 / SAM_STD[0], 1 / SAM_STD[1], 1 / SAM_STD[2]] as const;
  const o = [-SAM_MEAN[0] / SAM_STD[0], -SAM_MEAN[1] / SAM_STD[1], -SAM_MEAN[2] / SAM_STD[2]] as const;
  writeChw(resized, newW, newH, tensor, SAM_SIZE, SAM_SIZE, 0, 0, s, o);
  return { tensor, dims: [1, 3, SAM_SIZE, SAM_SIZE], newW, newH, scale, origW: width, origH: height };
}

export interface ClassifyPreprocessResult {
  /** [1, 3, size, size] float32, RGB /255 (Ultralytics classify: mean 0, std 1). */
  tensor: Float32Array;
  dims: [1, 3, number, number];
}

/** Ultralytics classify_transforms: resize the short side to size (torchvision Resize), centre-crop size², /255. */
export async function classifyPreprocess(rgb: Uint8Array, width: number, height: number, size: number): Promise<ClassifyPreprocessResult> {
  return classifyPreprocessImage(sourceOf(rgb, width, height), size);
}

/** classifyPreprocess() of an ImageSource (the short-side resize in one pass from the encoded image when it shrinks). */
export async function classifyPreprocessImage(src: ImageSource, size: number): Promise<ClassifyPreprocessResult> {
  const { width, height } = src;
  const [rw, rh] = width <= height ? [size, Math.trunc((size * height) / width)] : [Math.trunc((size * width) / height), size];
  const resized = await src.resized(rw, rh);
  const top = pyRound((rh - size) / 2);
  const left = pyRound((rw - size) / 2);
  const cropped = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const s = ((y + top) * rw + left) * 3;
    cropped.set(resized.subarray(s, s + size * 3), y * size * 3);
  }
  const tensor = new Float32Array(3 * size * size);
  const k = 1 / 255;
  writeChw(cropped, size, size, tensor, size, size, 0, 0, [k, k, k], [0, 0, 0]);
  return { tensor, dims: [1, 3, size, size] };
}

/** Image-to-image input at the original size: [1, 3, h, w] float32 RGB /255, written in one pass. */
export function imageToChw01(img: RgbImage): { tensor: Float32Array; dims: [1, 3, number, number] } {
  checkRgb(img.data, img.width, img.height);
  const tensor = new Float32Array(3 * img.width * img.height);
  const k = 1 / 255;
  writeChw(img.data, img.width, img.height, tensor, img.width, img.height, 0, 0, [k, k, k], [0, 0, 0]);
  return { tensor, dims: [1, 3, img.height, img.width] };
}

/** One [3, h, w] plane set of a [B, 3, h, w] 0..1 output back to interleaved RGB bytes (clamped, rounded). */
export function chw01ToRgb(data: Float32Array, batchIndex: number, width: number, height: number): Buffer {
  const plane = width * height;
  const base = batchIndex * 3 * plane;
  if (data.length < base + 3 * plane)
    throw new RangeError(`output holds ${data.length} values, image ${batchIndex} needs ${base + 3 * plane}`);
  const rgb = Buffer.allocUnsafe(3 * plane);
  for (let c = 0; c < 3; c++) {
    const src = base + c * plane;
    for (let p = 0, i = c; p < plane; p++, i += 3) {
      const v = Math.round(data[src + p]! * 255);
      rgb[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return rgb;
}
