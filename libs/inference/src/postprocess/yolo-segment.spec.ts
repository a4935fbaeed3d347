import { describe, expect, it } from 'vitest';
import { maskArea, maskIoU, maskToBbox, rleDecode } from '../mask.js';
import { letterboxGeometry } from '../preprocess.js';
import { decodeYoloSegment } from './yolo-segment.js';
import type { OutputTensor } from './yolo-detect.js';

const NM = 32;
const IMG = 64; // letterbox size; protos are IMG/4
const MP = IMG / 4;

/** One anchor, class 0, mask coefficient 1 on prototype 0 only. */
function output0(box: [number, number, number, number], extraAnchors = 0): OutputTensor {
  const n = 1 + extraAnchors;
  const data = new Float32Array((4 + 1 + NM) * n);
  for (let k = 0; k < 4; k++) data[k * n] = box[k]!;
  data[4 * n] = 0.9;
  data[5 * n] = 1;
  return { data, dims: [1, 4 + 1 + NM, n] };
}

/** Prototype 0 = inside where predicate(x, y) holds (proto pixels), else outside; other prototypes are noise. */
function output1(inside: number, outside: number, predicate: (x: number, y: number) => boolean): OutputTensor {
  const data = new Float32Array(NM * MP * MP);
  for (let y = 0; y < MP; y++) for (let x = 0; x < MP; x++) data[y * MP + x] = predicate(x, y) ? inside : outside;
  for (let i = MP * MP; i < data.length; i++) data[i] = Math.sin(i) * 5; // ignored: their coefficients are 0
  return { data, dims: [1, NM, MP, MP] };
}

function rectMask(w: number, h: number, x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  return m;
}

function outsideBox(mask: Uint8Array, w: number, h: number, box: [number, number, number, number]): number {
  let n = 0;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) if (mask[y * w + x] && (x < box[0] || x >= box[2] || y < box[1] || y >= box[3])) n++;
  return n;
}

describe('decodeYoloSegment (mistake 6: crop to box, un-pad before resizing, threshold on logits)', () => {
  // Original 128×64 → letterbox 64: gain 0.5, newW 64, newH 32, padY 16.
  const lb = letterboxGeometry(128, 64, IMG);

  it('un-pads correctly: an object drawn in the protos maps to its original-pixel rectangle', () => {
    expect(lb).toMatchObject({ gain: 0.5, padX: 0, padY: 16, newW: 64, newH: 32 });
    // Object in the original: x ∈ [32, 96), y ∈ [16, 48) → letterbox x ∈ [16, 48), y ∈ [24, 40) → proto x ∈ [4, 12), y ∈ [6, 10).
    // Logits ±4: the upsampled zero crossing lies half-way between proto-cell centres, ≤ 1 original px off.
    const protos = output1(4, -4, (x, y) => x >= 4 && x < 12 && y >= 6 && y < 10);
    const [det] = decodeYoloSegment(output0([32, 32, 40, 24]), protos, lb);
    expect(det).toBeDefined();
    expect([det!.x1, det!.y1, det!.x2, det!.y2]).toEqual([24, 8, 104, 56]);
    const truth = rectMask(128, 64, 32, 16, 96, 48);
    expect(maskIoU(det!.mask!, truth)).toBeGreaterThan(0.93);
    expect(maskToBbox(det!.mask!, 128, 64)).toEqual([32, 16, 63, 31]); // exactly x ∈ [32, 96), y ∈ [16, 48)
    expect(det!.area).toBe(maskArea(det!.mask!));
    // the same mask shifted by the padding (un-padding forgotten) would barely overlap
    expect(maskIoU(det!.mask!, rectMask(128, 64, 32, 48, 96, 64))).toBeLessThan(0.1);
  });

  it('is zero outside its box, even when the prototypes are positive everywhere', () => {
    // Logit 0.3 everywhere (sigmoid 0.57): binarizing at logit > 0 keeps it, a "> 0.5 on logits" threshold would not.
    const protos = output1(0.3, 0.3, () => true);
    const box: [number, number, number, number] = [24, 8, 104, 56]; // original-frame box of the detection
    const [cropped] = decodeYoloSegment(output0([32, 32, 40, 24]), protos, lb);
    expect(outsideBox(cropped!.mask!, 128, 64, box)).toBe(0);
    expect(maskIoU(cropped!.mask!, rectMask(128, 64, ...box))).toBe(1);
    // Ultralytics' default path (no final crop): zeroed outside the proto-scaled box, so only a thin bilinear bleed remains
    const [loose] = decodeYoloSegment(output0([32, 32, 40, 24]), protos, lb, { cropToBox: false });
    const m = loose!.mask!;
    const cell = IMG / MP / lb.gain; // one proto cell in original pixels
    expect(outsideBox(m, 128, 64, [box[0] - cell, box[1] - cell, box[2] + cell, box[3] + cell])).toBe(0);
    expect(maskIoU(m, rectMask(128, 64, ...box))).toBeGreaterThan(0.7);
    expect(outsideBox(m, 128, 64, box)).toBeGreaterThan(0);
  });

  it('negative logits give an empty mask; RLE output matches the bitmap', () => {
    const neg = output1(-0.1, -0.1, () => true);
    expect(decodeYoloSegment(output0([32, 32, 40, 24]), neg, lb)[0]!.area).toBe(0);
    const protos = output1(1, -1, (x, y) => (x - 8) ** 2 + (y - 8) ** 2 < 9);
    const [bm] = decodeYoloSegment(output0([32, 32, 40, 24]), protos, lb);
    const [rl] = decodeYoloSegment(output0([32, 32, 40, 24]), protos, lb, { maskFormat: 'rle' });
    expect(rl!.mask).toBeUndefined();
    expect(rleDecode(rl!.rle!)).toEqual(bm!.mask);
    expect(rl!.area).toBe(bm!.area);
    expect(bm!.area).toBeGreaterThan(0);
  });

  it('checks the output shapes', () => {
    const bad: OutputTensor = { data: new Float32Array(10), dims: [1, 10] };
    expect(() => decodeYoloSegment(output0([32, 32, 40, 24]), bad, lb)).toThrow(/output1/);
  });
});
