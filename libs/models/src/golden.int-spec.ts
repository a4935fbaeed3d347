import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { maskIoU, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { decodeYoloObb, probIoU, type Xywhr } from '@aperture/inference/postprocess/obb.js';
import { encodeSamPrompt, samMaskFromOutputs, type SamPrompt } from '@aperture/inference/postprocess/sam.js';
import { decodeYoloSegment } from '@aperture/inference/postprocess/yolo-segment.js';
import { letterbox, letterboxImage, samPreprocess, samPreprocessImage } from '@aperture/inference/preprocess.js';
import { decodeImage, ImageSource } from '@aperture/imaging/decode.js';
import { float32Output, SessionHost } from '@aperture/inference/session-host.js';
import { defaultModelsDir, loadManifest } from './manifest.js';
import { ClassificationPipeline } from './classification.pipeline.js';
import { DetectionPipeline } from './detection.pipeline.js';
import { ModelRegistry } from './model-registry.js';
import { EmbeddingCache } from './embedding-cache.js';
import { ModelRunner } from './model-runner.js';
import { SamPipeline } from './sam.pipeline.js';

/**
 * The TypeScript pipelines (sharp pre-processing, the shipped ONNX models in worker threads, typed-array
 * post-processing) against golden outputs that the Python reference implementation computed on the same fixture
 * images (models/training/make_fixtures.py). The two resize with different libraries, so scores move a little;
 * confident detections must agree.
 */
const dir = defaultModelsDir();
const fixture = (p: string): string => resolve(dir, 'fixtures', p);
const json = <T>(p: string): T => JSON.parse(readFileSync(fixture(p), 'utf8')) as T;
const host = new SessionHost({ poolSize: 1 });
const registry = new ModelRegistry(loadManifest(dir), host, { dir });
const runner = new ModelRunner(registry);
const detection = new DetectionPipeline(runner);
const classification = new ClassificationPipeline(runner);
const sam = new SamPipeline(runner, new EmbeddingCache({ maxBytes: 0 }));
afterAll(async () => {
  await registry.close();
  await host.close();
});

async function image(file: string) {
  return decodeImage(readFileSync(fixture(file)));
}

/**
 * The model inputs two ways: decoded at full size then resized (two steps), and resized while decoding from the
 * file (one pass, JPEG shrink-on-load; what the worker does when no full-size output needs the pixels).
 */
const modes = ['two-step', 'one-pass'] as const;
type Mode = (typeof modes)[number];

async function letterboxed(file: string, size: number, mode: Mode) {
  if (mode === 'one-pass') return letterboxImage(await ImageSource.open(readFileSync(fixture(file))), size);
  const img = await image(file);
  return letterbox(img.data, img.width, img.height, size);
}

async function samInput(file: string, mode: Mode) {
  if (mode === 'one-pass') return samPreprocessImage(await ImageSource.open(readFileSync(fixture(file))));
  const img = await image(file);
  return samPreprocess(img.data, img.width, img.height);
}

/**
 * The same SAM mask up to resampling: IoU ≥ 0.85 and at most 2% of the mask's area differs farther than 4 px from
 * the reference mask's boundary, 4 px being about one cell of sam-tiny's 128×128 mask head on these images.
 * (sharp and PIL resize the 1024 input slightly differently; sam-tiny's colour affinities turn that into boundary
 * pixels, which on a small shape weigh more in the IoU than they should; the box feature, a minimum over the box's
 * four sides, can also flip a small patch. The decoder graph itself matches PyTorch to 1e-5 on the same embedding. A wrong frame,
 * scale or mask
 * choice moves far more than that.)
 */
function expectSameMask(got: Uint8Array, ref: Uint8Array, w: number, h: number, what: string): void {
  expect(maskIoU(got, ref), `${what}: IoU`).toBeGreaterThanOrEqual(0.85);
  const r = 4;
  let away = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (got[i] === ref[i]) continue;
      let on = false;
      let off = false;
      for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++) {
        for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) {
          if (ref[yy * w + xx]) on = true;
          else off = true;
        }
      }
      if (!(on && off)) away++;
    }
  }
  const area = ref.reduce((a, b) => a + b, 0);
  expect(away, `${what}: pixels that differ away from the reference boundary (mask area ${area})`).toBeLessThanOrEqual(0.02 * area);
}

