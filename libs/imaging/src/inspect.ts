import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import sharp, { type Metadata } from 'sharp';
import { decodeBmp, isBmp, readBmpInfo } from './bmp.js';
import { cleanVipsMessage } from './decode.js';

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

/** What the header of an accepted image says. */
export interface ImageHeader {
  format: ImageFormat;
  mime: string;
  /** After EXIF orientation: the frame every result's coordinates refer to. */
  width: number;
  height: number;
}

export interface InspectedImage extends ImageHeader {
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

/** Files up to this size are read whole, once, and checked from memory (a file that is no image included). */
const READ_WHOLE_MAX = 32 * 1024 * 1024;

/**
 * The whole file, read once through one descriptor, when it is not larger than READ_WHOLE_MAX; else null (the caller
 * then reads it through libvips and a stream, never whole).
 */
async function readIfSmall(path: string): Promise<Buffer | null> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > READ_WHOLE_MAX) return null;
    const buf = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < buf.length) {
      const r = await fh.read(buf, at, buf.length - at, at);
      if (r.bytesRead === 0) break;
      at += r.bytesRead;
    }
    return buf.subarray(0, at);
  } finally {
    await fh.close();
  }
}

/**
 * Validates an upload by its content, never by its name or declared type: the format is what the bytes are; the
 * size is read from the header and refused above maxSide before any pixel is decoded (decompression bombs). A
 * truncated file is refused by a structural check that decodes nothing (JPEG: its markers up to the end-of-image
 * marker; PNG: its chunks up to IEND, the critical ones' CRCs; WebP: the RIFF size and chunks), so a damaged upload is
 * a 4xx here at the cost of one pass over the bytes. The pixels themselves are decoded by the worker that uses them
 * (a file that passes these checks but does not decode fails its job). TIFF, whose structure is not checked here,
 * is decoded at an eighth of its size; a BMP is decoded by Aperture's own reader.
 *
 * The upload is a buffer or the path of a file. A file up to READ_WHOLE_MAX is read once, whatever it holds; a larger
 * one is read by libvips and hashed as a stream, never held whole. `hash: false` skips the sha256 (the answer's sha256
 * is then empty).
 */
export async function inspectImage(input: Buffer | string, maxSide: number, options: { hash?: boolean } = {}): Promise<InspectedImage> {
  const hash = options.hash ?? true;
  let buf: Buffer;
  if (typeof input === 'string') {
    const path = input;
    const whole = await readIfSmall(path);
    if (!whole) return inspectWithSharp(path, maxSide, () => (hash ? fileSha256(path) : Promise.resolve('')));
    buf = whole;
  } else buf = input;
  const sha = (): string => (hash ? createHash('sha256').update(buf).digest('hex') : '');
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
    return { format: 'bmp', mime: MIME_OF.bmp, width: info.width, height: info.height, sha256: sha() };
  }
  return inspectWithSharp(buf, maxSide, () => Promise.resolve(sha()));
}

/**
 * The checks of every format libvips reads, on a buffer or a file; the hash is taken once the image passed. The
 * header is read by libvips; the structure of a JPEG, PNG or WebP held in memory is checked without decoding; any
 * other (TIFF, or a file too large to be held) is decoded at an eighth of its size, which reads the whole stream.
 */
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
  const damaged = (why: string): ImageRejectedError =>
    new ImageRejectedError(`The ${format.toUpperCase()} file is damaged or truncated (${why}).`);
  const check = Buffer.isBuffer(buf) ? STRUCTURE_CHECKS[format as ImageFormat] : undefined;
  if (check) {
    const problem = check(buf as Buffer);
    if (problem) throw damaged(problem);
  } else {
    try {
      // Reads the whole stream, so truncated data fails here. To an eighth of the size: JPEG and WebP then decode at that
      // scale while still parsing every byte (about 1/8 of a full decode's time; stats() took five times a full decode).
      await sharp(buf, { failOn: 'truncated', limitInputPixels: maxSide * maxSide })
        .resize(Math.max(1, Math.ceil(meta.width / 8)), Math.max(1, Math.ceil(meta.height / 8)), { fit: 'fill', kernel: 'nearest' })
        .raw()
        .toBuffer();
    } catch (e) {
      throw damaged(cleanVipsMessage(e));
    }
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

const ENDS_EARLY = 'the file ends early';

/**
 * A JPEG's markers from SOI to EOI: segments are skipped by their length (an EXIF thumbnail's own EOI is never
 * seen), entropy-coded data is scanned for the next marker (0xFF00 stuffing, RSTn and fill bytes skipped). Bytes
 * after EOI are allowed (cameras append data). Null when EOI is reached; else what is wrong.
 */
export function jpegStructureProblem(b: Buffer): string | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return 'no start-of-image marker';
  let i = 2;
  for (;;) {
    i = b.indexOf(0xff, i);
    if (i < 0 || i + 1 >= b.length) return `${ENDS_EARLY}, before its end-of-image marker`;
    const m = b[i + 1]!;
    if (m === 0xd9) return null;
    if (m === 0xff || m === 0x00 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      i += m === 0xff ? 1 : 2; // a fill byte, stuffed 0xFF, TEM or a restart marker: no length follows
      continue;
    }
    if (i + 4 > b.length) return `${ENDS_EARLY}, inside a marker`;
    const len = b.readUInt16BE(i + 2);
    if (len < 2) return `a marker segment of length ${len} at byte ${i}`;
    if (i + 2 + len > b.length) return `${ENDS_EARLY}, inside a marker segment`;
    i += 2 + len;
  }
}

const PNG_CRITICAL = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND']);

/** A PNG's chunks from IHDR to IEND, each whole, the critical ones with a correct CRC (as libspng checks them). */
export function pngStructureProblem(b: Buffer): string | null {
  let i = 8;
  while (i + 12 <= b.length) {
    const n = b.readUInt32BE(i);
    const type = b.toString('latin1', i + 4, i + 8);
    const end = i + 12 + n;
    if (end > b.length) return `${ENDS_EARLY}, inside its ${type} chunk`;
    if (PNG_CRITICAL.has(type) && crc32(b.subarray(i + 4, i + 8 + n)) !== b.readUInt32BE(i + 8 + n)) return `bad CRC in its ${type} chunk`;
    if (type === 'IEND') return null;
    i = end;
  }
  return `${ENDS_EARLY}, before its IEND chunk`;
}

/** A WebP's RIFF container: the declared size present, every chunk inside it whole. */
export function webpStructureProblem(b: Buffer): string | null {
  if (b.length < 12) return ENDS_EARLY;
  const riffEnd = 8 + b.readUInt32LE(4);
  if (riffEnd > b.length) return `${ENDS_EARLY}: ${b.length} of the ${riffEnd} bytes its header declares`;
  let i = 12;
  while (i + 8 <= riffEnd) {
    const n = b.readUInt32LE(i + 4);
    const end = i + 8 + n + (n & 1);
    if (i + 8 + n > riffEnd) return `${ENDS_EARLY}, inside its ${b.toString('latin1', i, i + 4).trim()} chunk`;
    i = end;
  }
  return i === 12 ? 'no image chunk' : null;
}

const STRUCTURE_CHECKS: Partial<Record<ImageFormat, (b: Buffer) => string | null>> = {
  jpeg: jpegStructureProblem,
  png: pngStructureProblem,
  webp: webpStructureProblem,
};
