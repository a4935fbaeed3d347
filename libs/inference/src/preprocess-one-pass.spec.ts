import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage, ImageSource } from '@aperture/imaging/decode.js';
import { bmp24 } from '@test/support/images.js';
import { unscaleXyxy } from './postprocess/yolo-detect.js';
import {
  classifyPreprocess,
  classifyPreprocessImage,
  letterbox,
  letterboxGeometry,
  letterboxImage,
  samPreprocess,
  samPreprocessImage,
} from './preprocess.js';

/**
 * The one-pass model input (ImageSource: decode and resize in one sharp pipeline, JPEG shrink-on-load) against the
 * two-step one (decodeImage at full size, then resize): the same geometry exactly, pixels close, and the same
 * handling of orientation, alpha, 16-bit, grayscale, CMYK, BMP and the pixel limit.
 */

/** A textured test picture: gradients, a 24 px checkerboard in blue, and a white rectangle (stored, unrotated coordinates). */
function picture(w: number, h: number, rect: readonly [number, number, number, number]): Buffer {
  const d = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const inRect = x >= rect[0] && x < rect[2] && y >= rect[1] && y < rect[3];
      d[i] = inRect ? 255 : Math.floor((x * 200) / w);
      d[i + 1] = inRect ? 255 : Math.floor((y * 200) / h);
      d[i + 2] = inRect ? 255 : (Math.floor(x / 24) + Math.floor(y / 24)) % 2 ? 180 : 20;
    }
  return d;
}

async function jpeg(w: number, h: number, orientation = 1): Promise<Buffer> {
  const rect = [Math.floor(w * 0.3), Math.floor(h * 0.35), Math.floor(w * 0.55), Math.floor(h * 0.8)] as const;
  const s = sharp(picture(w, h, rect), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 92 });
  return (orientation === 1 ? s : s.withMetadata({ orientation })).toBuffer();
}

/** Bounding box [x1, y1, x2, y2) of the letterboxed tensor's pixels with all three channels > 0.9 (the white rectangle). */
function whiteExtent(t: Float32Array, w: number, h: number): [number, number, number, number] {
  const plane = w * h;
  let [x0, y0, x1, y1] = [w, h, -1, -1];
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (t[i]! > 0.9 && t[i + plane]! > 0.9 && t[i + 2 * plane]! > 0.9) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
    }
  return [x0, y0, x1 + 1, y1 + 1];
}

