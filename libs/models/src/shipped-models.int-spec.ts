import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { checkManifestFiles, defaultModelsDir, loadManifest, type ModelEntry, type ModelFile } from './manifest.js';
import { parseImgsz, parseNames, readOnnxMetadata } from '@aperture/inference/onnx-metadata.js';

/**
 * Every shipped model: the files match the manifest (sha256, size), each loads in onnxruntime-node with the
 * manifest's input/output names and fixed dims, its metadata_props match, and it runs once on a fixture.
 */
const dir = defaultModelsDir();
const manifest = loadManifest(dir);
const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

async function open(file: ModelFile): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(resolve(dir, file.path), { intraOpNumThreads: 1 });
  sessions.push(s);
  return s;
}

const byName = (name: string): ModelEntry => {
  const m = manifest.models.find((x) => x.name === name);
  if (!m) throw new Error(`${name} is not in the manifest`);
  return m;
};

/** Letterboxed CHW float input of a fixture image (a plain resize-and-pad; exactness is the inference engine's job). */
async function letterboxed(path: string, size: number): Promise<ort.Tensor> {
  const { data, info } = await sharp(resolve(dir, path))
    .removeAlpha()
    .resize(size, size, { fit: 'contain', background: { r: 114, g: 114, b: 114 } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const chw = new Float32Array(3 * size * size);
  for (let i = 0; i < info.width * info.height; i++) for (let c = 0; c < 3; c++) chw[c * size * size + i] = data[i * 3 + c]! / 255;
  return new ort.Tensor('float32', chw, [1, 3, size, size]);
}

describe('shipped models', () => {
  it('the manifest lists the five kinds, and the files match it (present, sha256, size), under 25 MB together', () => {
    expect(manifest.models.map((m) => m.kind).sort()).toEqual(['classifier', 'detector', 'image-to-image', 'sam', 'segmenter']);
    expect(checkManifestFiles(manifest, dir)).toEqual([]);
    const total = manifest.models.flatMap((m) => m.files).reduce((a, f) => a + f.size_bytes, 0);
    expect(total).toBe(manifest.total_size_bytes);
    expect(total).toBeLessThan(25 * 1024 * 1024);
  });

  for (const model of manifest.models) {
    for (const file of model.files) {
      it(`${file.path}: names, fixed dims and metadata_props match the manifest`, async () => {
        const s = await open(file);
        expect(s.inputNames).toEqual(file.inputs.map((i) => i.name));
        expect(s.outputNames).toEqual(file.outputs.map((o) => o.name));
        expect(readOnnxMetadata(readFileSync(resolve(dir, file.path)))).toEqual(file.metadata);
        for (const spec of file.inputs) {
          const meta = s.inputMetadata.find((m) => m.name === spec.name);
          expect(meta, spec.name).toBeDefined();
          if (meta && meta.isTensor) {
            expect(meta.shape.length, spec.name).toBe(spec.shape.length);
            spec.shape.forEach((d, i) => {
              if (typeof d === 'number') expect(meta.shape[i], `${spec.name}[${i}]`).toBe(d);
            });
          }
        }
      });
    }
  }

  it('primitives-obb: Ultralytics OBB layout [1, 4+nc+1, N] with names/imgsz metadata, and it finds primitives in a fixture', async () => {
    const m = byName('primitives-obb');
    const meta = m.files[0]!.metadata;
    const names = parseNames(meta['names']!);
    expect(names).toEqual(m.labels);
    const [h, w] = parseImgsz(meta['imgsz']!);
    const s = await open(m.files[0]!);
    const gt = JSON.parse(readFileSync(resolve(dir, 'fixtures/primitives/ground-truth.json'), 'utf8')) as { images: { file: string }[] };
    const out = (await s.run({ images: await letterboxed(`fixtures/${gt.images[0]!.file}`, h) }))['output0']!;
    const n = (h / 8) ** 2 + (h / 16) ** 2 + (w / 32) ** 2;
    expect(out.dims).toEqual([1, 4 + names.length + 1, n]);
    const data = out.data as Float32Array;
    let best = 0;
    for (let i = 0; i < n; i++) for (let c = 0; c < names.length; c++) best = Math.max(best, data[(4 + c) * n + i]!);
    expect(best).toBeGreaterThan(0.5); // a trained detector, not noise
    for (let i = 0; i < n; i++) {
      const angle = data[(4 + names.length) * n + i]!;
      expect(angle).toBeGreaterThanOrEqual(-Math.PI / 4 - 1e-5);
      expect(angle).toBeLessThanOrEqual((3 * Math.PI) / 4 + 1e-5);
    }
  });

  it('scene-gru: softmaxed probabilities over the scenes for any number of primitives', async () => {
    const m = byName('scene-gru');
    const s = await open(m.files[0]!);
    for (const t of [1, 7]) {
      const out = (await s.run({ primitives: new ort.Tensor('float32', new Float32Array(t * 13).fill(0.2), [1, t, 13]) }))['probs']!;
      expect(out.dims).toEqual([1, m.labels!.length]);
      const p = Array.from(out.data as Float32Array);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it('fragments-seg: output0 [1, 4+nc+32, N] and prototypes [1, 32, imgsz/4, imgsz/4]', async () => {
    const m = byName('fragments-seg');
    const [h] = parseImgsz(m.files[0]!.metadata['imgsz']!);
    const s = await open(m.files[0]!);
    const gt = JSON.parse(readFileSync(resolve(dir, 'fixtures/fragments/ground-truth.json'), 'utf8')) as { images: { file: string }[] };
    const out = await s.run({ images: await letterboxed(`fixtures/${gt.images[0]!.file}`, h) });
    const nc = parseNames(m.files[0]!.metadata['names']!).length;
    expect(out['output0']!.dims[1]).toBe(4 + nc + 32);
    expect(out['output1']!.dims).toEqual([1, 32, h / 4, h / 4]);
  });

  it('sam-tiny: the encoder embeds to [1,256,64,64]; the decoder answers a padded point prompt at the original size', async () => {
    const m = byName('sam-tiny');
    const enc = await open(m.files.find((f) => f.role === 'encoder')!);
    const dec = await open(m.files.find((f) => f.role === 'decoder')!);
    const image = new ort.Tensor('float32', new Float32Array(3 * 1024 * 1024), [1, 3, 1024, 1024]);
    const emb = (await enc.run({ image }))['image_embeddings']!;
    expect(emb.dims).toEqual([1, 256, 64, 64]);
    const out = await dec.run({
      image_embeddings: emb,
      point_coords: new ort.Tensor('float32', Float32Array.from([512, 300, 0, 0]), [1, 2, 2]),
      point_labels: new ort.Tensor('float32', Float32Array.from([1, -1]), [1, 2]),
      mask_input: new ort.Tensor('float32', new Float32Array(256 * 256), [1, 1, 256, 256]),
      has_mask_input: new ort.Tensor('float32', Float32Array.from([0]), [1]),
      orig_im_size: new ort.Tensor('float32', Float32Array.from([480, 640]), [2]),
    });
    expect(out['masks']!.dims).toEqual([1, 4, 480, 640]);
    expect(out['iou_predictions']!.dims).toEqual([1, 4]);
    expect(out['low_res_masks']!.dims).toEqual([1, 4, 256, 256]);
  });

  it('xray: three styles of the same size as the input, in 0..1', async () => {
    const m = byName('xray');
    const s = await open(m.files[0]!);
    const out = (await s.run({ image: new ort.Tensor('float32', new Float32Array(3 * 48 * 64).fill(0.5), [1, 3, 48, 64]) }))['output']!;
    expect(out.dims).toEqual([m.labels!.length, 3, 48, 64]);
    const d = out.data as Float32Array;
    expect(Math.min(...d)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...d)).toBeLessThanOrEqual(1);
  });

  it('eval.json meets the quality targets', () => {
    const e = JSON.parse(readFileSync(resolve(dir, 'eval.json'), 'utf8')) as Record<string, Record<string, number>>;
    expect(e['primitives-obb']!['mAP50']).toBeGreaterThanOrEqual(0.9);
    expect(e['primitives-obb']!['mean_angle_error_deg']).toBeLessThanOrEqual(10);
    expect(e['primitives-obb']!['ood_mAP50']).toBeGreaterThanOrEqual(0.8);
    expect(e['scene-gru']!['accuracy_ground_truth_primitives']).toBeGreaterThanOrEqual(0.9);
    expect(e['fragments-seg']!['fragment_mask_mIoU_matched']).toBeGreaterThanOrEqual(0.8);
    expect(e['fragments-seg']!['ball_found_rate']).toBeGreaterThanOrEqual(0.95);
    expect(e['sam-tiny']!['single_point_mIoU']).toBeGreaterThanOrEqual(0.85);
    expect(e['sam-tiny']!['box_mIoU']).toBeGreaterThanOrEqual(0.9);
  });
});
