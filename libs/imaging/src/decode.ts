import sharp from 'sharp';
import { decodeBmp, isBmp } from './bmp.js';

/** 8-bit RGB pixels, row-major HWC (index (y·width + x)·3 + channel). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Decodes any image sharp reads, and BMP (which libvips cannot read: decoded by decodeBmp, then handed to sharp as
 * raw pixels), into 8-bit sRGB HWC: EXIF orientation applied (`rotate()`), alpha removed (not composited),
 * grayscale/CMYK/16-bit converted. The result's width/height are those after orientation. Images of more than
 * maxPixels pixels are refused before their pixels are decoded (sharp's limitInputPixels; BmpError for BMP); the
 * default is sharp's own default limit, 0x3FFF².
 */
export async function decodeImage(input: Buffer | Uint8Array, maxPixels = 268402689): Promise<RgbImage> {
  if (!Number.isSafeInteger(maxPixels) || maxPixels <= 0) throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  const bmp = isBmp(input) ? decodeBmp(input, maxPixels) : null;
  const pipeline = bmp
    ? sharp(bmp.data, { raw: { width: bmp.width, height: bmp.height, channels: bmp.channels }, limitInputPixels: maxPixels })
    : sharp(input, { failOn: 'error', limitInputPixels: maxPixels });
  const { data, info } = await pipeline
    .rotate()
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`Decoded image has ${info.channels} channels, expected 3`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}
