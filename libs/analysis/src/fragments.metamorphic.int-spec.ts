import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { maskIoU, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { ImageSource } from '@aperture/imaging/decode.js';
import { SessionHost } from '@aperture/inference/session-host.js';
import { DetectionPipeline } from '@aperture/models/detection.pipeline.js';
import { defaultModelsDir, loadManifest } from '@aperture/models/manifest.js';
import { ModelRegistry } from '@aperture/models/model-registry.js';
import { ModelRunner } from '@aperture/models/model-runner.js';

/**
 * Metamorphic checks of fragments-seg through the fragments task's pipeline (ImageSource decoded with its EXIF
 * orientation, DetectionPipeline.segmentInstances: letterbox 320, conf 0.25, iou 0.7): the same scene padded by 25 %
 * per side, scaled by 0.5 and 2, or stored rotated with EXIF orientation 6 must give the same fragments. Each
 * transformed detection's mask is mapped back to the original frame (nearest sample); under each change at least 90 %
 * of the fragments found on the original images must be matched at mask IoU ≥ 0.7, counted over the fixtures as the
 * detector's metamorphic check counts over its scenes, and at least 80 % on each image (no ground truth needed: the
 * model must agree with itself). Each original must give at least 80 % as many fragments as the ground truth has, so
 * the check cannot pass on an image where the model finds nothing.
 */
interface Truth {
  file: string;
  width: number;
  height: number;
  fragments: { mask: Rle }[];
}

const dir = defaultModelsDir();
const truth = (JSON.parse(readFileSync(resolve(dir, 'fixtures/fragments/ground-truth.json'), 'utf8')) as { images: Truth[] }).images;
const host = new SessionHost({ poolSize: 1 });
const registry = new ModelRegistry(loadManifest(dir), host, { dir });
const detection = new DetectionPipeline(new ModelRunner(registry));
afterAll(async () => {
  await registry.close();
  await host.close();
});

/** Fragment masks (row-major, 0/1) of the image bytes, in the decoded (oriented) frame, as the fragments task gets them. */
async function fragmentMasks(bytes: Buffer): Promise<{ width: number; height: number; masks: Uint8Array[] }> {
  const img = await (await ImageSource.open(bytes)).rgb(); // decoded once at full size, as the worker's image jobs do
  const { detections } = await detection.segmentInstances('fragments-seg', img, { conf: 0.25, iou: 0.7 });
  return { width: img.width, height: img.height, masks: detections.filter((d) => d.classId === 0).map((d) => rleDecode(d.rle!)) };
}

/** Where original pixel (x, y) (its centre) lands in the transformed frame. */
type MapFn = (x: number, y: number) => [number, number];

interface Transform {
  name: string;
  apply: (png: Buffer, w: number, h: number) => Promise<Buffer>;
  map: (w: number, h: number) => MapFn;
}

const PAD = 0.25;
/** The share of the original images' fragments to be matched after each change, over the fixtures. */
const MIN_MATCHED = 0.9;
/** The least share of each image's fragments to be matched. */
const MIN_MATCHED_EACH = 0.8;
const transforms: Transform[] = [
  {
    name: 'padded by 25 % per side',
    apply: (png, w, h) => {
      const [px, py] = [Math.round(PAD * w), Math.round(PAD * h)];
      const background = { r: 40, g: 38, b: 34 };
      return sharp(png).extend({ top: py, bottom: py, left: px, right: px, background }).png().toBuffer();
    },
    map: (w, h) => (x, y) => [x + 0.5 + Math.round(PAD * w), y + 0.5 + Math.round(PAD * h)],
  },
  ...[0.5, 2].map((s): Transform => ({
    name: `scaled by ${s}`,
    apply: (png, w, h) =>
      sharp(png)
        .resize(Math.round(w * s), Math.round(h * s), { kernel: 'linear', fit: 'fill' })
        .png()
        .toBuffer(),
    map: () => (x, y) => [(x + 0.5) * s, (y + 0.5) * s],
  })),
  {
    // Stored pixels rotated 90° counter-clockwise, with orientation 6 (rotate 90° clockwise to display): the decoded
    // image is the original scene.
    name: 'stored rotated with EXIF orientation 6',
    apply: (png) => sharp(png).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer(),
    map: () => (x, y) => [x + 0.5, y + 0.5],
  },
];

function sampleBack(m: Uint8Array, tw: number, th: number, w: number, h: number, map: MapFn): Uint8Array {
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [tx, ty] = map(x, y);
      const X = Math.floor(tx);
      const Y = Math.floor(ty);
      if (X >= 0 && X < tw && Y >= 0 && Y < th && m[Y * tw + X]) out[y * w + x] = 1;
    }
  return out;
}

/** How many of the original's fragment masks are matched (IoU ≥ 0.7, one to one) by the transformed image's, mapped back. */
async function matchedAfter(t: Truth, tf: Transform): Promise<{ matched: number; of: number }> {
  const png = readFileSync(resolve(dir, 'fixtures', t.file));
  const original = (await fragmentMasks(png)).masks;
  expect(original.length, `${t.file}: fragments found on the original`).toBeGreaterThanOrEqual(Math.floor(0.8 * t.fragments.length));
  const bytes = await tf.apply(png, t.width, t.height);
  const got = await fragmentMasks(bytes);
  if (tf.name.includes('EXIF')) expect([got.width, got.height]).toEqual([t.width, t.height]);
  const map = tf.map(t.width, t.height);
  const back = got.masks.map((m) => sampleBack(m, got.width, got.height, t.width, t.height, map));
  const used = new Set<number>();
  let matched = 0;
  for (const tm of original) {
    let best = 0;
    let bi = -1;
    back.forEach((pm, j) => {
      if (used.has(j)) return;
      const v = maskIoU(tm, pm);
      if (v > best) [best, bi] = [v, j];
    });
    if (best >= 0.7) {
      used.add(bi);
      matched++;
    }
  }
  return { matched, of: original.length };
}

describe('fragments-seg: metamorphic (pad, scale, EXIF orientation)', () => {
  // Two fixtures keep it fast: the smallest and one in portrait.
  const fixtures = truth.filter((x) => /fragments-0[01]-/.test(x.file));
  for (const tf of transforms) {
    it(`${tf.name}: ≥ ${MIN_MATCHED * 100} % of the originals' fragments matched at IoU ≥ 0.7`, async () => {
      let matched = 0;
      let of = 0;
      const per: string[] = [];
      for (const t of fixtures) {
        const r = await matchedAfter(t, tf);
        // No image may fall far behind while the other carries the total.
        expect(r.matched / r.of, `${t.file}: ${r.matched}/${r.of} matched`).toBeGreaterThanOrEqual(MIN_MATCHED_EACH);
        matched += r.matched;
        of += r.of;
        per.push(`${t.file} ${r.matched}/${r.of}`);
      }
      expect(matched / of, `${matched}/${of} matched (${per.join(', ')})`).toBeGreaterThanOrEqual(MIN_MATCHED);
    });
  }
});