function meanAbsDiff(a: Float32Array, b: Float32Array, k = 255): number {
  expect(a.length).toBe(b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return (s / a.length) * k;
}

describe('letterboxImage: one pass from the file, the geometry of the oriented original', () => {
  const cases: [w: number, h: number, orientation: number, size: number][] = [
    [1920, 1080, 1, 320],
    [1920, 1080, 1, 640],
    [1001, 667, 1, 320], // odd sizes: shrink-on-load does not divide them
    [777, 1333, 1, 320],
    [1920, 1080, 6, 320], // EXIF 6: stored landscape, a portrait image
    [1081, 1921, 8, 320], // EXIF 8, odd
    [1003, 499, 3, 320], // EXIF 3: 180°
    [4000, 250, 1, 320], // very wide
    [250, 4000, 1, 320], // very tall
    [641, 479, 1, 640], // just larger than the input
    [319, 321, 1, 320], // larger in one axis only: a slight shrink
  ];
  for (const [w, h, orientation, size] of cases) {
    it(`${w}×${h} EXIF ${orientation} → ${size}: letterboxGeometry exactly, pixels close to two-step`, async () => {
      const file = await jpeg(w, h, orientation);
      const src = await ImageSource.open(file);
      const [ow, oh] = orientation >= 5 ? [h, w] : [w, h];
      expect([src.width, src.height]).toEqual([ow, oh]);
      const one = await letterboxImage(src, size);
      expect(src.decoded).toBe(false); // never decoded at full size
      const g = letterboxGeometry(ow, oh, size);
      expect({ gain: one.gain, newW: one.newW, newH: one.newH, padX: one.padX, padY: one.padY }).toEqual({
        gain: g.gain,
        newW: g.newW,
        newH: g.newH,
        padX: g.padX,
        padY: g.padY,
      });
      expect([one.origW, one.origH, one.inputW, one.inputH]).toEqual([ow, oh, size, size]);
      const full = await decodeImage(file);
      const two = await letterbox(full.data, full.width, full.height, size);
      expect({ ...one, tensor: null }).toEqual({ ...two, tensor: null });
      // The padding is untouched 114 grey, the image lies where the geometry says.
      const plane = size * size;
      if (one.padY > 0) expect(one.tensor[(one.padY - 1) * size + size / 2]).toBeCloseTo(114 / 255, 6);
      if (one.padX > 0) expect(one.tensor[plane + (size / 2) * size + one.padX - 1]).toBeCloseTo(114 / 255, 6);
      // The white rectangle maps back to the same original pixels as through the two-step tensor (within 1 px of it,
      // in letterboxed pixels: a resampling difference at its edges).
      const e1 = whiteExtent(one.tensor, size, size);
      const e2 = whiteExtent(two.tensor, size, size);
      for (let k = 0; k < 4; k++) expect(Math.abs(e1[k]! - e2[k]!), `edge ${k}: ${e1.join(',')} vs ${e2.join(',')}`).toBeLessThanOrEqual(1);
      const back1 = unscaleXyxy(e1[0], e1[1], e1[2], e1[3], one);
      const back2 = unscaleXyxy(e2[0], e2[1], e2[2], e2[3], two);
      for (let k = 0; k < 4; k++) expect(Math.abs(back1[k]! - back2[k]!)).toBeLessThanOrEqual(1 / one.gain + 1e-9);
      expect(meanAbsDiff(one.tensor, two.tensor)).toBeLessThan(2);
    });
  }

  it('an image smaller than the input is upscaled exactly as before (the same tensor, bit for bit)', async () => {
    for (const [w, h, o] of [
      [200, 150, 1],
      [150, 200, 6],
      [320, 180, 1],
      [300, 319, 1],
    ] as const) {
      const file = await jpeg(w, h, o);
      const src = await ImageSource.open(file);
      const one = await letterboxImage(src, 320);
      const full = await decodeImage(file);
      const two = await letterbox(full.data, full.width, full.height, 320);
      expect({ ...one, tensor: null }).toEqual({ ...two, tensor: null });
      expect(meanAbsDiff(one.tensor, two.tensor), `${w}×${h}`).toBe(0);
    }
  });

  it('once the full-size pixels are decoded, resizes from them (one decode per job): the two-step tensor exactly', async () => {
    const file = await jpeg(1280, 720);
    const src = await ImageSource.open(file);
    const img = await src.rgb();
    expect(src.decoded).toBe(true);
    expect(await src.rgb()).toBe(img); // decoded once
    const one = await letterboxImage(src, 320);
    const two = await letterbox(img.data, img.width, img.height, 320);
    expect(meanAbsDiff(one.tensor, two.tensor)).toBe(0);
  });
});

describe('samPreprocessImage / classifyPreprocessImage from the file', () => {
  it('SAM ResizeLongestSide(1024): the same newW/newH/scale, pixels close, both orientations', async () => {
    for (const [w, h, o] of [
      [2400, 1350, 1],
      [2400, 1350, 6],
      [1500, 999, 1],
    ] as const) {
      const file = await jpeg(w, h, o);
      const src = await ImageSource.open(file);
      const one = await samPreprocessImage(src);
      expect(src.decoded).toBe(false);
      const full = await decodeImage(file);
      const two = await samPreprocess(full.data, full.width, full.height);
      expect([one.newW, one.newH, one.scale, one.origW, one.origH]).toEqual([two.newW, two.newH, two.scale, two.origW, two.origH]);
      // normalized values: one level is 1/std ≈ 1/58
      expect(meanAbsDiff(one.tensor, two.tensor, 58)).toBeLessThan(1.5);
    }
  });

  it('classify: short side to the size, centre crop, pixels close', async () => {
    const file = await jpeg(1600, 900, 8);
    const src = await ImageSource.open(file);
    const one = await classifyPreprocessImage(src, 224);
    expect(src.decoded).toBe(false);
    const full = await decodeImage(file);
    const two = await classifyPreprocess(full.data, full.width, full.height, 224);
    expect(one.dims).toEqual(two.dims);
    expect(meanAbsDiff(one.tensor, two.tensor)).toBeLessThan(2);
  });
});

describe('ImageSource: the same pixels handling as decodeImage', () => {
  const downTo = async (file: Buffer, w: number, h: number) => {
    const src = await ImageSource.open(file);
    const full = await decodeImage(file);
    const one = await src.resized(w, h);
    const ref = await (await ImageSource.open(file)).rgb().then(async (img) => {
      const s = ImageSource.fromRgb(img);
      return s.resized(w, h);
    });
    expect([full.width, full.height]).toEqual([src.width, src.height]);
    return { one, ref };
  };
  const mad = (a: Uint8Array, b: Uint8Array): number => {
    expect(a.length).toBe(b.length);
    let s = 0;
    for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
    return s / a.length;
  };

  it('RGBA: alpha dropped without compositing, as decodeImage (resized from the full-size pixels)', async () => {
    const w = 64;
    const h = 48;
    const rgba = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([10, 200, 30, i % 2 ? 0 : 128], i * 4);
    const png = await sharp(rgba, { raw: { width: w, height: h, channels: 4 } })
      .png()
      .toBuffer();
    const { one, ref } = await downTo(png, 32, 24);
    expect([...one.subarray(0, 6)]).toEqual([10, 200, 30, 10, 200, 30]);
    expect(mad(one, ref)).toBe(0);
  });

  it('16-bit, grayscale and CMYK inputs come out as close 8-bit sRGB', async () => {
    const w = 96;
    const h = 64;
    const px = new Uint16Array(w * h * 3);
    for (let i = 0; i < w * h; i++) px.set([65535, (i % w) * 600, 0], i * 3);
    const png16 = await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    const gray = await sharp(picture(w, h, [10, 10, 40, 40]), { raw: { width: w, height: h, channels: 3 } })
      .grayscale()
      .jpeg()
      .toBuffer();
    const cmyk = await sharp(picture(w, h, [10, 10, 40, 40]), { raw: { width: w, height: h, channels: 3 } })
      .toColourspace('cmyk')
      .jpeg()
      .toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    for (const [what, file] of [
      ['16-bit', png16],
      ['grayscale', gray],
      ['CMYK', cmyk],
    ] as const) {
      const { one, ref } = await downTo(file, 48, 32);
      expect(one.length, what).toBe(48 * 32 * 3);
      expect(mad(one, ref), what).toBeLessThan(2);
    }
  });

  it('BMP goes through decodeBmp; the pixel limit refuses before any pixel is decoded', async () => {
    const w = 9;
    const h = 7;
    const raw = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) raw.set([(i * 37) & 255, (i * 91) & 255, 255 - i], i * 3);
    const bmp = bmp24(raw, w, h);
    const src = await ImageSource.open(bmp);
    expect([src.width, src.height]).toEqual([w, h]);
    expect([...(await src.rgb()).data]).toEqual([...raw]);
    await expect(ImageSource.open(bmp, w * h - 1)).rejects.toThrow(/exceeds the limit/);
    const big = await jpeg(300, 200);
    await expect(ImageSource.open(big, 300 * 200 - 1)).rejects.toThrow(/pixel limit/);
    expect((await ImageSource.open(big, 300 * 200)).width).toBe(300);
    await expect(ImageSource.open(big, 0)).rejects.toThrow(RangeError);
    await expect(ImageSource.open(Buffer.from('not an image'))).rejects.toThrow();
  });
});
