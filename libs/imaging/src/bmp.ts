/**
 * A BMP decoder, because libvips (sharp) does not read BMP. Supports the Windows BITMAPINFOHEADER (40 bytes) and
 * its successors (52, 56, V4 108, V5 124), OS/2 1.x BITMAPCOREHEADER (12) and OS/2 2.x headers (16 or 64 bytes,
 * fields past the header's end read as 0); 1/4/8-bit palettes, 16-bit (BI_RGB = 5-5-5, BI_BITFIELDS e.g. 5-6-5),
 * 24-bit, 32-bit (BI_RGB = BGRX, BI_BITFIELDS / BI_ALPHABITFIELDS); bottom-up and top-down rows (negative height);
 * RLE8 and RLE4 (bottom-up only, as the format requires). Pixels that RLE skips (delta or end-of-line codes) get
 * palette entry 0.
 *
 * Alpha: a 4th channel only when the file gives a non-zero alpha mask (BI_BITFIELDS with a 56-byte or V4/V5 header,
 * or BI_ALPHABITFIELDS) and some pixel's alpha is non-zero; otherwise 3 channels (many writers leave a zero alpha).
 *
 * Every malformed or truncated file raises BmpError with what is wrong; nothing reads outside the buffer, and the
 * pixel limit is checked from the header before anything is allocated.
 */

export interface BmpInfo {
  width: number;
  /** Rows (always positive; see topDown). */
  height: number;
  bitsPerPixel: number;
  /** 0 BI_RGB, 1 BI_RLE8, 2 BI_RLE4, 3 BI_BITFIELDS, 6 BI_ALPHABITFIELDS (only these are decoded). */
  compression: number;
  topDown: boolean;
}

export class BmpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BmpError';
  }
}

const FILE_HEADER = 14;
const CORE = 12;
const HEADER_SIZES = new Set([12, 16, 40, 52, 56, 64, 108, 124]);
const BI_RGB = 0;
const BI_RLE8 = 1;
const BI_RLE4 = 2;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;
const COMPRESSION_NAMES: Record<number, string> = { 4: 'BI_JPEG', 5: 'BI_PNG', 11: 'BI_CMYK', 12: 'BI_CMYKRLE8', 13: 'BI_CMYKRLE4' };

const u16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const u32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const i32 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);

/** 'BM', a known DIB header size, and room for that header's size field. */
export function isBmp(buf: Uint8Array): boolean {
  return buf.length >= FILE_HEADER + 4 && buf[0] === 0x42 && buf[1] === 0x4d && HEADER_SIZES.has(u32(buf, FILE_HEADER));
}

interface Channel {
  mask: number;
  shift: number;
  /** 2^bits − 1; 0 when the mask is 0 */
  max: number;
}

interface Header extends BmpInfo {
  headerSize: number;
  dataOffset: number;
  /** BGR(A) palette bytes start and entry size (bpp ≤ 8 only) */
  paletteStart: number;
  paletteEntry: 3 | 4;
  paletteCount: number;
  masks: { r: Channel; g: Channel; b: Channel; a: Channel } | null;
}

function channel(mask: number, bpp: number, name: string): Channel {
  if (mask === 0) return { mask: 0, shift: 0, max: 0 };
  if (bpp < 32 && mask >= 2 ** bpp) throw new BmpError(`${name} bit mask 0x${mask.toString(16)} has bits beyond ${bpp} bits per pixel`);
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (shift + bits < 32 && ((mask >>> (shift + bits)) & 1) === 1) bits++;
  if (shift + bits < 32 && mask >>> (shift + bits) !== 0) throw new BmpError(`${name} bit mask 0x${mask.toString(16)} is not contiguous`);
  return { mask, shift, max: 2 ** bits - 1 };
}

