import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp, { type Sharp } from 'sharp';
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

const FILE = 'primitives/warehouse-08-1280x720.jpg';
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

/**
 * Match rate of a relation over several fixture scenes: the share of the detections (score > 0.5) of the original,
 * moved by `map`, found in the changed file's detections with their class at box IoU ≥ 0.7, and of the changed
 * file's detections (score > 0.5) found among the original's, moved. Counts pooled over the scenes.
 */
const SCENES = [
  'primitives/office-00-800x600.jpg',
  'primitives/livingroom-04-600x800.jpg',
  'primitives/warehouse-08-1280x720.jpg',
  'primitives/greenhouse-10-600x800.jpg',
];
const MIN_MATCHED = 0.9;

interface Change {
  name: string;
  /** The changed file from the original's decoded pixels (RGB, w x h). */
  make: (raw: Sharp, w: number, h: number) => Promise<Buffer>;
  /** Original box -> box in the changed file. */
  map: (b: Box, w: number, h: number) => Box;
}

const jpeg = (s: Sharp): Promise<Buffer> => s.jpeg({ quality: 95 }).toBuffer();
const identity = (b: Box): Box => b;
const CHANGES: Change[] = [
  {
    // a quarter of each side of grey around it: the scene is 2/3 as large in the model input
    name: 'padded by 25% of each side',
    make: (raw, w, h) => {
      const [px, py] = [Math.round(w / 4), Math.round(h / 4)];
      return jpeg(raw.extend({ left: px, right: px, top: py, bottom: py, background: { r: 114, g: 114, b: 114 } }));
    },
    map: ([x1, y1, x2, y2], w, h) => {
      const [px, py] = [Math.round(w / 4), Math.round(h / 4)];
      return [x1 + px, y1 + py, x2 + px, y2 + py];
    },
  },
  {
    name: '0.5× scale',
    make: (raw, w, h) => jpeg(raw.resize(Math.round(w / 2), Math.round(h / 2), { kernel: 'lanczos3' })),
    map: (b, w, h) => [
      b[0] * (Math.round(w / 2) / w),
      b[1] * (Math.round(h / 2) / h),
      b[2] * (Math.round(w / 2) / w),
      b[3] * (Math.round(h / 2) / h),
    ],
  },
  {
    name: '2× scale',
    make: (raw, w, h) => jpeg(raw.resize(2 * w, 2 * h, { kernel: 'lanczos3' })),
    map: (b) => b.map((v) => 2 * v) as Box,
  },
  // Stored turned, the EXIF orientation turns it back: the oriented image is the original.
  ...(
    [
      [3, 180],
      [6, 270],
      [8, 90],
    ] as const
  ).map(([orientation, angle]): Change => ({
    name: `EXIF orientation ${orientation}`,
    make: (raw) => raw.rotate(angle).jpeg({ quality: 95 }).withMetadata({ orientation }).toBuffer(),
    map: identity,
  })),
  { name: 'RGBA PNG', make: (raw) => raw.ensureAlpha(0.5).png().toBuffer(), map: identity },
  { name: '16-bit PNG', make: (raw) => raw.toColourspace('rgb16').png().toBuffer(), map: identity },
];

function matched(from: DetectedObject[], to: DetectedObject[], map: (b: Box) => Box): { n: number; ok: number; misses: string[] } {
  const sure = from.filter((d) => d.score > 0.5);
  const misses: string[] = [];
  for (const d of sure) {
    const want = map(d.box);
    const best = Math.max(0, ...to.filter((x) => x.classId === d.classId).map((x) => iou(x.box, want)));
    if (best < 0.7) misses.push(`${d.label} ${d.score.toFixed(2)} (best IoU ${best.toFixed(2)})`);
  }
  return { n: sure.length, ok: sure.length - misses.length, misses };
}

describe('detector: detections survive padding, scale, EXIF orientation and re-encoding (several scenes)', () => {
  it(`matches ≥ ${MIN_MATCHED * 100}% of the detections at IoU ≥ 0.7 under every change`, async () => {
    const totals = new Map<string, { n: number; ok: number; misses: string[] }>(CHANGES.map((c) => [c.name, { n: 0, ok: 0, misses: [] }]));
    for (const file of SCENES) {
      const bytes = readFileSync(resolve(dir, 'fixtures', file));
      const full = await decodeImage(bytes);
      const { width: w, height: h } = full;
      const raw = sharp(full.data, { raw: { width: w, height: h, channels: 3 } });
      const ref = (await detection.detect('primitives-obb', await ImageSource.open(bytes), nms)).objects;
      expect(ref.filter((d) => d.score > 0.5).length, file).toBeGreaterThan(2);
      for (const c of CHANGES) {
        const changed = await c.make(raw.clone(), w, h);
        const got = (await detection.detect('primitives-obb', await ImageSource.open(changed), nms)).objects;
        const fwd = matched(ref, got, (b) => c.map(b, w, h));
        // back: the changed file's boxes against the original's, moved the same way
        const moved = ref.map((d) => ({ ...d, box: c.map(d.box, w, h) }));
        const back = matched(got, moved, identity);
        const t = totals.get(c.name)!;
        t.n += fwd.n + back.n;
        t.ok += fwd.ok + back.ok;
        t.misses.push(...fwd.misses.map((m) => `${file}: missing ${m}`), ...back.misses.map((m) => `${file}: extra ${m}`));
      }
    }
    for (const [name, t] of totals) {
      expect(t.n, name).toBeGreaterThan(20);
      expect(t.ok / t.n, `${name}: ${t.ok}/${t.n} matched; ${t.misses.join('; ')}`).toBeGreaterThanOrEqual(MIN_MATCHED);
    }
  });
});
