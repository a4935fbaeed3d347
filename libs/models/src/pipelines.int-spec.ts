import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from '@aperture/imaging/decode.js';
import type { SamPrompt } from '@aperture/inference/postprocess/sam.js';
import { SessionHost } from '@aperture/inference/session-host.js';
import { PermanentJobError } from '@aperture/queue/job-handler.js';
import { DetectionPipeline } from './detection.pipeline.js';
import { ImageToImagePipeline } from './image-to-image.pipeline.js';
import { defaultModelsDir, loadManifest } from './manifest.js';
import { ModelRegistry } from './model-registry.js';
import { EmbeddingCache } from './embedding-cache.js';
import { ModelRunner } from './model-runner.js';
import { SamPipeline } from './sam.pipeline.js';

/** The pipeline services on the shipped models in real ONNX sessions: statistics, error mapping, SAM batches. */
const dir = defaultModelsDir();
const host = new SessionHost({ poolSize: 1 });
const registry = new ModelRegistry(loadManifest(dir), host, { dir });
const runner = new ModelRunner(registry);
const detection = new DetectionPipeline(runner);
const sam = new SamPipeline(runner, new EmbeddingCache({ maxBytes: 0 }));
const imageToImage = new ImageToImagePipeline(runner);
afterAll(async () => {
  await registry.close();
  await host.close();
});

const image = (file: string) => decodeImage(readFileSync(resolve(dir, 'fixtures', file)));
const stats = (name: string) => registry.status(name).stats;

describe('model pipelines', () => {
  it('detect records one inference with every phase, the caller’s decode time as pre-processing', async () => {
    const img = await image('primitives/greenhouse-09-800x600.jpg');
    const before = stats('primitives-obb');
    const det = await detection.detect('primitives-obb', img, { conf: 0.25, iou: 0.7 }, { queueMs: 5, decodeMs: 1000 });
    expect(det.model.name).toBe('primitives-obb');
    expect(det.objects.length).toBeGreaterThan(0);
    const after = stats('primitives-obb');
    expect(after.inference_count - before.inference_count).toBe(1);
    for (const p of ['success', 'queue', 'preprocess', 'compute', 'postprocess'] as const) {
      expect(after[p].count - before[p].count, p).toBe(1);
    }
    expect(after.queue.total_ms - before.queue.total_ms).toBe(5);
    expect(after.preprocess.total_ms - before.preprocess.total_ms).toBeCloseTo(1000 + det.preprocessMs, 6);
    expect(after.failure.count).toBe(before.failure.count);
  });

  it('a model of the wrong kind and an unknown model fail the job for good', async () => {
    const img = await image('primitives/greenhouse-09-800x600.jpg');
    await expect(detection.detect('scene-gru', img, {})).rejects.toThrow(PermanentJobError);
    await expect(detection.detect('scene-gru', img, {})).rejects.toThrow('Model scene-gru is a classifier; expected detector or segmenter');
    await expect(detection.segmentInstances('nope', img, {})).rejects.toThrow(new PermanentJobError('Model nope does not exist.'));
  });

  it('SAM: prompt sets decoded in one batch from one cached embedding give the masks of separate encode + decode runs', async () => {
    const truth = JSON.parse(readFileSync(resolve(dir, 'fixtures/sam/ground-truth.json'), 'utf8')) as {
      images: { file: string; shapes: { point: [number, number]; box: [number, number, number, number] }[] }[];
    };
    const t = truth.images[0]!;
    const img = await image(t.file);
    const [a, b] = t.shapes as [(typeof t.shapes)[0], (typeof t.shapes)[0]];
    const prompts: SamPrompt[] = [
      { points: [{ x: a.point[0], y: a.point[1], label: 1 }] },
      { box: { x1: b.box[0], y1: b.box[1], x2: b.box[2], y2: b.box[3] } },
      {
        points: [
          { x: a.point[0], y: a.point[1], label: 1 },
          { x: b.point[0], y: b.point[1], label: 0 },
        ],
        box: { x1: a.box[0], y1: a.box[1], x2: a.box[2], y2: a.box[3] },
      },
    ];
    const before = stats('sam-tiny');
    const embedding = await sam.samEncode('sam-tiny', img);
    const batched = await sam.samDecode(embedding, prompts, { queueMs: 1 });
    // The cached embedding serves again: its data is never handed to a session.
    const again = await sam.samDecode(embedding, prompts.slice(1, 2));
    const after = stats('sam-tiny');
    expect(after.inference_count - before.inference_count).toBe(2);
    expect(after.compute.count - before.compute.count).toBe(1 + prompts.length + 1);
    expect(after.preprocess.count - before.preprocess.count).toBe(2);
    expect(batched.masks).toHaveLength(prompts.length);
    expect(again.masks[0]).toEqual(batched.masks[1]);
    for (const [i, prompt] of prompts.entries()) {
      const alone = await sam.samDecode(await sam.samEncode('sam-tiny', img), [prompt]);
      const got = batched.masks[i]!;
      const want = alone.masks[0]!;
      const facts = (m: typeof got) => ({ index: m.index, score: m.score, area: m.area, width: m.width, height: m.height });
      expect(facts(got), `prompt ${i}`).toEqual(facts(want));
      expect(Buffer.from(got.mask).equals(Buffer.from(want.mask)), `prompt ${i}: mask`).toBe(true);
    }
    expect(batched.masks.map((m) => m.area).every((x) => x > 0)).toBe(true);
  });

  it('SAM refuses a prompt set without points or box, as a permanent job failure', async () => {
    const embedding = await sam.samEncode('sam-tiny', await image('sam/shapes-03-500x500.png'));
    const noPrompt = new PermanentJobError('A SAM model needs a prompt: points and/or a box');
    await expect(sam.samDecode(embedding, [{ points: [] }])).rejects.toThrow(noPrompt);
    await expect(sam.samDecode(embedding, [])).rejects.toThrow(PermanentJobError);
  });

  it('image-to-image: one PNG per style, one inference', async () => {
    const before = stats('xray');
    const img = await image('xray/input-00-640x480.jpg');
    const out = await imageToImage.imageToImage('xray', img);
    expect(out.options.length).toBeGreaterThan(0);
    for (const o of out.options) expect(o.png.subarray(1, 4).toString()).toBe('PNG');
    expect(stats('xray').inference_count - before.inference_count).toBe(1);
  });
});
