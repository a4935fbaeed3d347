import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { rleEncode } from '@aperture/inference/mask.js';
import type { RgbImage } from '@aperture/imaging/decode.js';
import { analyzeFragments, type FragmentInput } from './fragments.js';
import {
  BALL_COLOUR,
  colourFor,
  OVERLAY_ALPHA,
  outputPngs,
  passingChartSvg,
  renderDetections,
  renderFragmentOverlay,
  renderLabelMask,
  renderPassingChart,
} from './render.js';

function solid(w: number, h: number, rgb: readonly number[]): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set(rgb, i * 3);
  return { data, width: w, height: h };
}

function maskDet(w: number, h: number, classId: number, score: number, inside: (x: number, y: number) => boolean): FragmentInput {
  const m = new Uint8Array(w * h);
  let x1 = w;
  let y1 = h;
  let x2 = 0;
  let y2 = 0;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      if (inside(x, y)) {
        m[y * w + x] = 1;
        x1 = Math.min(x1, x);
        y1 = Math.min(y1, y);
        x2 = Math.max(x2, x + 1);
        y2 = Math.max(y2, y + 1);
      }
  return { classId, score, box: [x1, y1, x2, y2], rle: rleEncode(m, w, h), area: m.reduce((a, b) => a + b, 0) };
}

/** Bit depth and colour type from a PNG's IHDR. */
function pngHeader(png: Buffer): { bitDepth: number; colourType: number } {
  expect(png.toString('latin1', 12, 16)).toBe('IHDR');
  return { bitDepth: png[24]!, colourType: png[25]! };
}

/** A 16-bit grey PNG's samples, without any colour conversion. */
async function grey16(png: Buffer): Promise<Uint16Array> {
  const { data, info } = await sharp(png).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(1);
  return new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
}

async function rawOf(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe('outputPngs', () => {
  it('encodes each image of a [B,3,h,w] 0..1 output as a PNG, in batch order, clamped and rounded', async () => {
    const w = 5;
    const h = 3;
    const plane = w * h;
    const data = new Float32Array(2 * 3 * plane);
    for (let i = 0; i < plane; i++) {
      data[i] = i / plane; // image 0: red ramp, green 0, blue 1
      data[2 * plane + i] = 1;
      data[3 * plane + i] = 1.5; // image 1: red clamped to 255, green 0.5, blue below 0
      data[4 * plane + i] = 0.5;
      data[5 * plane + i] = -0.2;
    }
    const pngs = await outputPngs(data, 2, w, h);
    expect(pngs).toHaveLength(2);
    const px = await Promise.all(pngs.map(async (p) => [...(await sharp(p).raw().toBuffer())]));
    expect(px[0]!.slice(0, 6)).toEqual([0, 0, 255, Math.round((1 / plane) * 255), 0, 255]);
    expect(px[1]!.slice(0, 3)).toEqual([255, 128, 0]);
  });
});

describe('colourFor', () => {
  it('is stable and gives distinct colours to neighbouring indices', () => {
    expect(colourFor(3)).toEqual(colourFor(3));
    const seen = new Set<string>();
    for (let i = 0; i < 32; i++) {
      const c = colourFor(i);
      for (const v of c) expect(Number.isInteger(v) && v >= 0 && v <= 255).toBe(true);
      seen.add(c.join(','));
    }
    expect(seen.size).toBe(32);
    // neighbours differ a lot (golden-ratio hue steps)
    for (let i = 1; i < 32; i++) {
      const [a, b] = [colourFor(i - 1), colourFor(i)];
      expect(Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) + Math.abs(a[2] - b[2])).toBeGreaterThan(60);
    }
    expect(() => colourFor(1.5)).toThrow(RangeError);
  });
});

