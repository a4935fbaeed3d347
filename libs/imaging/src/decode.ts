import sharp from 'sharp';
import { decodeBmp, isBmp } from './bmp.js';

/** 8-bit RGB pixels, row-major HWC (index (y·width + x)·3 + channel). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * An input image that cannot be decoded (damaged, truncated, not an image, over the pixel limit): the message says so
 * in words for the job's owner. Retrying cannot help, so a job that meets one fails at once.
 */
export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

/** libvips' reason for refusing an input: the first line of its message, without the "Input buffer/file" prefix. */
export function cleanVipsMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (
    m
      .split('\n')[0]!
      .replace(/^Input (buffer|file) /, '')
      .trim() || 'unreadable'
  );
}

/** The failure of a decoding step as an ImageDecodeError (libvips' message: its first line). */
async function decoding<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    const why = cleanVipsMessage(e);
    throw new ImageDecodeError(`The image could not be decoded (${why}): the file is damaged or not an image Aperture can read.`);
  }
}

/** sharp's own default pixel limit, 0x3FFF². */
export const DEFAULT_MAX_PIXELS = 268402689;

function checkMaxPixels(maxPixels: number): void {
  if (!Number.isSafeInteger(maxPixels) || maxPixels <= 0) throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
}

const asBytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.length);

/**
 * Decodes any image sharp reads, and BMP (which libvips cannot read: decoded by decodeBmp, then handed to sharp as
 * raw pixels), into 8-bit sRGB HWC: EXIF orientation applied (`rotate()`), alpha removed (not composited),
 * grayscale/CMYK/16-bit converted. The result's width/height are those after orientation. Images of more than
 * maxPixels pixels are refused before their pixels are decoded (sharp's limitInputPixels; BmpError for BMP); the
 * default is sharp's own default limit, 0x3FFF².
 */
export async function decodeImage(input: Buffer | Uint8Array, maxPixels = DEFAULT_MAX_PIXELS): Promise<RgbImage> {
  checkMaxPixels(maxPixels);
  const bmp = isBmp(input) ? await decoding(() => Promise.resolve(decodeBmp(input, maxPixels))) : null;
  const pipeline = bmp
    ? sharp(bmp.data, { raw: { width: bmp.width, height: bmp.height, channels: bmp.channels }, limitInputPixels: maxPixels })
    : sharp(input, { failOn: 'error', limitInputPixels: maxPixels });
  const { data, info } = await decoding(() =>
    pipeline.rotate().removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }),
  );
  if (info.channels !== 3) throw new Error(`Decoded image has ${info.channels} channels, expected 3`);
  return { data: asBytes(data), width: info.width, height: info.height };
}

/** Bilinear resize of 8-bit HWC RGB to exactly newW×newH (sharp's 'linear' kernel); the same array when the size is unchanged. */
export async function resizeRgb(img: RgbImage, newW: number, newH: number): Promise<Uint8Array> {
  if (newW === img.width && newH === img.height) return img.data;
  const out = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(newW, newH, { kernel: 'linear', fit: 'fill' })
    .raw()
    .toBuffer();
  return asBytes(out);
}

/**
 * One input image of a job, as the models need it: its size after EXIF orientation (read from the header, no pixels
 * decoded), its pixels at full size (decoded once, on first use, then shared), and its pixels resized to a model's
 * input size.
 *
 * `resized(w, h)` of a smaller size is one sharp pipeline from the encoded bytes (decode, orient, resize, to 8-bit
 * sRGB), so libvips can shrink a JPEG while decoding it (shrink-on-load: the DCT decodes at ½, ¼ or ⅛ scale) and
 * never holds the full-size pixels. The output is exactly w×h, so geometry computed from `width`/`height` (the
 * letterbox's gain and padding, SAM's scale) holds exactly. The pixels differ from decode-then-resize only by
 * resampling (measured: a mean absolute difference under 1 level on a 1920×1080 photo at 320 px).
 * It decodes at full size and resizes that instead (exactly as decodeImage then resizeRgb) when:
 *  - the full-size pixels are already decoded (a job that needs them too decodes once),
 *  - the image is not larger than w×h in both axes (upscaling: the result is the same as before, pixel for pixel),
 *  - it has alpha (resizing in sharp premultiplies by alpha; the model inputs drop alpha without compositing),
 *  - it is a BMP (decodeBmp), or has several pages.
 */
