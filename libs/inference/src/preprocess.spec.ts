import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { unscaleXyxy } from './postprocess/yolo-detect.js';
import {
  SAM_MEAN,
  SAM_STD,
  chw01ToRgb,
  classifyPreprocess,
  imageToChw01,
  letterbox,
  letterboxGeometry,
  pyRound,
  samPreprocess,
  samResizeGeometry,
} from './preprocess.js';
import { decodeImage } from '@aperture/imaging/decode.js';
import { bmp24 } from '@test/support/images.js';

function solid(w: number, h: number, rgb: readonly [number, number, number]): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) d.set(rgb, i * 3);
  return d;
}

function fillRect(d: Uint8Array, w: number, x0: number, y0: number, x1: number, y1: number, rgb: readonly [number, number, number]): void {
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) d.set(rgb, (y * w + x) * 3);
}

/** Bounding box [x1, y1, x2, y2) of tensor channel-0 values > 0.5. */
function extent(t: Float32Array, w: number, h: number): [number, number, number, number] {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      if (t[y * w + x]! > 0.5) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
  return [x0, y0, x1 + 1, y1 + 1];
}

describe('pyRound', () => {
  it('rounds halves to even like Python 3', () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(pyRound)).toEqual([0, 2, 2, 0, 2, 3]);
  });
});

describe('letterbox (mistake 1: un-scaling)', () => {
  it('computes the Ultralytics geometry', () => {
    expect(letterboxGeometry(1280, 720, 640)).toMatchObject({ gain: 0.5, newW: 640, newH: 360, padX: 0, padY: 140 });
    expect(letterboxGeometry(720, 1280, 640)).toMatchObject({ gain: 0.5, newW: 360, newH: 640, padX: 140, padY: 0 });
    // dh = 106.5: top = round(106.4) = 106, bottom 107
    expect(letterboxGeometry(1000, 667, 640)).toMatchObject({ newW: 640, newH: 427, padX: 0, padY: 106 });
    // upscaling allowed; round(2.5) = 2 (Python's banker's rounding)
    expect(letterboxGeometry(1, 2, 5)).toMatchObject({ gain: 2.5, newW: 2, newH: 5, padX: 1, padY: 0 });
    expect(letterboxGeometry(640, 480, [480, 640])).toMatchObject({ gain: 1, padX: 0, padY: 0 });
  });

  for (const [w, h, rect] of [
    [1280, 720, [200, 100, 600, 500]],
    [720, 1280, [100, 200, 500, 900]],
    [1000, 667, [101, 57, 733, 611]],
  ] as const) {
    it(`maps a rectangle drawn in ${w}×${h} back within 1 px`, async () => {
      const img = solid(w, h, [0, 0, 0]);
      fillRect(img, w, rect[0], rect[1], rect[2], rect[3], [255, 255, 255]);
      const lb = await letterbox(img, w, h, 640);
      expect(lb.dims).toEqual([1, 3, 640, 640]);
      expect(lb.tensor.length).toBe(3 * 640 * 640);
      // padding is 114 grey in every channel
      if (lb.padY > 0) for (let c = 0; c < 3; c++) expect(lb.tensor[c * 640 * 640 + 5]).toBeCloseTo(114 / 255, 6);
      if (lb.padX > 0) for (let c = 0; c < 3; c++) expect(lb.tensor[c * 640 * 640 + 320 * 640 + 2]).toBeCloseTo(114 / 255, 6);
      const e = extent(lb.tensor, 640, 640);
      const back = unscaleXyxy(e[0], e[1], e[2], e[3], lb);
      for (let k = 0; k < 4; k++) expect(Math.abs(back[k]! - rect[k]!)).toBeLessThanOrEqual(1);
    });
  }
});