describe('renderFragmentOverlay', () => {
  it('blends each mask in its colour, outlines it, circles the ball, leaves the background alone', async () => {
    const W = 60;
    const H = 40;
    const img = solid(W, H, [100, 100, 100]);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) if ((x - 45) ** 2 + (y - 20) ** 2 <= 64) img.data.set([210, 20, 25], (y * W + x) * 3);
    const ball = maskDet(W, H, 1, 0.9, (x, y) => (x - 45) ** 2 + (y - 20) ** 2 <= 64);
    const a1 = maskDet(W, H, 0, 0.95, (x, y) => x >= 5 && x < 17 && y >= 5 && y < 17);
    const a2 = maskDet(W, H, 0, 0.7, (x, y) => x >= 20 && x < 30 && y >= 22 && y < 36);
    const dets = [a1, ball, a2];
    const analysis = analyzeFragments(img, dets, { realRadius: 10, unit: 'mm', ballClassId: 1 });
    expect(analysis.ball?.method).toBe('red-pixels');
    const png = await renderFragmentOverlay(img, dets, analysis);
    const out = await rawOf(png);
    expect([out.width, out.height, out.channels]).toEqual([W, H, 3]);
    const at = (x: number, y: number): number[] => [...out.data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];
    const blend = (c: number[]): number[] => c.map((v) => Math.round(100 * (1 - OVERLAY_ALPHA) + v * OVERLAY_ALPHA));
    expect(at(10, 10)).toEqual(blend(colourFor(1))); // inside fragment 1
    expect(at(25, 30)).toEqual(blend(colourFor(2))); // inside fragment 2 (id 2: the ball is not counted)
    expect(at(5, 10)).toEqual(colourFor(1)); // its outline
    expect(at(16, 16)).toEqual(colourFor(1));
    expect(at(2, 2)).toEqual([100, 100, 100]); // background
    expect(at(40, 2)).toEqual([100, 100, 100]);
    expect(at(45 + 8, 20)).toEqual([...BALL_COLOUR]); // the ball's circle
    expect(at(45, 20)).toEqual([210, 20, 25]); // its inside untouched
    // the input is not modified
    expect([...img.data.subarray((10 * W + 10) * 3, (10 * W + 10) * 3 + 3)]).toEqual([100, 100, 100]);
  });

  it('refuses detections that are not the analysed ones', async () => {
    const img = solid(10, 10, [0, 0, 0]);
    const d = maskDet(10, 10, 0, 0.5, (x, y) => x < 3 && y < 3);
    const analysis = analyzeFragments(img, [d], { realRadius: null, unit: 'px', ballClassId: 1 });
    await expect(renderFragmentOverlay(img, [], analysis)).rejects.toThrow(/do not match/);
  });
});

describe('renderLabelMask', () => {
  it('writes fragment ids into a 16-bit grayscale PNG, ball excluded, earlier fragments kept where masks overlap', async () => {
    const W = 30;
    const H = 20;
    const f1 = maskDet(W, H, 0, 0.9, (x, y) => x < 10 && y < 10);
    const ball = maskDet(W, H, 1, 0.99, (x, y) => x >= 20 && y >= 10);
    const f2 = maskDet(W, H, 0, 0.8, (x, y) => x >= 5 && x < 15 && y >= 5 && y < 15);
    const png = await renderLabelMask(W, H, [f1, ball, f2], 1);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels, meta.depth]).toEqual(['png', W, H, 1, 'ushort']);
    expect(pngHeader(png)).toEqual({ bitDepth: 16, colourType: 0 }); // 16-bit greyscale
    const px = await grey16(png);
    expect(px.length).toBe(W * H);
    const at = (x: number, y: number): number => px[y * W + x]!;
    expect(at(2, 2)).toBe(1);
    expect(at(7, 7)).toBe(1); // overlap: the earlier fragment keeps it
    expect(at(12, 12)).toBe(2);
    expect(at(25, 15)).toBe(0); // the ball
    expect(at(29, 0)).toBe(0);
  });

  it('holds ids above 255', async () => {
    const W = 20;
    const H = 20;
    const dets = Array.from({ length: 300 }, (_, k) => maskDet(W, H, 0, 0.5, (x, y) => y * W + x === k));
    const png = await renderLabelMask(W, H, dets, 1);
    const px = await grey16(png);
    expect(px[0]).toBe(1);
    expect(px[299]).toBe(300);
    expect(px[300]).toBe(0);
  });
});