describe('golden outputs of the Python reference', () => {
  it.each(modes)(
    'primitives-obb (%s): each confident reference detection found with its class (ProbIoU > 0.85), nothing confident added',
    async (mode) => {
      type Detection = { class_id: number; score: number; box: number[] };
      type Golden = { images: { file: string; conf: number; iou: number; detections: Detection[] }[] };
      const golden = json<Golden>('golden/primitives.json');
      expect(golden.images.length).toBeGreaterThanOrEqual(3);
      for (const g of golden.images) {
        const lb = await letterboxed(g.file, 320, mode);
        const { outputs } = await registry.run('primitives-obb', 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
        const dets = decodeYoloObb(float32Output(outputs, 'output0'), lb, { conf: g.conf, iou: g.iou });
        const asBox = (b: number[]): Xywhr => ({ cx: b[0]!, cy: b[1]!, w: b[2]!, h: b[3]!, angle: b[4]! });
        for (const ref of g.detections.filter((d) => d.score > 0.5)) {
          const best = Math.max(0, ...dets.filter((d) => d.classId === ref.class_id).map((d) => probIoU(d, asBox(ref.box))));
          expect(best, `${g.file}: reference ${JSON.stringify(ref)}`).toBeGreaterThan(0.85);
        }
        for (const d of dets.filter((x) => x.score > 0.6)) {
          const best = Math.max(0, ...g.detections.filter((r) => r.class_id === d.classId).map((r) => probIoU(d, asBox(r.box))));
          const what = JSON.stringify({ classId: d.classId, score: d.score, cx: d.cx, cy: d.cy });
          expect(best, `${g.file}: extra detection ${what}`).toBeGreaterThan(0.85);
        }
        for (const d of dets) {
          expect(d.angle).toBeGreaterThanOrEqual(0);
          expect(d.angle).toBeLessThan(Math.PI);
        }
      }
    },
  );

  it.each(modes)('scene-gru from the detected primitives (%s): the reference scene and its probabilities (±0.02)', async (mode) => {
    type Golden = { images: { file: string; conf: number; iou: number; scene: string; scene_probs: Record<string, number> }[] };
    const golden = json<Golden>('golden/primitives.json');
    for (const g of golden.images) {
      const img = mode === 'one-pass' ? await ImageSource.open(readFileSync(fixture(g.file))) : await image(g.file);
      const { objects } = await detection.detect('primitives-obb', img, { conf: g.conf, iou: g.iou });
      const { model: classifier, probs } = await classification.classify('scene-gru', 'primitives-obb', objects, img.width, img.height);
      const labels = classifier.labels!;
      expect(labels[probs!.indexOf(Math.max(...probs!))], g.file).toBe(g.scene);
      labels.forEach((l, i) => expect(Math.abs(probs![i]! - g.scene_probs[l]!), `${g.file}: ${l}`).toBeLessThanOrEqual(0.02));
    }
  });

  it.each(modes)(
    'fragments-seg (%s): masks of confident reference detections match (IoU ≥ 0.9, two ≥ 0.85; ≥ 0.95 mean), zero outside their boxes',
    async (mode) => {
      type Detection = { class_id: number; score: number; box_xyxy: number[]; mask: Rle };
      const golden = json<{ images: { file: string; conf: number; iou: number; detections: Detection[] }[] }>('golden/fragments.json');
      const ious: number[] = [];
      for (const g of golden.images) {
        const lb = await letterboxed(g.file, 320, mode);
        const img = { width: lb.origW, height: lb.origH };
        const { outputs } = await registry.run('fragments-seg', 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
        const nms = { conf: g.conf, iou: g.iou };
        const dets = decodeYoloSegment(float32Output(outputs, 'output0'), float32Output(outputs, 'output1'), lb, nms);
        for (const d of dets) {
          const m = d.mask!;
          const [x1, y1, x2, y2] = [Math.floor(d.x1), Math.floor(d.y1), Math.ceil(d.x2), Math.ceil(d.y2)];
          let outside = 0;
          for (let y = 0; y < img.height; y++) {
            for (let x = 0; x < img.width; x++) if (m[y * img.width + x] && (x < x1 || x >= x2 || y < y1 || y >= y2)) outside++;
          }
          expect(outside).toBe(0);
        }
        for (const ref of g.detections.filter((d) => d.score > 0.5)) {
          const refMask = rleDecode(ref.mask);
          const best = Math.max(0, ...dets.filter((d) => d.classId === ref.class_id).map((d) => maskIoU(d.mask!, refMask)));
          expect(best, `${g.file}: reference detection at ${ref.box_xyxy.join(', ')}`).toBeGreaterThanOrEqual(0.85);
          ious.push(best);
        }
      }
      expect(ious.length).toBeGreaterThan(10);
      // fragments-seg 1.2.0: two masks (fragments-00, the detection at 264,219–302,262, 0.874; fragments-02, at
      // 720,164–776,219, 0.873) are under 0.9, both small fragments whose edge pixels the two pipelines resample
      // differently (1.1.0: the first at 0.885, same box and score in both); every other mask is at ≥ 0.96.
      expect(ious.filter((iou) => iou < 0.9).length, 'masks below IoU 0.9').toBeLessThanOrEqual(2);
      expect(ious.reduce((a, b) => a + b, 0) / ious.length).toBeGreaterThanOrEqual(0.95);
    },
  );

  it.each(modes)(
    'sam-tiny (%s): a click (best of masks 1-3) and a box (mask 0) match the reference masks up to resampling, both orientations',
    async (mode) => {
      type Golden = {
        images: {
          file: string;
          point: { point: [number, number]; mask: Rle; iou_predictions: number[] };
          box: { box: [number, number, number, number]; mask: Rle };
        }[];
      };
      const golden = json<Golden>('golden/sam.json');
      const shapes = new Set<string>();
      for (const g of golden.images) {
        const pre = await samInput(g.file, mode);
        const img = { width: pre.origW, height: pre.origH };
        shapes.add(img.width > img.height ? 'landscape' : img.width < img.height ? 'portrait' : 'square');
        const enc = await registry.run('sam-tiny', 'encoder', { image: { type: 'float32', dims: pre.dims, data: pre.tensor } });
        const emb = float32Output(enc.outputs, 'image_embeddings');
        const frame = { origW: img.width, origH: img.height, newW: pre.newW, newH: pre.newH };
        const decode = async (prompt: SamPrompt) => {
          const feeds = encodeSamPrompt(prompt, frame, emb.data.slice());
          const out = await registry.run('sam-tiny', 'decoder', feeds);
          const iou = float32Output(out.outputs, 'iou_predictions');
          return { r: samMaskFromOutputs(float32Output(out.outputs, 'masks'), iou, prompt), iou: iou.data };
        };
        const [px, py] = g.point.point;
        const click = await decode({ points: [{ x: px, y: py, label: 1 }] });
        expect(click.r.width * click.r.height).toBe(img.width * img.height);
        expectSameMask(click.r.mask, rleDecode(g.point.mask), img.width, img.height, `${g.file} click`);
        g.point.iou_predictions.forEach((v, i) =>
          expect(Math.abs(click.iou[i]! - v), `${g.file} iou_predictions[${i}]`).toBeLessThan(0.05),
        );
        const [x1, y1, x2, y2] = g.box.box;
        const boxed = await decode({ box: { x1, y1, x2, y2 } });
        expect(boxed.r.index).toBe(0);
        expectSameMask(boxed.r.mask, rleDecode(g.box.mask), img.width, img.height, `${g.file} box`);
      }
      expect(shapes).toEqual(new Set(['landscape', 'portrait']));
    },
  );

  it('sam-tiny through the SAM pipeline vs the ground truth: a box around each fixture shape gives it (mean IoU >= 0.85)', async () => {
    type Truth = { images: { file: string; shapes: { mask: Rle; box: [number, number, number, number] }[] }[] };
    const truth = json<Truth>('sam/ground-truth.json');
    const ious: number[] = [];
    for (const t of truth.images) {
      const img = await image(t.file);
      // One encoding, every shape's box decoded from it in one batch.
      const embedding = await sam.samEncode('sam-tiny', img);
      const prompts: SamPrompt[] = t.shapes.map(({ box: [x1, y1, x2, y2] }) => ({ box: { x1, y1, x2, y2 } }));
      const { masks } = await sam.samDecode(embedding, prompts);
      t.shapes.forEach((shape, i) => ious.push(maskIoU(masks[i]!.mask, rleDecode(shape.mask))));
    }
    const mean = ious.reduce((a, b) => a + b, 0) / ious.length;
    const lowest = Math.min(...ious).toFixed(3);
    console.log(`[metrics] sam-tiny box prompts on ${ious.length} fixture shapes: mean IoU ${mean.toFixed(3)}, lowest ${lowest}`);
    expect(ious.length).toBeGreaterThanOrEqual(15);
    expect(mean).toBeGreaterThanOrEqual(0.85);
  });
});