function parseHeader(buf: Uint8Array): Header {
  if (buf.length < FILE_HEADER + 4) throw new BmpError(`Truncated BMP: ${buf.length} bytes, the file header and DIB header size need 18`);
  if (buf[0] !== 0x42 || buf[1] !== 0x4d) throw new BmpError('Not a BMP file: it does not start with "BM"');
  const dataOffset = u32(buf, 10);
  const hs = u32(buf, FILE_HEADER);
  if (!HEADER_SIZES.has(hs)) throw new BmpError(`Unsupported BMP DIB header size ${hs} (supported: ${[...HEADER_SIZES].join(', ')})`);
  if (buf.length < FILE_HEADER + hs)
    throw new BmpError(`Truncated BMP: the ${hs}-byte DIB header needs ${FILE_HEADER + hs} bytes, the file has ${buf.length}`);
  const h = FILE_HEADER;
  let width: number;
  let rawHeight: number;
  let bpp: number;
  let compression = 0;
  let clrUsed = 0;
  if (hs === CORE) {
    width = u16(buf, h + 4);
    rawHeight = u16(buf, h + 6);
    bpp = u16(buf, h + 10);
  } else {
    // OS/2 2.x headers may stop anywhere after 16 bytes; the missing fields are 0.
    const field = (off: number): number => (off + 4 <= hs ? u32(buf, h + off) : 0);
    width = i32(buf, h + 4);
    rawHeight = i32(buf, h + 8);
    bpp = u16(buf, h + 14);
    compression = field(16);
    clrUsed = field(32);
  }
  if (width <= 0) throw new BmpError(`Invalid BMP width ${width}`);
  if (rawHeight === 0) throw new BmpError('Invalid BMP height 0');
  const topDown = rawHeight < 0;
  const height = Math.abs(rawHeight);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) throw new BmpError(`Unsupported BMP bit depth ${bpp}`);
  if (hs === CORE && bpp > 24) throw new BmpError(`Invalid bit depth ${bpp} in an OS/2 core header`);
  if (hs === 64 && (compression === 3 || compression === 4)) {
    throw new BmpError(`Unsupported OS/2 BMP compression ${compression === 3 ? 'Huffman 1D' : 'RLE24'}`);
  }
  switch (compression) {
    case BI_RGB:
      break;
    case BI_RLE8:
    case BI_RLE4:
      if (bpp !== (compression === BI_RLE8 ? 8 : 4))
        throw new BmpError(
          `BMP ${compression === BI_RLE8 ? 'RLE8' : 'RLE4'} needs ${compression === BI_RLE8 ? 8 : 4} bits per pixel, ` +
            `the header says ${bpp}`,
        );
      if (topDown) throw new BmpError('Invalid BMP: RLE-compressed bitmaps cannot be top-down');
      break;
    case BI_BITFIELDS:
    case BI_ALPHABITFIELDS:
      if (bpp !== 16 && bpp !== 32) throw new BmpError(`BMP bit fields need 16 or 32 bits per pixel, the header says ${bpp}`);
      break;
    default:
      throw new BmpError(
        `Unsupported BMP compression ${compression}${COMPRESSION_NAMES[compression] ? ` (${COMPRESSION_NAMES[compression]})` : ''}`,
      );
  }

  let headersEnd = FILE_HEADER + hs;
  let masks: Header['masks'] = null;
  if (compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) {
    let mo: number; // where R, G, B(, A) masks are
    let withAlpha: boolean;
    if (hs >= 52) {
      mo = h + 40;
      withAlpha = hs >= 56;
    } else {
      mo = headersEnd;
      withAlpha = compression === BI_ALPHABITFIELDS;
      headersEnd += withAlpha ? 16 : 12;
      if (buf.length < headersEnd)
        throw new BmpError(`Truncated BMP: the bit masks after the header need ${headersEnd} bytes, the file has ${buf.length}`);
    }
    masks = {
      r: channel(u32(buf, mo), bpp, 'Red'),
      g: channel(u32(buf, mo + 4), bpp, 'Green'),
      b: channel(u32(buf, mo + 8), bpp, 'Blue'),
      a: channel(withAlpha ? u32(buf, mo + 12) : 0, bpp, 'Alpha'),
    };
  } else if (bpp === 16) {
    masks = { r: channel(0x7c00, 16, 'Red'), g: channel(0x03e0, 16, 'Green'), b: channel(0x001f, 16, 'Blue'), a: channel(0, 16, 'Alpha') };
  }

  if (dataOffset < headersEnd)
    throw new BmpError(`Invalid BMP pixel data offset ${dataOffset}: inside the headers (which end at ${headersEnd})`);
  if (dataOffset >= buf.length)
    throw new BmpError(`Truncated BMP: pixel data offset ${dataOffset} is at or past the end of the file (${buf.length} bytes)`);

  const paletteEntry: 3 | 4 = hs === CORE ? 3 : 4;
  let paletteCount = 0;
  if (bpp <= 8) {
    const full = 2 ** bpp;
    const declared = clrUsed === 0 || clrUsed > full ? full : clrUsed;
    const room = Math.floor((dataOffset - headersEnd) / paletteEntry); // a palette may be shorter than declared
    paletteCount = Math.min(declared, room);
    if (paletteCount < 1)
      throw new BmpError(`Invalid BMP: a ${bpp}-bit image needs a palette, there is no room for one before the pixel data`);
  }
  return {
    width,
    height,
    bitsPerPixel: bpp,
    compression,
    topDown,
    headerSize: hs,
    dataOffset,
    paletteStart: headersEnd,
    paletteEntry,
    paletteCount,
    masks,
  };
}

