import { afterAll, describe, expect, it } from 'vitest';
import { SessionHost } from '@aperture/inference/session-host.js';
import { defaultModelsDir, loadManifest, type ModelEntry } from './manifest.js';
import { ModelRegistry } from './model-registry.js';
import { WARMUP_DEFAULT_SIDE, warmupFeeds } from './warmup.js';

const manifest = loadManifest();
const model = (name: string): ModelEntry => manifest.models.find((m) => m.name === name)!;
const inputsOf = (name: string, role = 'model') => {
  const file = model(name).files.find((f) => f.role === role)!;
  return file.inputs.map((i) => ({ name: i.name, isTensor: true, type: i.dtype, shape: i.shape }));
};

describe('warmupFeeds', () => {
  it("fills each input with zeros of its dtype and shape; symbolic dims are 1, an image takes the model's input size or 640", () => {
    const obb = warmupFeeds(model('primitives-obb'), inputsOf('primitives-obb'));
    expect(obb['images']!.dims).toEqual([1, 3, 320, 320]);
    expect(obb['images']!.data.every((v) => v === 0)).toBe(true);
    expect(warmupFeeds(model('xray'), inputsOf('xray'))['image']!.dims).toEqual([1, 3, WARMUP_DEFAULT_SIDE, WARMUP_DEFAULT_SIDE]);
    expect(warmupFeeds(model('scene-gru'), inputsOf('scene-gru'))['primitives']!.dims).toEqual([1, 1, 13]);
  });

  it("gives SAM's decoder a prompt it can run: padding points only and the 1024 frame as the original size", () => {
    const feeds = warmupFeeds(model('sam-tiny'), inputsOf('sam-tiny', 'decoder'));
    expect(feeds['point_coords']!.dims).toEqual([1, 1, 2]);
    expect([...feeds['point_labels']!.data]).toEqual([-1]);
    expect([...feeds['orig_im_size']!.data]).toEqual([1024, 1024]);
    expect(feeds['has_mask_input']!.dims).toEqual([1]);
    expect(feeds['mask_input']!.dims).toEqual([1, 1, 256, 256]);
  });
});

/** A host that counts the runs it is asked for, so the warm-up runs can be seen. */
class CountingHost extends SessionHost {
  runs: string[][] = [];
  override run(...args: Parameters<SessionHost['run']>): ReturnType<SessionHost['run']> {
    this.runs.push(Object.keys(args[1]).sort());
    return super.run(...args);
  }
}

describe('ModelRegistry with warm-up', () => {
  const host = new CountingHost({ poolSize: 1 });
  afterAll(() => host.close());

  it('runs every file of every shipped model once at load, and the warm-up is not counted as an inference', async () => {
    const r = new ModelRegistry(manifest, host, { dir: defaultModelsDir(), warmup: true });
    for (const m of manifest.models) {
      host.runs = [];
      const s = await r.load(m.name);
      expect(s, `${m.name}: ${s.reason}`).toMatchObject({ state: 'loaded', reason: null });
      expect(s.stats).toMatchObject({ inference_count: 0, compute: { count: 0 }, failure: { count: 0 } });
      expect(host.runs, m.name).toEqual(m.files.map((f) => f.inputs.map((i) => i.name).sort()));
    }
    await r.close();
  });

  it('runs nothing at load without it', async () => {
    const r = new ModelRegistry(manifest, host, { dir: defaultModelsDir() });
    host.runs = [];
    await r.load('sam-tiny');
    expect(host.runs).toEqual([]);
    await r.close();
  });
});
