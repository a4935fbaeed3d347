import { describe, expect, it } from 'vitest';
import { BmpError, decodeBmp, isBmp, readBmpInfo } from './bmp.js';

// ---- a tiny BMP writer for the tests ----

interface BmpSpec {
  w: number;
  h: number;
  bpp: number;
  /** 12 (OS/2 core), 16 (OS/2 2.x short), 40, 52, 56, 108 (V4), 124 (V5) */
  headerSize?: number;
  topDown?: boolean;
  compression?: number;
  /** [r, g, b] entries */
  palette?: number[][];
  clrUsed?: number;
  /** R, G, B(, A) masks: inside the header for headerSize ≥ 52, after it for 40 */
  masks?: number[];
  pixelData: Uint8Array;
}

function bmpFile(s: BmpSpec): Uint8Array {
  const hs = s.headerSize ?? 40;
  const compression = s.compression ?? 0;
  const masksAfter = hs === 40 && s.masks ? s.masks.length * 4 : 0;
  const entry = hs === 12 ? 3 : 4;
  const palette = s.palette ?? [];
  const dataOffset = 14 + hs + masksAfter + palette.length * entry;
  const buf = new Uint8Array(dataOffset + s.pixelData.length);
  const dv = new DataView(buf.buffer);
  buf[0] = 0x42;
  buf[1] = 0x4d;
  dv.setUint32(2, buf.length, true);
  dv.setUint32(10, dataOffset, true);
  dv.setUint32(14, hs, true);
  if (hs === 12) {
    dv.setUint16(18, s.w, true);
    dv.setUint16(20, s.h, true);
    dv.setUint16(22, 1, true);
    dv.setUint16(24, s.bpp, true);
  } else {
    dv.setInt32(18, s.w, true);
    dv.setInt32(22, s.topDown ? -s.h : s.h, true);
    dv.setUint16(26, 1, true);
    dv.setUint16(28, s.bpp, true);
    if (hs >= 20) dv.setUint32(30, compression, true);
    if (hs >= 24) dv.setUint32(34, s.pixelData.length, true);
    if (hs >= 36) dv.setUint32(46, s.clrUsed ?? 0, true);
    if (s.masks) {
      const at = hs === 40 ? 14 + hs : 54;
      s.masks.forEach((m, i) => dv.setUint32(at + 4 * i, m >>> 0, true));
    }
  }
  let p = 14 + hs + masksAfter;
  for (const [r, g, b] of palette) {
    buf[p] = b!;
    buf[p + 1] = g!;
    buf[p + 2] = r!;
    p += entry;
  }
  buf.set(s.pixelData, dataOffset);
  return buf;
}

/** Rows padded to 4 bytes, bottom-up unless topDown; get(x, y) is the raw value (palette index, or the little-endian integer). */
function packRows(w: number, h: number, bpp: number, topDown: boolean, get: (x: number, y: number) => number): Uint8Array {
  const stride = Math.floor((bpp * w + 31) / 32) * 4;
  const out = new Uint8Array(stride * h);
  for (let y = 0; y < h; y++) {
    const row = (topDown ? y : h - 1 - y) * stride;
    for (let x = 0; x < w; x++) {
      const v = get(x, y);
      if (bpp < 8) {
        const bit = x * bpp;
        out[row + (bit >> 3)]! |= v << (8 - bpp - (bit & 7));
      } else {
        for (let k = 0; k < bpp / 8; k++) out[row + (x * bpp) / 8 + k] = (v >>> (8 * k)) & 255;
      }
    }
  }
  return out;
}

const W = 5; // odd: rows need padding at every depth
const H = 3;
/** The test picture: distinct colours. */
const colour = (x: number, y: number): [number, number, number] => [(x * 50 + 5) & 255, (y * 90 + 10) & 255, ((x + y) * 37 + 3) & 255];
const expectedRgb = (f: (x: number, y: number) => number[] = colour): number[] => {
  const out: number[] = [];
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out.push(...f(x, y));
  return out;
};
const rgb24 = (x: number, y: number): number => {
  const [r, g, b] = colour(x, y);
  return (r << 16) | (g << 8) | b;
};