/** The header fields that matter before decoding (size, depth, compression, row order); throws BmpError if malformed. */
export function readBmpInfo(buf: Uint8Array): BmpInfo {
  const { width, height, bitsPerPixel, compression, topDown } = parseHeader(buf);
  return { width, height, bitsPerPixel, compression, topDown };
}

/** Palette indices → RGB bytes; an index past the palette is an error. */
function applyPalette(idx: Uint8Array, buf: Uint8Array, hd: Header, out: Buffer): void {
  const pal = new Uint8Array(hd.paletteCount * 3);
  for (let i = 0; i < hd.paletteCount; i++) {
    const o = hd.paletteStart + i * hd.paletteEntry;
    pal[i * 3] = buf[o + 2]!;
    pal[i * 3 + 1] = buf[o + 1]!;
    pal[i * 3 + 2] = buf[o]!;
  }
  for (let i = 0, o = 0; i < idx.length; i++, o += 3) {
    const k = idx[i]!;
    if (k >= hd.paletteCount)
      throw new BmpError(
        `Invalid BMP: pixel ${i % hd.width}, ${Math.floor(i / hd.width)} uses palette entry ${k}, the palette has ${hd.paletteCount}`,
      );
    out[o] = pal[k * 3]!;
    out[o + 1] = pal[k * 3 + 1]!;
    out[o + 2] = pal[k * 3 + 2]!;
  }
}

/** RLE8 / RLE4 into palette indices, rows top-down. */
function decodeRle(buf: Uint8Array, hd: Header): Uint8Array {
  const { width: w, height: h } = hd;
  const rle4 = hd.compression === BI_RLE4;
  const idx = new Uint8Array(w * h);
  const end = buf.length;
  let p = hd.dataOffset;
  let x = 0;
  let y = 0; // from the bottom
  const where = (): string => `at byte ${p} (row ${y} from the bottom, column ${x})`;
  const row = (): number => {
    if (y >= h) throw new BmpError(`Invalid BMP RLE data: pixels past the last row ${where()}`);
    return (h - 1 - y) * w;
  };
  for (;;) {
    if (p + 2 > end) {
      if (y >= h) break; // every row done; a missing end-of-bitmap marker is harmless
      throw new BmpError(`Truncated BMP RLE data: ends ${where()} without an end-of-bitmap marker`);
    }
    const count = buf[p]!;
    const value = buf[p + 1]!;
    p += 2;
    if (count > 0) {
      if (x + count > w) throw new BmpError(`Invalid BMP RLE data: a run of ${count} pixels overflows the ${w}-pixel row ${where()}`);
      const r = row();
      if (rle4) {
        const hi = value >> 4;
        const lo = value & 15;
        for (let k = 0; k < count; k++) idx[r + x + k] = k & 1 ? lo : hi;
      } else {
        idx.fill(value, r + x, r + x + count);
      }
      x += count;
    } else if (value === 0) {
      x = 0;
      y++;
    } else if (value === 1) {
      break;
    } else if (value === 2) {
      if (p + 2 > end) throw new BmpError(`Truncated BMP RLE data: a delta code without its offsets ${where()}`);
      x += buf[p]!;
      y += buf[p + 1]!;
      p += 2;
      if (x > w || y > h || (y === h && x > 0)) throw new BmpError(`Invalid BMP RLE data: a delta moves outside the image ${where()}`);
    } else {
      const n = value;
      const bytes = rle4 ? (n + 1) >> 1 : n;
      const padded = bytes + (bytes & 1);
      if (p + padded > end) throw new BmpError(`Truncated BMP RLE data: an absolute run of ${n} pixels needs ${padded} bytes ${where()}`);
      if (x + n > w) throw new BmpError(`Invalid BMP RLE data: an absolute run of ${n} pixels overflows the ${w}-pixel row ${where()}`);
      const r = row();
      for (let k = 0; k < n; k++) idx[r + x + k] = rle4 ? (k & 1 ? buf[p + (k >> 1)]! & 15 : buf[p + (k >> 1)]! >> 4) : buf[p + k]!;
      x += n;
      p += padded;
    }
  }
  return idx;
}