describe('decodeImage + tensors (mistake 5: channel order, scale, alpha, EXIF)', () => {
  it('a pure red image gives channel 0 = 1.0 and channels 1, 2 = 0 (RGB, /255, CHW)', async () => {
    const png = await sharp(solid(64, 48, [255, 0, 0]), { raw: { width: 64, height: 48, channels: 3 } })
      .png()
      .toBuffer();
    const img = await decodeImage(png);
    expect([img.width, img.height, img.data.length]).toEqual([64, 48, 64 * 48 * 3]);
    const lb = await letterbox(img.data, img.width, img.height, 64);
    const plane = 64 * 64;
    const centre = 32 * 64 + 32;
    expect(lb.tensor[centre]).toBe(1);
    expect(lb.tensor[plane + centre]).toBe(0);
    expect(lb.tensor[2 * plane + centre]).toBe(0);
  });

  it('drops the alpha of an RGBA PNG without compositing', async () => {
    const rgba = new Uint8Array(8 * 4 * 4);
    for (let i = 0; i < 32; i++) rgba.set([10, 200, 30, i % 2 ? 0 : 128], i * 4);
    const png = await sharp(rgba, { raw: { width: 8, height: 4, channels: 4 } })
      .png()
      .toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(4);
    const img = await decodeImage(png);
    expect([img.width, img.height, img.data.length]).toEqual([8, 4, 96]);
    expect([...img.data.subarray(0, 6)]).toEqual([10, 200, 30, 10, 200, 30]);
  });

  it('reduces a 16-bit PNG to 8 bits', async () => {
    const px = new Uint16Array(4 * 2 * 3);
    for (let i = 0; i < 8; i++) px.set([65535, 32896, 0], i * 3);
    const png = await sharp(px, { raw: { width: 4, height: 2, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    expect((await sharp(png).metadata()).depth).toBe('ushort');
    const img = await decodeImage(png);
    expect(img.data.length).toBe(24);
    expect(img.data[0]).toBe(255);
    expect(Math.abs(img.data[1]! - 128)).toBeLessThanOrEqual(1);
    expect(img.data[2]).toBe(0);
  });

  it('expands grayscale (with alpha too) to three equal channels', async () => {
    const g = await sharp(new Uint8Array(6).fill(77), { raw: { width: 3, height: 2, channels: 1 } })
      .png()
      .toBuffer();
    const ga = await sharp(new Uint8Array(12).fill(77), { raw: { width: 3, height: 2, channels: 2 } })
      .png()
      .toBuffer();
    for (const buf of [g, ga]) {
      const img = await decodeImage(buf);
      expect(img.data.length).toBe(18);
      expect(Math.abs(img.data[0]! - 77)).toBeLessThanOrEqual(1);
      expect(img.data[0]).toBe(img.data[1]);
      expect(img.data[1]).toBe(img.data[2]);
    }
  });

  it('applies EXIF orientation 6 (rotate 90° clockwise): a 40×20 landscape decodes as 20×40', async () => {
    const raw = solid(40, 20, [0, 0, 255]);
    fillRect(raw, 40, 0, 0, 20, 20, [255, 0, 0]); // left half red
    const jpeg = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);
    const img = await decodeImage(jpeg);
    expect([img.width, img.height]).toEqual([20, 40]);
    const at = (x: number, y: number): number[] => [...img.data.subarray((y * 20 + x) * 3, (y * 20 + x) * 3 + 3)];
    // rotated clockwise, the left (red) half is now on top
    expect(at(10, 5)[0]).toBeGreaterThan(200);
    expect(at(10, 5)[2]).toBeLessThan(60);
    expect(at(10, 35)[2]).toBeGreaterThan(200);
    expect(at(10, 35)[0]).toBeLessThan(60);
  });

  it('decodes a BMP (which libvips cannot read) to the same RGB as the PNG of the same pixels, and applies maxPixels', async () => {
    const w = 7; // odd: BMP rows are padded to 4 bytes
    const h = 5;
    const raw = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) raw.set([(i * 37) & 255, (i * 91 + 7) & 255, 255 - i], i * 3);
    const bmp = bmp24(Buffer.from(raw), w, h);
    const png = await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer();
    const fromPng = await decodeImage(png);
    const fromBmp = await decodeImage(bmp);
    expect([fromBmp.width, fromBmp.height]).toEqual([w, h]);
    expect([...fromBmp.data]).toEqual([...fromPng.data]);
    expect([...fromBmp.data]).toEqual([...raw]);
    // as a Uint8Array too
    expect([...(await decodeImage(new Uint8Array(bmp))).data]).toEqual([...raw]);
    // the pixel limit: BmpError before decoding a BMP, sharp's limit for the rest
    await expect(decodeImage(bmp, w * h - 1)).rejects.toThrow(/exceeds the limit of 34/);
    await expect(decodeImage(png, w * h - 1)).rejects.toThrow(/pixel limit/);
    expect((await decodeImage(bmp, w * h)).width).toBe(w);
    await expect(decodeImage(bmp, 0)).rejects.toThrow(RangeError);
  });
});

describe('samPreprocess (mistake 9)', () => {
  it('keeps the aspect (long side 1024, int(x·s + 0.5)) and pads with zeros after normalizing', async () => {
    expect(samResizeGeometry(1000, 333)).toEqual({ newW: 1024, newH: 341, scale: 1.024 });
    for (const [w, h] of [
      [800, 600],
      [600, 800],
    ] as const) {
      const rgb: [number, number, number] = [200, 100, 50];
      const r = await samPreprocess(solid(w, h, rgb), w, h);
      const [nw, nh] = w > h ? [1024, 768] : [768, 1024];
      expect([r.newW, r.newH, r.scale]).toEqual([nw, nh, 1024 / 800]);
      expect(r.dims).toEqual([1, 3, 1024, 1024]);
      const plane = 1024 * 1024;
      for (let c = 0; c < 3; c++) {
        const expected = (rgb[c]! - SAM_MEAN[c]!) / SAM_STD[c]!;
        expect(r.tensor[c * plane + 0]).toBeCloseTo(expected, 4); // top-left inside the image
        expect(r.tensor[c * plane + (nh - 1) * 1024 + nw - 1]).toBeCloseTo(expected, 4); // bottom-right of the image
        expect(r.tensor[c * plane + 1023 * 1024 + 1023]).toBe(0); // padding: exactly 0, not −mean/std
        if (nh < 1024) expect(r.tensor[c * plane + nh * 1024]).toBe(0);
        if (nw < 1024) expect(r.tensor[c * plane + nw]).toBe(0);
      }
    }
  });
});

/** Same formula as pattern() in test-fixtures/make_fixtures.py: gradients plus a 40 px checkerboard. */
function samPattern(w: number, h: number): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      d[i] = Math.floor((x * 255) / (w - 1));
      d[i + 1] = Math.floor((y * 255) / (h - 1));
      d[i + 2] = (Math.floor(x / 40) + Math.floor(y / 40)) % 2 === 1 ? 230 : 20;
    }
  return d;
}

