import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage, ImageSource } from '@aperture/imaging/decode.js';
import { SessionHost } from '@aperture/inference/session-host.js';
import { type DetectedObject, DetectionPipeline } from './detection.pipeline.js';
import { defaultModelsDir, loadManifest } from './manifest.js';
import { ModelRegistry } from './model-registry.js';
import { ModelRunner } from './model-runner.js';

/**
 * Metamorphic checks of the detector on files decoded in one pass (ImageSource: resized while decoding): a file
 * changed in a way whose effect on the boxes is known (EXIF-rotated storage, 2× scale, padding, RGBA, 16-bit) gives
 * the confident detections of the original, moved as the change says. A letterbox geometry that did not match the
 * one-pass pixels (a wrong gain, padding or orientation) moves the boxes and fails these.
 */
const dir = defaultModelsDir();
const host = new SessionHost({ poolSize: 1 });
const registry = new ModelRegistry(loadManifest(dir), host, { dir });
const detection = new DetectionPipeline(new ModelRunner(registry));
afterAll(async () => {
  await registry.close();
  await host.close();
});

const FILE = 'primitives/greenhouse-11-1280x720.jpg';
const nms = { conf: 0.25, iou: 0.7 };

type Box = [number, number, number, number];

function iou(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/**
 * The detections of a file decoded in one pass; they must be those of the same file decoded at full size and then
 * resized (the two differ by resampling only: each confident detection of either is in the other, IoU ≥ 0.85).
 */
async function detect(file: Buffer, what: string): Promise<DetectedObject[]> {
  const one = (await detection.detect('primitives-obb', await ImageSource.open(file), nms)).objects;
  const two = (await detection.detect('primitives-obb', await decodeImage(file), nms)).objects;
  for (const [a, b, dir] of [
    [one, two, 'one-pass in two-step'],
    [two, one, 'two-step in one-pass'],
  ] as const) {
    for (const d of a.filter((x) => x.score > 0.5)) {
      const best = Math.max(0, ...b.filter((x) => x.classId === d.classId).map((x) => iou(x.box, d.box)));
      expect(
        best,
        `${what}, ${dir}: ${d.label} ${d.score.toFixed(2)} at ${d.box.map((v) => v.toFixed(1)).join(', ')}`,
      ).toBeGreaterThanOrEqual(0.85);
    }
  }
  return one;
}

/**
 * The relation: every very confident detection of `ref` (the original), moved by `map`, is found in `got` with its
 * class (box IoU ≥ 0.8), and every very confident one of `got` is one of `ref`'s, moved. (Less confident ones, in
 * clusters of overlapping shapes, shift with any change of the input; the model, not the decoding, moves them.)
 */
function expectSame(got: DetectedObject[], ref: DetectedObject[], map: (b: Box) => Box, what: string): void {
  const confident = (ds: DetectedObject[]) => ds.filter((d) => d.score > 0.85);
  expect(confident(ref).length, what).toBeGreaterThan(2);
  for (const r of confident(ref)) {
    const want = map(r.box);
    const best = Math.max(0, ...got.filter((d) => d.classId === r.classId).map((d) => iou(d.box, want)));
    expect(best, `${what}: ${r.label} at ${want.map((v) => v.toFixed(1)).join(', ')}`).toBeGreaterThanOrEqual(0.8);
  }
  for (const d of confident(got)) {
    const best = Math.max(0, ...ref.filter((r) => r.classId === d.classId).map((r) => iou(d.box, map(r.box))));
    expect(best, `${what}: extra ${d.label} at ${d.box.map((v) => v.toFixed(1)).join(', ')}`).toBeGreaterThanOrEqual(0.8);
  }
}

describe('detector on one-pass decoded files: metamorphic relations', () => {
  it('as the two-step decode, and as the original under EXIF rotation, 2× scale, padding, RGBA and 16-bit', async () => {
    const bytes = readFileSync(resolve(dir, 'fixtures', FILE));
    const full = await decodeImage(bytes);
    const { width: w, height: h } = full;
    const raw = sharp(full.data, { raw: { width: w, height: h, channels: 3 } });
    const ref = await detect(bytes, 'original');
    const same = (b: Box): Box => b;

    // Stored rotated, EXIF orientation 6 (or 8) turns it back: the oriented image is the original.
    for (const [orientation, angle] of [
      [6, 270],
      [8, 90],
    ] as const) {
      const stored = await raw.clone().rotate(angle).jpeg({ quality: 95 }).withMetadata({ orientation }).toBuffer();
      expectSame(await detect(stored, `EXIF ${orientation}`), ref, same, `EXIF ${orientation}`);
    }

    const twice = await raw
      .clone()
      .resize(2 * w, 2 * h, { kernel: 'lanczos3' })
      .jpeg({ quality: 95 })
      .toBuffer();
    expectSame(await detect(twice, '2× scale'), ref, (b) => b.map((v) => 2 * v) as Box, '2× scale');

    // Grey bands above and below: the same scale in the model input (the width still decides it), the image moved.
    const [left, top] = [0, 96];
    const padded = await raw
      .clone()
      .extend({ left, top, right: 0, bottom: 200, background: { r: 114, g: 114, b: 114 } })
      .jpeg({ quality: 95 })
      .toBuffer();
    expectSame(await detect(padded, 'padded'), ref, ([x1, y1, x2, y2]) => [x1 + left, y1 + top, x2 + left, y2 + top], 'padded');

    const rgba = await raw.clone().ensureAlpha(0.5).png().toBuffer();
    expect((await sharp(rgba).metadata()).hasAlpha).toBe(true);
    expectSame(await detect(rgba, 'RGBA'), ref, same, 'RGBA');

    const png16 = await raw.clone().toColourspace('rgb16').png().toBuffer();
    expect((await sharp(png16).metadata()).depth).toBe('ushort');
    expectSame(await detect(png16, '16-bit'), ref, same, '16-bit');
  });
});