export class ImageSource {
  private full: Promise<RgbImage> | null;

  private constructor(
    private readonly bytes: Buffer | Uint8Array | null,
    readonly width: number,
    readonly height: number,
    private readonly maxPixels: number,
    private readonly onePass: boolean,
    full: Promise<RgbImage> | null,
  ) {
    this.full = full;
  }

  /**
   * Reads the header of an encoded image (size and EXIF orientation). Images of more than maxPixels pixels are
   * refused here, as decodeImage refuses them. A BMP is decoded at once (decodeBmp reads it in one pass anyway).
   */
  static async open(input: Buffer | Uint8Array, maxPixels = DEFAULT_MAX_PIXELS): Promise<ImageSource> {
    checkMaxPixels(maxPixels);
    if (isBmp(input)) {
      const img = await decodeImage(input, maxPixels);
      return new ImageSource(null, img.width, img.height, maxPixels, false, Promise.resolve(img));
    }
    const meta = await decoding(() => sharp(input, { failOn: 'error', limitInputPixels: maxPixels }).metadata());
    const { width, height } = meta;
    if (!width || !height) throw new ImageDecodeError('The image has no width or height.');
    if (width * height > maxPixels) throw new ImageDecodeError(`The image is ${width}×${height} px: more than ${maxPixels} pixels.`);
    const swapped = (meta.orientation ?? 1) >= 5;
    const onePass = !meta.hasAlpha && (meta.pages ?? 1) === 1;
    return new ImageSource(input, swapped ? height : width, swapped ? width : height, maxPixels, onePass, null);
  }

  /** An image whose pixels are already decoded. */
  static fromRgb(img: RgbImage): ImageSource {
    return new ImageSource(null, img.width, img.height, DEFAULT_MAX_PIXELS, false, Promise.resolve(img));
  }

  /** Whether the full-size pixels have been asked for (then every resize starts from them). */
  get decoded(): boolean {
    return this.full !== null;
  }

  /** The full-size pixels (decodeImage), decoded on the first call only. */
  rgb(): Promise<RgbImage> {
    if (!this.full) {
      const bytes = this.bytes!;
      this.full = decodeImage(bytes, this.maxPixels);
      // A failed decode is not cached as the answer for good: the next call tries again.
      this.full.catch(() => (this.full = null));
    }
    return this.full;
  }

  /** The pixels resized to exactly newW×newH (bilinear, EXIF-oriented, alpha dropped, 8-bit sRGB). */
  async resized(newW: number, newH: number): Promise<Uint8Array> {
    if (!Number.isInteger(newW) || !Number.isInteger(newH) || newW <= 0 || newH <= 0) throw new RangeError(`Bad size ${newW}×${newH}`);
    if (this.full || !this.onePass || newW >= this.width || newH >= this.height) return resizeRgb(await this.rgb(), newW, newH);
    const { data, info } = await decoding(() =>
      sharp(this.bytes!, { failOn: 'error', limitInputPixels: this.maxPixels })
        .rotate()
        .resize(newW, newH, { kernel: 'linear', fit: 'fill' })
        .removeAlpha()
        .toColourspace('srgb')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true }),
    );
    if (info.channels !== 3 || info.width !== newW || info.height !== newH)
      throw new Error(`Decoded ${info.width}×${info.height}×${info.channels}, expected ${newW}×${newH}×3`);
    return asBytes(data);
  }
}

/** An input image of a pipeline: decoded pixels, or an ImageSource (resized from its file where that is cheaper). */
export type ImageInput = RgbImage | ImageSource;

/** The ImageSource of a pipeline's input. */
export const imageSource = (img: ImageInput): ImageSource => (img instanceof ImageSource ? img : ImageSource.fromRgb(img));
