import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { SessionHost } from '@aperture/inference/session-host.js';
import type { InputTensor } from '@aperture/inference/session-types.js';
import { defaultModelsDir, loadManifest, type ModelManifest } from './manifest.js';
import { ModelError, ModelRegistry, UnknownModelError } from './model-registry.js';

/** Real ONNX sessions of the shipped models, copied to a scratch folder so files can be broken on purpose. */
const shipped = loadManifest();
const names = ['xray', 'scene-gru', 'fragments-seg'];
const host = new SessionHost({ poolSize: 1 });
afterAll(() => host.close());

let dir: string;
let manifest: ModelManifest;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aperture-registry-'));
  manifest = { version: 1, total_size_bytes: 0, models: shipped.models.filter((m) => names.includes(m.name)) };
  for (const m of manifest.models) for (const f of m.files) copyFileSync(join(defaultModelsDir(), f.path), join(dir, f.path));
});

const xrayInput = (): Record<string, InputTensor> => ({
  image: { type: 'float32', dims: [1, 3, 8, 8], data: new Float32Array(3 * 64).fill(0.5) },
});
const sizeOf = (name: string): number => manifest.models.find((m) => m.name === name)!.files.reduce((a, f) => a + f.size_bytes, 0);

describe('ModelRegistry', () => {
  it('loads lazily on first use and records compute statistics', async () => {
    const changes: string[] = [];
    const r = new ModelRegistry(manifest, host, { dir, onChange: (n) => changes.push(n) });
    expect(r.status('xray')).toMatchObject({ state: 'available', memory_bytes: 0, loaded_at: null });
    const { outputs, computeMs } = await r.run('xray', 'model', xrayInput());
    expect(outputs['output']!.dims).toEqual([3, 3, 8, 8]);
    expect(computeMs).toBeGreaterThan(0);
    r.record('xray', { totalMs: computeMs + 2, preprocessMs: 1, postprocessMs: 1, queueMs: 5 });
    const s = r.status('xray');
    expect(s).toMatchObject({ state: 'loaded', memory_bytes: sizeOf('xray'), execution_provider: 'cpu' });
    expect(s.stats).toMatchObject({
      inference_count: 1,
      compute: { count: 1 },
      preprocess: { count: 1, total_ms: 1 },
      queue: { count: 1, total_ms: 5 },
      failure: { count: 0 },
    });
    expect(s.stats.last_inference_at).toEqual(expect.any(String));
    expect(changes.filter((n) => n === 'xray').length).toBeGreaterThanOrEqual(2); // loading, loaded
    await r.close();
  });

  it('serializes concurrent loads of one model into one session', async () => {
    const r = new ModelRegistry(manifest, host, { dir });
    const before = host.sessionIds().length;
    await Promise.all([r.run('xray', 'model', xrayInput()), r.run('xray', 'model', xrayInput()), r.run('xray', 'model', xrayInput())]);
    expect(host.sessionIds().length - before).toBe(1);
    await r.unload('xray');
    expect(host.sessionIds().length).toBe(before);
    expect(r.status('xray')).toMatchObject({ state: 'available', memory_bytes: 0 });
  });

  it('fails a model that does not fit its contract with MODEL_ERROR naming the mismatch; the others keep working', async () => {
    const bad = {
      ...manifest.models.find((m) => m.name === 'xray')!,
      name: 'xray-as-detector',
      kind: 'detector' as const,
      contract: 'ultralytics-obb',
      labels: ['a'],
    };
    const r = new ModelRegistry({ ...manifest, models: [...manifest.models, bad] }, host, { dir });
    const err = await r.load('xray-as-detector').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toMatch(/does not fit the ultralytics-obb contract: xray\.onnx: output output must have rank 3/);
    expect(r.status('xray-as-detector')).toMatchObject({ state: 'failed', reason: expect.stringMatching(/rank 3/) });
    await expect(r.load('scene-gru')).resolves.toMatchObject({ state: 'loaded' });
    expect(() => r.status('nope')).toThrow(UnknownModelError);
    await r.close();
  });

  it('keeps the previous session serving when a reload fails', async () => {
    const r = new ModelRegistry(manifest, host, { dir });
    await r.load('xray');
    writeFileSync(join(dir, 'xray.onnx'), 'not an onnx file');
    await expect(r.load('xray')).rejects.toThrow(/xray\.onnx cannot be loaded/);
    expect(r.status('xray')).toMatchObject({
      state: 'loaded',
      reason: expect.stringMatching(/^reload failed, the previous version keeps serving/),
    });
    const { outputs } = await r.run('xray', 'model', xrayInput());
    expect(outputs['output']!.dims).toEqual([3, 3, 8, 8]);
    await r.close();
  });

  it('unloads the least recently used idle model when a load would pass the memory budget', async () => {
    const budget = sizeOf('scene-gru') + sizeOf('fragments-seg') + 1; // room for fragments-seg plus either small model
    const r = new ModelRegistry(manifest, host, { dir, memoryBudgetBytes: budget });
    await r.load('xray');
    await r.load('scene-gru');
    await r.run('xray', 'model', xrayInput()); // xray is now the most recently used
    await r.load('fragments-seg');
    expect(r.status('scene-gru').state).toBe('available');
    expect(r.status('xray').state).toBe('loaded');
    expect(r.status('fragments-seg').state).toBe('loaded');
    expect(r.memoryBytes()).toBeLessThanOrEqual(budget);
    await r.close();
  });
});