describe('samPreprocess vs PIL BILINEAR (segment-anything apply_image)', () => {
  const golden = JSON.parse(readFileSync(new URL('../test-fixtures/sam-resize-golden.json', import.meta.url), 'utf8')) as {
    cases: { width: number; height: number; newW: number; newH: number; samples: [number, number, number, number, number][] }[];
  };
  for (const c of golden.cases) {
    it(`${c.width}×${c.height}: same resized size, pixels close to PIL's`, async () => {
      const r = await samPreprocess(samPattern(c.width, c.height), c.width, c.height);
      expect([r.newW, r.newH]).toEqual([c.newW, c.newH]);
      const plane = 1024 * 1024;
      let sum = 0;
      let n = 0;
      let flatMax = 0;
      for (const [x, y, ...rgb] of c.samples) {
        for (let ch = 0; ch < 3; ch++) {
          const v = r.tensor[ch * plane + y * 1024 + x]! * SAM_STD[ch]! + SAM_MEAN[ch]!;
          const diff = Math.abs(v - rgb[ch]!);
          sum += diff;
          n++;
          // away from the checkerboard edges (channel 2) both are smooth gradients
          if (ch < 2) flatMax = Math.max(flatMax, diff);
        }
      }
      expect(sum / n).toBeLessThan(0.5); // measured: 0.08 (upscale), 0.000002 (downscale)
      expect(flatMax).toBeLessThanOrEqual(1.5);
    });
  }
});

describe('classifyPreprocess', () => {
  it('resizes the short side and centre-crops, /255', async () => {
    const img = solid(200, 100, [0, 255, 0]);
    fillRect(img, 200, 0, 0, 40, 100, [255, 0, 0]); // left 20 % red: cropped away
    const r = await classifyPreprocess(img, 200, 100, 64);
    expect(r.dims).toEqual([1, 3, 64, 64]);
    const plane = 64 * 64;
    let maxRed = 0;
    for (let i = 0; i < plane; i++) maxRed = Math.max(maxRed, r.tensor[i]!);
    expect(maxRed).toBe(0);
    expect(r.tensor[plane + 32 * 64 + 32]).toBe(1);
  });
});

describe('image-to-image tensors', () => {
  it('writes CHW /255 at the original size and converts a batch entry back to RGB bytes, clamping', () => {
    const w = 5;
    const h = 3;
    const data = solid(w, h, [10, 128, 250]);
    fillRect(data, w, 4, 2, 5, 3, [255, 0, 1]);
    const { tensor, dims } = imageToChw01({ data, width: w, height: h });
    expect(dims).toEqual([1, 3, h, w]);
    const plane = w * h;
    expect(tensor[0]).toBeCloseTo(10 / 255, 6);
    expect(tensor[plane]).toBeCloseTo(128 / 255, 6);
    expect(tensor[2 * plane + plane - 1]).toBeCloseTo(1 / 255, 6);
    // A batch of two: entry 0 is garbage, entry 1 is the input, with one value out of range on each side.
    const batch = new Float32Array(2 * 3 * plane).fill(0.5);
    batch.set(tensor, 3 * plane);
    batch[3 * plane] = -0.3;
    batch[3 * plane + plane] = 1.7;
    const rgb = chw01ToRgb(batch, 1, w, h);
    expect([...rgb.subarray(0, 3)]).toEqual([0, 255, 250]);
    expect([...rgb.subarray(3, 6)]).toEqual([10, 128, 250]);
    expect([...rgb.subarray(3 * (plane - 1))]).toEqual([255, 0, 1]);
    expect(() => chw01ToRgb(batch, 2, w, h)).toThrow(RangeError);
  });
});
