import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';
import { decodeBmp, isBmp, readBmpInfo } from './bmp.js';

// libvips keeps up to 20 input files open in its operation cache (WebP, for one); uploads are inspected from temporary
// files that are removed right after, and an open descriptor would keep each deleted file's disk space in use.
sharp.cache({ files: 0 });

export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'bmp', 'tiff'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];
export const MIME_OF: Record<ImageFormat, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  bmp: 'image/bmp',
  tiff: 'image/tiff',
};

export interface InspectedImage {
  format: ImageFormat;
  mime: string;
  /** After EXIF orientation: the frame every result's coordinates refer to. */
  width: number;
  height: number;
  sha256: string;
}

/** Why an upload is not an image Aperture accepts; the message is the problem's detail. */
export class ImageRejectedError extends Error {
  override name = 'ImageRejectedError';
}

/** The sha256 of a file, streamed. */
async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The first bytes of a file (enough for the BMP signature and header size). */
async function fileHead(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Validates an upload by its content, never by its name or declared type: the format is what the bytes are; the
 * size is read from the header and refused above maxSide before any pixel is decoded (decompression bombs); then
 * the whole image is decoded once, so a truncated or corrupt file is refused here rather than failing in the worker.
 * The upload is a buffer or the path of a file: a file is read by libvips and hashed as a stream, never held whole
 * (except a BMP, which Aperture decodes itself).
 */
export async function inspectImage(input: Buffer | string, maxSide: number): Promise<InspectedImage> {
  if (typeof input === 'string') {
    const path = input;
    if (!isBmp(await fileHead(path, 64))) return inspectWithSharp(path, maxSide, () => fileSha256(path));
  }
  const buf = typeof input === 'string' ? await readFile(input) : input;
  const sha256 = createHash('sha256').update(buf).digest('hex');
  const tooBig = (w: number, h: number): ImageRejectedError =>
    new ImageRejectedError(`The image is ${w}×${h} px; at most ${maxSide} px per side is accepted (IMAGE_MAX_SIDE).`);
  if (isBmp(buf)) {
    let info;
    try {
      info = readBmpInfo(buf);
    } catch (e) {
      throw new ImageRejectedError(`The file is not a BMP Aperture can read: ${(e as Error).message}`);
    }
    if (info.width > maxSide || info.height > maxSide) throw tooBig(info.width, info.height);
    try {
      decodeBmp(buf, maxSide * maxSide);
    } catch (e) {
      throw new ImageRejectedError(`The file is not a BMP Aperture can read: ${(e as Error).message}`);
    }
    return { format: 'bmp', mime: MIME_OF.bmp, width: info.width, height: info.height, sha256 };
  }
  return inspectWithSharp(buf, maxSide, () => Promise.resolve(sha256));
}

/** The checks of every format libvips reads, on a buffer or a file; the hash is taken once the image passed. */
async function inspectWithSharp(buf: Buffer | string, maxSide: number, hash: () => Promise<string>): Promise<InspectedImage> {
  const tooBig = (w: number, h: number): ImageRejectedError =>
    new ImageRejectedError(`The image is ${w}×${h} px; at most ${maxSide} px per side is accepted (IMAGE_MAX_SIDE).`);
  let meta: Metadata;
  try {
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new ImageRejectedError(`The file is not an image Aperture can read (${cleanVipsMessage(e)}); send JPEG, PNG, WebP, BMP or TIFF.`);
  }
  const raw: string | undefined = meta.format;
  const format = raw === 'jpg' ? 'jpeg' : raw;
  if (!format || !(IMAGE_FORMATS as readonly string[]).includes(format)) {
    throw new ImageRejectedError(`Unsupported image format ${format ?? 'unknown'}: send JPEG, PNG, WebP, BMP or TIFF.`);
  }
  if (!meta.width || !meta.height) throw new ImageRejectedError('The image has no width or height.');
  if (meta.width > maxSide || meta.height > maxSide) throw tooBig(meta.width, meta.height);
  try {
    // Reads the whole stream, so truncated data fails here. To an eighth of the size: JPEG and WebP then decode at that
    // scale while still parsing every byte (about 1/8 of a full decode's time; stats() took five times a full decode).
    await sharp(buf, { failOn: 'truncated', limitInputPixels: maxSide * maxSide })
      .resize(Math.max(1, Math.ceil(meta.width / 8)), Math.max(1, Math.ceil(meta.height / 8)), { fit: 'fill', kernel: 'nearest' })
      .raw()
      .toBuffer();
  } catch (e) {
    throw new ImageRejectedError(`The ${format.toUpperCase()} file is damaged or truncated (${cleanVipsMessage(e)}).`);
  }
  const swap = (meta.orientation ?? 1) >= 5;
  return {
    format: format as ImageFormat,
    mime: MIME_OF[format as ImageFormat],
    width: swap ? meta.height : meta.width,
    height: swap ? meta.width : meta.height,
    sha256: await hash(),
  };
}

/** libvips messages end with a newline and sometimes name internal buffers; keep the first line. */
function cleanVipsMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (
    m
      .split('\n')[0]!
      .replace(/^Input (buffer|file) /, '')
      .trim() || 'unreadable'
  );
}
