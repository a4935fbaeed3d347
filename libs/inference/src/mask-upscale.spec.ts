import { describe, expect, it } from 'vitest';
import { samResizeGeometry } from './preprocess.js';
import { LowResUpscaler, samUpscaleTaps } from './mask-upscale.js';

/** Bilinear resize of an h×w plane to oh×ow, half-pixel centres clamped at the ends (F.interpolate, ONNX Resize). */
function resize(src: Float64Array, h: number, w: number, oh: number, ow: number): Float64Array {
  const out = new Float64Array(oh * ow);
  const at = (j: number, inLen: number, outLen: number): [number, number, number] => {
    const x = Math.max(0, ((j + 0.5) * inLen) / outLen - 0.5);
    const f = Math.floor(x);
    return [Math.min(f, inLen - 1), Math.min(f + 1, inLen - 1), x - f];
  };
  for (let y = 0; y < oh; y++) {
    const [y0, y1, wy] = at(y, h, oh);
    for (let x = 0; x < ow; x++) {
      const [x0, x1, wx] = at(x, w, ow);
      const top = src[y0 * w + x0]! * (1 - wx) + src[y0 * w + x1]! * wx;
      const bottom = src[y1 * w + x0]! * (1 - wx) + src[y1 * w + x1]! * wx;
      out[y * ow + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** SamOnnxModel.mask_postprocessing the slow way: upscale to 1024², crop to the resized image, resize to the original. */
function reference(low: Float32Array, size: number, w: number, h: number): Float64Array {
  const { newW, newH } = samResizeGeometry(w, h);
  const up = resize(Float64Array.from(low), size, size, 1024, 1024);
  const crop = new Float64Array(newW * newH);
  for (let y = 0; y < newH; y++) crop.set(up.subarray(y * 1024, y * 1024 + newW), y * newW);
  return resize(crop, newH, newW, h, w);
}

/** A 256² plane of logits: a disc of radius r (in low-res pixels) around (cx, cy), smooth edges, plus a ripple. */
function disc(cx: number, cy: number, r: number, size = 256): Float32Array {
  const p = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) p[y * size + x] = 3 * (r - Math.hypot(x - cx, y - cy)) + Math.sin(x * 0.7) * 0.4;
  }
  return p;
}

const SIZES: [number, number][] = [
  [1024, 768],
  [640, 480],
  [480, 640],
  [1920, 1080],
  [500, 500],
  [37, 53],
];

describe('samUpscaleTaps / LowResUpscaler', () => {
  it('taps: four per output sample, weights ≥ 0 summing to 1, indices inside the resized image', () => {
    const t = samUpscaleTaps(256, 768, 1080);
    expect(t.index.length).toBe(4 * 1080);
    for (let j = 0; j < 1080; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) {
        expect(t.weight[4 * j + k]).toBeGreaterThanOrEqual(0);
        // 768 of the 1024 frame = 192 of 256; the last rows interpolate low-res row 191 and 192
        expect(t.index[4 * j + k]).toBeLessThanOrEqual(192);
        s += t.weight[4 * j + k]!;
      }
      expect(s).toBeCloseTo(1, 6);
    }
    expect(() => samUpscaleTaps(256, 0, 10)).toThrow(/Invalid/);
  });

  it.each(SIZES)('upscale equals upscale-to-1024, crop, resize (%i×%i)', (w, h) => {
    const { newW, newH } = samResizeGeometry(w, h);
    const low = disc(90, 70, 30);
    const ref = reference(low, 256, w, h);
    const got = new LowResUpscaler(256, newW, newH, w, h).upscale(low);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it.each(SIZES)('scan: the stability counts, mask and box of the full upscale, skipping what is far below (%i×%i)', (w, h) => {
    const { newW, newH } = samResizeGeometry(w, h);
    const up = new LowResUpscaler(256, newW, newH, w, h);
    for (const low of [
      disc(90, 70, 30),
      disc(10, 150, 12),
      disc(200, 5, 40),
      new Float32Array(256 * 256).fill(-5),
      new Float32Array(256 * 256).fill(5),
    ]) {
      const full = up.upscale(low);
      let inter = 0;
      let union = 0;
      const mask = new Uint8Array(w * h);
      let box: number[] | null = null;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = full[y * w + x]!;
          if (v > -1) union++;
          if (v > 1) inter++;
          if (v > 0) {
            mask[y * w + x] = 1;
            box = box ? [Math.min(box[0]!, x), Math.min(box[1]!, y), Math.max(box[2]!, x), y] : [x, y, x, y];
          }
        }
      }
      const binary = new Uint8Array(w * h).fill(7);
      const s = up.scan(low, -1, 1, 0, binary);
      expect(s.inter).toBe(inter);
      expect(s.union).toBe(union);
      expect(s.box).toEqual(box);
      let differ = 0;
      for (let i = 0; i < mask.length; i++) if (binary[i] !== mask[i]) differ++;
      expect(differ).toBe(0);
    }
  });
});
