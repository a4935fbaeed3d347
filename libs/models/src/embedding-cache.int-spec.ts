import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from '@aperture/imaging/decode.js';
import type { SamPrompt } from '@aperture/inference/postprocess/sam.js';
import { SessionHost } from '@aperture/inference/session-host.js';
import { EmbeddingCache } from './embedding-cache.js';
import { defaultModelsDir, loadManifest } from './manifest.js';
import { ModelRegistry } from './model-registry.js';
import { ModelRunner } from './model-runner.js';
import { SamPipeline, type SamMask } from './sam.pipeline.js';

/** The SAM embedding cache on the shipped sam-tiny in real ONNX sessions. */
const dir = defaultModelsDir();
const host = new SessionHost({ poolSize: 1 });
const registry = new ModelRegistry(loadManifest(dir), host, { dir });
const cache = new EmbeddingCache({ maxBytes: 64 * 1024 * 1024 });
const sam = new SamPipeline(new ModelRunner(registry), cache);
afterAll(async () => {
  await registry.close();
  await host.close();
});

const truth = JSON.parse(readFileSync(resolve(dir, 'fixtures/sam/ground-truth.json'), 'utf8')) as {
  images: { file: string; shapes: { point: [number, number]; box: [number, number, number, number] }[] }[];
};
const fixture = truth.images[0]!;
const bytes = readFileSync(resolve(dir, 'fixtures', fixture.file));
const sha256 = createHash('sha256').update(bytes).digest('hex');
const shape = fixture.shapes[0]!;
const prompt: SamPrompt = { points: [{ x: shape.point[0], y: shape.point[1], label: 1 }] };
const cacheStats = () => registry.status('sam-tiny').stats.embedding_cache;
const facts = (m: SamMask) => ({
  index: m.index,
  score: m.score,
  area: m.area,
  width: m.width,
  height: m.height,
  mask: Buffer.from(m.mask),
});

describe('SAM embedding cache (sam-tiny)', () => {
  it('serves the second prompt on an image from the cache: no encoder run, the mask of an uncached encode + decode', async () => {
    const img = await decodeImage(bytes);
    const uncached = (await sam.samDecode(await sam.samEncode('sam-tiny', img), [prompt])).masks[0]!; // also loads the model
    const before = registry.status('sam-tiny').stats;

    const t0 = performance.now();
    const first = await sam.samEncodeCached('sam-tiny', img, sha256);
    const missEncodeMs = performance.now() - t0;
    const firstMask = (await sam.samDecode(first.embedding, [prompt])).masks[0]!;
    const missMs = performance.now() - t0;

    const t1 = performance.now();
    const second = await sam.samEncodeCached('sam-tiny', img, sha256);
    const hitEncodeMs = performance.now() - t1;
    const secondMask = (await sam.samDecode(second.embedding, [prompt])).masks[0]!;
    const hitMs = performance.now() - t1;
    const ms = (x: number): string => `${x.toFixed(1)} ms`;
    console.log(
      `[metrics] sam-tiny prompt, cache miss: ${ms(missMs)} (embedding ${ms(missEncodeMs)}); ` +
        `cache hit: ${ms(hitMs)} (embedding ${ms(hitEncodeMs)})`,
    );

    expect(first.hit).toBe(false);
    expect(second.hit).toBe(true);
    expect(second.embedding).toBe(first.embedding);
    expect(facts(firstMask)).toEqual(facts(uncached));
    expect(facts(secondMask)).toEqual(facts(uncached));
    const after = registry.status('sam-tiny').stats;
    // Encoder + decoder for the miss, the decoder alone for the hit.
    expect(after.compute.count - before.compute.count).toBe(3);
    expect(after.inference_count - before.inference_count).toBe(2);
    expect(after.embedding_cache).toMatchObject({
      hits: 1,
      misses: 1,
      evictions: 0,
      entries: 1,
      bytes: EmbeddingCache.sizeOf(first.embedding),
    });
    expect(registry.status('primitives-obb').stats.embedding_cache).toBeUndefined();
  });

  it('drops the model’s entries when it is reloaded or unloaded: the next prompt runs the encoder again', async () => {
    const img = await decodeImage(bytes);
    await sam.samEncodeCached('sam-tiny', img, sha256);
    expect(cacheStats()?.entries).toBe(1);

    await registry.load('sam-tiny'); // a reload: new sessions
    expect(cacheStats()?.entries).toBe(0);
    const misses = cacheStats()!.misses;
    expect((await sam.samEncodeCached('sam-tiny', img, sha256)).hit).toBe(false);
    expect(cacheStats()?.misses).toBe(misses + 1);
    expect((await sam.samEncodeCached('sam-tiny', img, sha256)).hit).toBe(true);

    await registry.unload('sam-tiny');
    expect(cacheStats()).toMatchObject({ entries: 0, bytes: 0 });
    expect((await sam.samEncodeCached('sam-tiny', img, sha256)).hit).toBe(false);
    expect(cacheStats()?.entries).toBe(1);
  });
});