/**
 * Decodes a BMP to 8-bit RGB (or RGBA, see above) rows top-down. Refuses (BmpError) images of more than maxPixels
 * pixels before allocating anything for them.
 */
export function decodeBmp(buf: Uint8Array, maxPixels: number): { data: Buffer; width: number; height: number; channels: 3 | 4 } {
  const hd = parseHeader(buf);
  const { width: w, height: h, bitsPerPixel: bpp } = hd;
  if (!(maxPixels > 0)) throw new RangeError(`maxPixels must be positive, got ${maxPixels}`);
  if (w * h > maxPixels) throw new BmpError(`BMP of ${w}×${h} = ${w * h} pixels exceeds the limit of ${maxPixels}`);

  if (hd.compression === BI_RLE8 || hd.compression === BI_RLE4) {
    const data = Buffer.allocUnsafe(w * h * 3);
    applyPalette(decodeRle(buf, hd), buf, hd, data);
    return { data, width: w, height: h, channels: 3 };
  }

  const stride = Math.floor((bpp * w + 31) / 32) * 4;
  const needed = stride * (h - 1) + Math.ceil((bpp * w) / 8); // the last row's padding may be missing
  if (hd.dataOffset + needed > buf.length) {
    throw new BmpError(
      `Truncated BMP pixel data: ${w}×${h} at ${bpp} bits needs ${needed} bytes from offset ${hd.dataOffset}, the file has ` +
        `${buf.length - hd.dataOffset}`,
    );
  }
  const rowStart = (y: number): number => hd.dataOffset + (hd.topDown ? y : h - 1 - y) * stride;

  if (bpp <= 8) {
    const idx = new Uint8Array(w * h);
    const perByte = 8 / bpp;
    const m = (1 << bpp) - 1;
    for (let y = 0; y < h; y++) {
      const s = rowStart(y);
      const o = y * w;
      if (bpp === 8) {
        idx.set(buf.subarray(s, s + w), o);
        continue;
      }
      for (let x = 0; x < w; x++) {
        const byte = buf[s + Math.floor(x / perByte)]!;
        idx[o + x] = (byte >> (8 - bpp * ((x % perByte) + 1))) & m;
      }
    }
    const data = Buffer.allocUnsafe(w * h * 3);
    applyPalette(idx, buf, hd, data);
    return { data, width: w, height: h, channels: 3 };
  }

  if (bpp === 24 || (bpp === 32 && hd.compression === BI_RGB)) {
    const data = Buffer.allocUnsafe(w * h * 3);
    const step = bpp / 8;
    for (let y = 0; y < h; y++) {
      let s = rowStart(y);
      let o = y * w * 3;
      for (let x = 0; x < w; x++, s += step, o += 3) {
        data[o] = buf[s + 2]!;
        data[o + 1] = buf[s + 1]!;
        data[o + 2] = buf[s]!;
      }
    }
    return { data, width: w, height: h, channels: 3 };
  }

  // 16 bits (5-5-5 or bit fields) and 32-bit bit fields
  const { r, g, b, a } = hd.masks!;
  const withAlpha = a.max > 0;
  const ch = withAlpha ? 4 : 3;
  const data = Buffer.allocUnsafe(w * h * ch);
  const scale = (c: Channel, v: number): number => (c.max === 0 ? 0 : Math.round((((v & c.mask) >>> c.shift) * 255) / c.max));
  let anyAlpha = false;
  for (let y = 0; y < h; y++) {
    let s = rowStart(y);
    let o = y * w * ch;
    for (let x = 0; x < w; x++, o += ch) {
      let v: number;
      if (bpp === 16) {
        v = u16(buf, s);
        s += 2;
      } else {
        v = u32(buf, s);
        s += 4;
      }
      data[o] = scale(r, v);
      data[o + 1] = scale(g, v);
      data[o + 2] = scale(b, v);
      if (withAlpha) {
        const av = scale(a, v);
        data[o + 3] = av;
        if (av !== 0) anyAlpha = true;
      }
    }
  }
  if (!withAlpha || anyAlpha) return { data, width: w, height: h, channels: ch };
  // An alpha mask but every alpha 0: the writer did not use alpha; drop it.
  const rgb = Buffer.allocUnsafe(w * h * 3);
  for (let i = 0, o = 0; o < rgb.length; i += 4, o += 3) {
    rgb[o] = data[i]!;
    rgb[o + 1] = data[i + 1]!;
    rgb[o + 2] = data[i + 2]!;
  }
  return { data: rgb, width: w, height: h, channels: 3 };
}