describe('renderPassingChart', () => {
  it('renders 900×560 PNGs with and without fragments', async () => {
    const empty = analyzeFragments(solid(8, 8, [0, 0, 0]), [], { realRadius: null, unit: 'px', ballClassId: 1 });
    const img = solid(40, 40, [0, 0, 0]);
    const dets = [4, 9, 16, 25, 36].map((side, k) => maskDet(40, 40, 0, 0.9 - k / 10, (x, y) => x < side && y < side && (x + y) % 2 === 0));
    const some = analyzeFragments(img, dets, { realRadius: null, unit: 'px', ballClassId: 1 });
    for (const a of [empty, some]) {
      const png = await renderPassingChart(a);
      const meta = await sharp(png).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 900, 560]);
    }
    expect(passingChartSvg(empty)).toContain('No fragments detected');
    const svg = passingChartSvg(some);
    expect(svg).toContain(`D50 = ${Number(some.d50!.toFixed(2))} px`);
    expect(svg).toContain('log scale');
    expect(svg).toContain('Cumulative % passing');
  });

  it('escapes text and falls back to a linear axis for a zero diameter', () => {
    const img = solid(10, 10, [0, 0, 0]);
    const dets = [maskDet(10, 10, 0, 0.9, () => false), maskDet(10, 10, 0, 0.8, (x) => x < 5)];
    const a = { ...analyzeFragments(img, dets, { realRadius: null, unit: 'px', ballClassId: 1 }), warning: 'a <b> & "c"' };
    const svg = passingChartSvg(a);
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).not.toContain('<b>');
    expect(svg).not.toContain('log scale');
    expect(svg).not.toContain('NaN');
  });
});

describe('renderDetections', () => {
  it('draws rotated boxes with tags and leaves the rest of the image unchanged', async () => {
    const W = 240;
    const H = 180;
    const img = solid(W, H, [60, 70, 80]);
    const c = [120, 100];
    const ang = Math.PI / 6;
    const corners = [
      [-40, -20],
      [40, -20],
      [40, 20],
      [-40, 20],
    ].map(
      ([x, y]) => [c[0]! + x! * Math.cos(ang) - y! * Math.sin(ang), c[1]! + x! * Math.sin(ang) + y! * Math.cos(ang)] as [number, number],
    );
    const png = await renderDetections(img, [{ label: 'cone', score: 0.934, corners }], 'png');
    const out = await rawOf(png);
    expect([out.width, out.height, out.channels]).toEqual([W, H, 3]);
    const xs = corners.map((p) => p[0]);
    const ys = corners.map((p) => p[1]);
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const topX = corners.find((p) => p[1] === minY)![0];
    let changed = 0;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const i = (y * W + x) * 3;
        if (out.data[i] === 60 && out.data[i + 1] === 70 && out.data[i + 2] === 80) continue;
        changed++;
        // near the polygon, or in the tag above its top corner (≤ 28 px high, ≤ 120 px wide here)
        const nearBox = x >= minX - 4 && x <= maxX + 4 && y >= minY - 4 && y <= maxY + 4;
        const inTag = x >= topX - 4 && x <= topX + 120 && y >= minY - 32 && y <= minY + 2;
        expect(nearBox || inTag, `pixel (${x}, ${y}) changed`).toBe(true);
      }
    expect(changed).toBeGreaterThan(200);
    const centre = (100 * W + 120) * 3;
    expect([...out.data.subarray(centre, centre + 3)]).toEqual([60, 70, 80]); // the inside is not filled
    // JPEG by default, same size; a label keeps its colour
    const jpeg = await renderDetections(img, [{ label: 'cone', score: 0.5, corners }]);
    const meta = await sharp(jpeg).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', W, H]);
  });
});