function expectBmpError(f: () => unknown, message: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'should throw').toBeInstanceOf(BmpError);
  expect((err as Error).message).toMatch(message);
}

/** A view that throws on any read past its end, so out-of-bounds reads cannot hide as undefined → 0. */
function strict(buf: Uint8Array): Uint8Array {
  return new Proxy(buf, {
    get(target, prop) {
      if (typeof prop === 'string' && /^\d+$/.test(prop)) {
        const i = Number(prop);
        if (i >= target.length) throw new Error(`out-of-bounds read at ${i} of ${target.length}`);
        return target[i];
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const decode = (buf: Uint8Array, max = 1e6) => decodeBmp(strict(buf), max);

describe('isBmp / readBmpInfo', () => {
  it('recognizes BMPs by magic and header size only', () => {
    const f = bmpFile({ w: W, h: H, bpp: 24, pixelData: packRows(W, H, 24, false, rgb24) });
    expect(isBmp(f)).toBe(true);
    expect(isBmp(f.subarray(0, 17))).toBe(false);
    expect(isBmp(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...new Uint8Array(20)]))).toBe(false);
    const odd = f.slice();
    odd[14] = 41;
    expect(isBmp(odd)).toBe(false);
    expect(isBmp(new TextEncoder().encode('BM is not a bitmap, it is text'))).toBe(false);
    expect(readBmpInfo(f)).toEqual({ width: W, height: H, bitsPerPixel: 24, compression: 0, topDown: false });
    expect(readBmpInfo(bmpFile({ w: W, h: H, bpp: 24, topDown: true, pixelData: packRows(W, H, 24, true, rgb24) })).topDown).toBe(true);
  });

  it('reads huge dimensions from the header alone; decodeBmp refuses them before allocating', () => {
    const f = bmpFile({ w: 100000, h: 100000, bpp: 24, pixelData: new Uint8Array(16) });
    expect(f.length).toBe(70);
    expect(readBmpInfo(strict(f))).toEqual({ width: 100000, height: 100000, bitsPerPixel: 24, compression: 0, topDown: false });
    expectBmpError(() => decode(f, 268402689), /100000×100000 = 10000000000 pixels exceeds the limit of 268402689/);
    // the same for RLE, whose size is not bounded by the file's
    const rle = bmpFile({ w: 60000, h: 60000, bpp: 8, compression: 1, palette: [[0, 0, 0]], pixelData: new Uint8Array([0, 1]) });
    expectBmpError(() => decode(rle, 268402689), /exceeds the limit/);
    expectBmpError(() => decode(bmpFile({ w: 4, h: 4, bpp: 24, pixelData: new Uint8Array(48) }), 15), /16 pixels exceeds the limit of 15/);
  });
});

describe('decodeBmp: uncompressed depths', () => {
  it('24-bit, bottom-up and top-down, padded rows', () => {
    for (const topDown of [false, true]) {
      const img = decode(bmpFile({ w: W, h: H, bpp: 24, topDown, pixelData: packRows(W, H, 24, topDown, rgb24) }));
      expect([img.width, img.height, img.channels]).toEqual([W, H, 3]);
      expect([...img.data]).toEqual(expectedRgb());
    }
  });

  it('24-bit without the last row padding', () => {
    const data = packRows(W, H, 24, true, rgb24);
    const img = decode(bmpFile({ w: W, h: H, bpp: 24, topDown: true, pixelData: data.subarray(0, data.length - 1) }));
    expect([...img.data]).toEqual(expectedRgb());
  });

  it('32-bit BI_RGB: BGRX, the 4th byte ignored', () => {
    const img = decode(bmpFile({ w: W, h: H, bpp: 32, pixelData: packRows(W, H, 32, false, (x, y) => (0x7f << 24) | rgb24(x, y)) }));
    expect(img.channels).toBe(3);
    expect([...img.data]).toEqual(expectedRgb());
  });

  it('32-bit BI_BITFIELDS with V4/V5 and 56-byte headers: alpha when the mask is given and some alpha is non-zero', () => {
    const alpha = (x: number, y: number): number => (x + y * W) * 10;
    for (const headerSize of [56, 108, 124]) {
      const f = bmpFile({
        w: W,
        h: H,
        bpp: 32,
        headerSize,
        compression: 3,
        masks: [0xff0000, 0xff00, 0xff, 0xff000000],
        pixelData: packRows(W, H, 32, false, (x, y) => (alpha(x, y) << 24) | rgb24(x, y)),
      });
      const img = decode(f);
      expect(img.channels).toBe(4);
      expect([...img.data]).toEqual(expectedRgb((x, y) => [...colour(x, y), alpha(x, y)]));
      // every alpha 0: not used, 3 channels
      const f0 = bmpFile({
        w: W,
        h: H,
        bpp: 32,
        headerSize,
        compression: 3,
        masks: [0xff0000, 0xff00, 0xff, 0xff000000],
        pixelData: packRows(W, H, 32, false, rgb24),
      });
      const img0 = decode(f0);
      expect(img0.channels).toBe(3);
      expect([...img0.data]).toEqual(expectedRgb());
    }
  });

  it('32-bit bit fields after a 40-byte header (RGBX order), no alpha; BI_ALPHABITFIELDS with alpha', () => {
    const rgbx = (x: number, y: number): number => {
      const [r, g, b] = colour(x, y);
      return (b << 16) | (g << 8) | r;
    };
    const f = bmpFile({
      w: W,
      h: H,
      bpp: 32,
      compression: 3,
      masks: [0xff, 0xff00, 0xff0000],
      pixelData: packRows(W, H, 32, false, (x, y) => (200 << 24) | rgbx(x, y)),
    });
    const img = decode(f);
    expect(img.channels).toBe(3);
    expect([...img.data]).toEqual(expectedRgb());
    const fa = bmpFile({
      w: W,
      h: H,
      bpp: 32,
      compression: 6,
      masks: [0xff, 0xff00, 0xff0000, 0xff000000],
      pixelData: packRows(W, H, 32, false, (x, y) => (200 << 24) | rgbx(x, y)),
    });
    const ia = decode(fa);
    expect(ia.channels).toBe(4);
    expect([...ia.data]).toEqual(expectedRgb((x, y) => [...colour(x, y), 200]));
  });

  it('16-bit 5-5-5 (BI_RGB) and 5-6-5 (BI_BITFIELDS), scaled to 8 bits', () => {
    const c5 = (v: number): number => v >> 3;
    const c6 = (v: number): number => v >> 2;
    const up = (v: number, bits: number): number => Math.round((v * 255) / (2 ** bits - 1));
    const f555 = bmpFile({
      w: W,
      h: H,
      bpp: 16,
      pixelData: packRows(W, H, 16, false, (x, y) => {
        const [r, g, b] = colour(x, y);
        return (c5(r) << 10) | (c5(g) << 5) | c5(b) | 0x8000; // the top bit is unused
      }),
    });
    const i555 = decode(f555);
    expect(i555.channels).toBe(3);
    expect([...i555.data]).toEqual(expectedRgb((x, y) => colour(x, y).map((v) => up(c5(v), 5))));
    const f565 = bmpFile({
      w: W,
      h: H,
      bpp: 16,
      compression: 3,
      masks: [0xf800, 0x07e0, 0x001f],
      topDown: true,
      pixelData: packRows(W, H, 16, true, (x, y) => {
        const [r, g, b] = colour(x, y);
        return (c5(r) << 11) | (c6(g) << 5) | c5(b);
      }),
    });
    const i565 = decode(f565);
    const [r, g, b] = colour(0, 0);
    expect([...i565.data.subarray(0, 3)]).toEqual([up(c5(r), 5), up(c6(g), 6), up(c5(b), 5)]);
    expect([...i565.data]).toEqual(
      expectedRgb((x, y) => {
        const [rr, gg, bb] = colour(x, y);
        return [up(c5(rr), 5), up(c6(gg), 6), up(c5(bb), 5)];
      }),
    );
  });

  it('8-, 4- and 1-bit palettes (short palettes via clrUsed), and the OS/2 core header', () => {
    const palette = [
      [0, 0, 0],
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [10, 20, 30],
    ];
    const index = (x: number, y: number): number => (x + 2 * y) % 5;
    const expected = expectedRgb((x, y) => palette[index(x, y)]!);
    for (const bpp of [8, 4]) {
      for (const topDown of [false, true]) {
        const img = decode(bmpFile({ w: W, h: H, bpp, topDown, palette, clrUsed: 5, pixelData: packRows(W, H, bpp, topDown, index) }));
        expect([img.width, img.height, img.channels]).toEqual([W, H, 3]);
        expect([...img.data]).toEqual(expected);
      }
    }
    const two = [
      [9, 9, 9],
      [250, 240, 230],
    ];
    const bit = (x: number, y: number): number => (x + y) & 1;
    const img1 = decode(bmpFile({ w: W, h: H, bpp: 1, palette: two, pixelData: packRows(W, H, 1, false, bit) }));
    expect([...img1.data]).toEqual(expectedRgb((x, y) => two[bit(x, y)]!));
    // OS/2 1.x: 12-byte header, 3-byte palette entries; and 24-bit
    const core8 = decode(bmpFile({ w: W, h: H, bpp: 8, headerSize: 12, palette, pixelData: packRows(W, H, 8, false, index) }));
    expect([...core8.data]).toEqual(expected);
    const core24 = decode(bmpFile({ w: W, h: H, bpp: 24, headerSize: 12, pixelData: packRows(W, H, 24, false, rgb24) }));
    expect([...core24.data]).toEqual(expectedRgb());
    // OS/2 2.x short header (16 bytes: no compression field)
    const os2 = decode(bmpFile({ w: W, h: H, bpp: 24, headerSize: 16, pixelData: packRows(W, H, 24, false, rgb24) }));
    expect([...os2.data]).toEqual(expectedRgb());
  });
});

describe('decodeBmp: RLE', () => {
  const palette = [
    [1, 1, 1],
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
  ];
  const rgbOf = (rows: number[][]): number[] => rows.flat().flatMap((i) => palette[i]!);

  it('RLE8: encoded runs, absolute runs with padding, end of line, end of bitmap', () => {
    // 5×2; the file lists the bottom row first
    const data = new Uint8Array([
      5,
      1,
      0,
      0, // bottom row: five 1s, EOL
      0,
      3,
      2,
      3,
      2,
      0, // top row: absolute 2 3 2 (+ 1 pad byte)
      2,
      1, // two 1s
      0,
      1, // end of bitmap
    ]);
    const img = decode(bmpFile({ w: 5, h: 2, bpp: 8, compression: 1, palette, pixelData: data }));
    expect([img.width, img.height, img.channels]).toEqual([5, 2, 3]);
    expect([...img.data]).toEqual(
      rgbOf([
        [2, 3, 2, 1, 1],
        [1, 1, 1, 1, 1],
      ]),
    );
  });

  it('RLE4: alternating nibbles, odd absolute runs, a delta (skipped pixels = entry 0)', () => {
    const data = new Uint8Array([
      5,
      0x12,
      0,
      0, // bottom row: 1 2 1 2 1, EOL
      0,
      2,
      2,
      0, // delta: 2 right, 0 up
      0,
      3,
      0x31,
      0x20, // absolute: 3 1 2 (2 bytes, already even)
      0,
      1, // end of bitmap (the top row's first two pixels were skipped)
    ]);
    const img = decode(bmpFile({ w: 5, h: 2, bpp: 4, compression: 2, palette, pixelData: data }));
    expect([...img.data]).toEqual(
      rgbOf([
        [0, 0, 3, 1, 2],
        [1, 2, 1, 2, 1],
      ]),
    );
  });

  it('RLE errors: overflowing runs, writes past the last row, truncation, top-down', () => {
    const f = (data: number[], extra: Partial<BmpSpec> = {}) =>
      bmpFile({ w: 4, h: 1, bpp: 8, compression: 1, palette, pixelData: new Uint8Array(data), ...extra });
    expectBmpError(() => decode(f([5, 1, 0, 1])), /run of 5 pixels overflows the 4-pixel row/);
    expectBmpError(() => decode(f([0, 5, 1, 1, 1, 1, 1, 0, 0, 1])), /absolute run of 5 pixels overflows/);
    expectBmpError(() => decode(f([2, 1, 0, 0, 2, 1, 0, 1])), /past the last row/);
    expectBmpError(() => decode(f([2, 1])), /ends .* without an end-of-bitmap marker/);
    expectBmpError(() => decode(f([0, 4, 1, 1])), /absolute run of 4 pixels needs 4 bytes/);
    expectBmpError(() => decode(f([0, 2, 9])), /delta code without its offsets/);
    expectBmpError(() => decode(f([0, 2, 9, 0, 0, 1])), /delta moves outside/);
    expectBmpError(() => decode(f([4, 7, 0, 1])), /palette entry 7, the palette has 4/);
    expectBmpError(() => decode(f([0, 1], { topDown: true })), /cannot be top-down/);
    expectBmpError(() => decode(f([0, 1], { bpp: 4 })), /RLE8 needs 8 bits per pixel/);
    // a complete image whose data simply ends is fine
    expect([...decode(f([4, 2, 0, 0])).data]).toEqual(rgbOf([[2, 2, 2, 2]]));
  });
});

describe('decodeBmp: malformed files', () => {
  const good = bmpFile({ w: W, h: H, bpp: 24, pixelData: packRows(W, H, 24, false, rgb24) });
  const patched = (off: number, bytes: number[]): Uint8Array => {
    const b = good.slice();
    b.set(bytes, off);
    return b;
  };
  const le32 = (v: number): number[] => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255];

  it('says what is wrong', () => {
    expectBmpError(() => decode(new Uint8Array(0)), /Truncated BMP: 0 bytes/);
    expectBmpError(() => decode(patched(0, [0x50, 0x4b])), /does not start with "BM"/);
    expectBmpError(() => decode(patched(14, le32(41))), /Unsupported BMP DIB header size 41/);
    expectBmpError(() => decode(good.subarray(0, 40)), /the 40-byte DIB header needs 54 bytes, the file has 40/);
    expectBmpError(() => decode(patched(18, le32(0))), /Invalid BMP width 0/);
    expectBmpError(() => decode(patched(18, le32(-5))), /Invalid BMP width -5/);
    expectBmpError(() => decode(patched(22, le32(0))), /Invalid BMP height 0/);
    expectBmpError(() => decode(patched(28, [2, 0])), /Unsupported BMP bit depth 2/);
    expectBmpError(() => decode(patched(30, le32(4))), /Unsupported BMP compression 4 \(BI_JPEG\)/);
    expectBmpError(() => decode(patched(30, le32(5))), /BI_PNG/);
    expectBmpError(() => decode(patched(30, le32(3))), /bit fields need 16 or 32 bits per pixel/);
    expectBmpError(() => decode(patched(10, le32(20))), /pixel data offset 20: inside the headers/);
    expectBmpError(() => decode(patched(10, le32(5000))), /pixel data offset 5000 is at or past the end/);
    expectBmpError(
      () => decode(good.subarray(0, good.length - 5)),
      /Truncated BMP pixel data: 5×3 at 24 bits needs 47 bytes from offset 54, the file has 43/,
    );
    expectBmpError(() => decode(patched(22, le32(-1000))), /Truncated BMP pixel data/);
    expectBmpError(
      () => decode(bmpFile({ w: W, h: H, bpp: 8, pixelData: packRows(W, H, 8, false, () => 0) })),
      /needs a palette, there is no room/,
    );
    expectBmpError(
      () => decode(bmpFile({ w: W, h: H, bpp: 8, palette: [[0, 0, 0]], pixelData: packRows(W, H, 8, false, (x) => x) })),
      /pixel 1, 0 uses palette entry 1, the palette has 1/,
    );
    expectBmpError(
      () =>
        decode(
          bmpFile({ w: W, h: H, bpp: 16, compression: 3, masks: [0xf0f0, 0x0f00, 0x000f], pixelData: packRows(W, H, 16, false, () => 0) }),
        ),
      /Red bit mask 0xf0f0 is not contiguous/,
    );
    expectBmpError(
      () =>
        decode(
          bmpFile({ w: W, h: H, bpp: 16, compression: 3, masks: [0xff0000, 0xff00, 0xff], pixelData: packRows(W, H, 16, false, () => 0) }),
        ),
      /bits beyond 16 bits per pixel/,
    );
    const masksCut = bmpFile({
      w: W,
      h: H,
      bpp: 32,
      compression: 3,
      masks: [0xff0000, 0xff00, 0xff],
      pixelData: new Uint8Array(0),
    }).subarray(0, 60);
    expectBmpError(() => decode(masksCut), /bit masks after the header need 66 bytes/);
    expectBmpError(
      () => decode(bmpFile({ w: W, h: H, bpp: 32, headerSize: 12, pixelData: new Uint8Array(60) })),
      /Invalid bit depth 32 in an OS\/2 core header/,
    );
  });

  it('never fails with anything but BmpError, nor reads out of bounds, on truncated or corrupted files', () => {
    const files = [
      good,
      bmpFile({
        w: W,
        h: H,
        bpp: 4,
        palette: [
          [1, 2, 3],
          [4, 5, 6],
          [7, 8, 9],
        ],
        pixelData: packRows(W, H, 4, false, (x) => x % 3),
      }),
      bmpFile({
        w: W,
        h: H,
        bpp: 16,
        compression: 3,
        masks: [0xf800, 0x07e0, 0x001f],
        headerSize: 124,
        pixelData: packRows(W, H, 16, false, (x, y) => x * 999 + y),
      }),
      bmpFile({
        w: 5,
        h: 2,
        bpp: 8,
        compression: 1,
        palette: [
          [0, 0, 0],
          [1, 1, 1],
          [2, 2, 2],
          [3, 3, 3],
        ],
        pixelData: new Uint8Array([5, 1, 0, 0, 0, 3, 2, 3, 2, 0, 2, 1, 0, 1]),
      }),
      bmpFile({
        w: 5,
        h: 2,
        bpp: 4,
        compression: 2,
        palette: [
          [0, 0, 0],
          [1, 1, 1],
          [2, 2, 2],
          [3, 3, 3],
        ],
        pixelData: new Uint8Array([5, 0x12, 0, 0, 0, 2, 2, 0, 0, 3, 0x31, 0x20, 0, 1]),
      }),
    ];
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let ok = 0;
    let refused = 0;
    const attempt = (b: Uint8Array): void => {
      try {
        const img = decode(b, 4096);
        expect(img.data.length).toBe(img.width * img.height * img.channels);
        ok++;
      } catch (e) {
        if (!(e instanceof BmpError)) throw e;
        refused++;
      }
    };
    for (const f of files) {
      for (let n = 0; n < f.length; n++) attempt(f.subarray(0, n));
      for (let k = 0; k < 400; k++) {
        const b = f.slice();
        for (let m = 0; m <= rand(3); m++) b[rand(b.length)] = rand(256);
        attempt(b);
      }
    }
    expect(() => strict(new Uint8Array(2))[5]).toThrow(/out-of-bounds/); // the guard itself works
    expect(strict(new Uint8Array([7, 8])).subarray(1)[0]).toBe(8);
    expect(refused).toBeGreaterThan(100);
    expect(ok).toBeGreaterThan(100);
  });
});
