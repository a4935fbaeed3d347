import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OnnxFormatError } from '@aperture/inference/onnx-protobuf.js';
import { defaultModelsDir, loadManifest } from './manifest.js';
import { describeModel, inspectFile, ModelDefinitionError, parseModelConfig, scanModelFolders } from './model-repository.js';
import { FOLDER_MODEL_IDS, folderModelId, INSTALLED_MODEL_IDS, installedModelId, manifestModelId } from './model-ids.js';
import { inspectOnnxFile } from './onnx-graph.js';
import { applyPreprocessOverrides } from './preprocess-overrides.js';

const variants = resolve(defaultModelsDir(), '../test/fixtures/models');
const shipped = defaultModelsDir();
const tmp = mkdtempSync(join(tmpdir(), 'model-repo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const inspect = (dir: string, f: string) => inspectFile(join(dir, f), f, f);

describe('inspectOnnxFile', () => {
  it('reads the graph inputs, outputs and metadata_props without ONNX Runtime', async () => {
    const info = await inspectOnnxFile(join(variants, 'yolo-seg-640.onnx'));
    expect(info.inputs).toEqual([{ name: 'images', isTensor: true, type: 'float32', shape: [1, 3, 640, 640] }]);
    expect(info.outputs.map((o) => [o.name, o.shape])).toEqual([
      ['output0', [1, 38, 8400]],
      ['output1', [1, 32, 160, 160]],
    ]);
    expect(info.metadata['task']).toBe('segment');
  });

  it("reads every shipped file's tensors as manifest.json records them", async () => {
    for (const m of loadManifest().models) {
      for (const f of m.files) {
        const info = await inspectOnnxFile(join(shipped, f.path));
        const specs = (vs: typeof info.inputs) => vs.map((v) => ({ name: v.name, dtype: v.type, shape: v.shape }));
        expect(specs(info.inputs), f.path).toEqual(f.inputs);
        expect(specs(info.outputs), f.path).toEqual(f.outputs);
        expect(info.metadata, f.path).toEqual(f.metadata);
      }
    }
  });

  it('reads symbolic dimensions as their names (the shipped SAM decoder)', async () => {
    const info = await inspectOnnxFile(join(shipped, 'sam-tiny-decoder.onnx'));
    expect(info.inputs.find((i) => i.name === 'point_coords')?.shape).toEqual(['num_prompts', 'num_points', 2]);
  });

  it('refuses a truncated file', async () => {
    const bytes = readFileSync(join(variants, 'yolo-detect-416.onnx'));
    const cut = join(tmp, 'cut.onnx');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await expect(inspectOnnxFile(cut)).rejects.toThrow(OnnxFormatError);
    await expect(inspectOnnxFile(cut)).rejects.toThrow(/truncated/);
  });
});

describe('describeModel', () => {
  it('takes kind, contract, labels and size of an Ultralytics detect export from its metadata', async () => {
    const m = describeModel('det', [await inspect(variants, 'yolo-detect-416.onnx')]);
    expect(m).toMatchObject({ kind: 'detector', contract: 'ultralytics-detect', labels: ['person', 'car', 'dog'], input_size: [416, 416] });
    expect(m.preprocess).toMatchObject({ method: 'letterbox', size: 416 });
    expect(m.files[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('tells classify and segment exports apart', async () => {
    expect(describeModel('c', [await inspect(variants, 'yolo-classify-224.onnx')])).toMatchObject({
      kind: 'classifier',
      contract: 'ultralytics-classify',
      input_size: [224, 224],
    });
    expect(describeModel('s', [await inspect(variants, 'yolo-seg-640.onnx')])).toMatchObject({
      kind: 'segmenter',
      contract: 'ultralytics-segment',
      labels: ['stone', 'ball'],
    });
  });

  it('names the output whose rows do not fit the class count', async () => {
    const f = await inspect(variants, 'bad-detect-rows.onnx');
    expect(() => describeModel('bad', [f])).toThrow('output output0 has 9 rows, ultralytics-detect with 3 classes needs 7');
  });

  it('recognises the official Segment Anything pair by its tensor names, in either order', async () => {
    const enc = await inspect(shipped, 'sam-tiny-encoder.onnx');
    const dec = await inspect(shipped, 'sam-tiny-decoder.onnx');
    const m = describeModel('sam2', [dec, enc]);
    expect(m).toMatchObject({ kind: 'sam', contract: 'segment-anything' });
    expect(m.files.map((f) => [f.role, f.path])).toEqual([
      ['encoder', 'sam-tiny-encoder.onnx'],
      ['decoder', 'sam-tiny-decoder.onnx'],
    ]);
  });

  it('lets model.json override labels and refuses a label count the graph does not have', async () => {
    const f = await inspect(variants, 'yolo-classify-224.onnx');
    expect(() => describeModel('c', [f], { labels: ['a', 'b'] })).toThrow(/output0 has 4 classes/);
  });

  it('checks model.json field by field', () => {
    expect(() => parseModelConfig({ kind: 'robot', colour: 1 })).toThrow(ModelDefinitionError);
    expect(() => parseModelConfig({ kind: 'robot', colour: 1 })).toThrow(/unknown field "colour".*"kind" must be one of/);
    expect(parseModelConfig({ kind: 'detector', labels: ['a'], input_size: 320 })).toEqual({
      kind: 'detector',
      labels: ['a'],
      input_size: 320,
    });
  });
});

describe('scanModelFolders', () => {
  it('makes a model of each sub-folder with ONNX files, model.json optional, and reports the bad ones', async () => {
    const dir = join(tmp, 'models');
    mkdirSync(join(dir, 'yolo-det'), { recursive: true });
    copyFileSync(join(variants, 'yolo-detect-416.onnx'), join(dir, 'yolo-det', 'best.onnx'));
    mkdirSync(join(dir, 'Renamed'));
    copyFileSync(join(variants, 'yolo-classify-224.onnx'), join(dir, 'Renamed', 'cls.onnx'));
    writeFileSync(join(dir, 'Renamed', 'model.json'), JSON.stringify({ name: 'my-cls', labels: ['w', 'x', 'y', 'z'] }));
    mkdirSync(join(dir, 'broken'));
    copyFileSync(join(variants, 'bad-detect-rows.onnx'), join(dir, 'broken', 'x.onnx'));
    mkdirSync(join(dir, 'empty'));
    const r = await scanModelFolders(dir, new Set(['primitives-obb']));
    expect(r.models.map((m) => [m.name, m.kind, m.files[0]!.path, m.source])).toEqual([
      ['my-cls', 'classifier', 'Renamed/cls.onnx', 'shipped'],
      ['yolo-det', 'detector', 'yolo-det/best.onnx', 'shipped'],
    ]);
    expect(r.models[0]!.labels).toEqual(['w', 'x', 'y', 'z']);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(/^broken\/: .*output0 has 9 rows/);

    // Ids come from the names: another folder added before them (by name) or one removed moves no other id.
    const ids = new Map(r.models.map((m) => [m.name, m.id]));
    expect(ids.get('yolo-det')).toBe(folderModelId('yolo-det'));
    for (const id of ids.values()) expect(id).toBeGreaterThanOrEqual(FOLDER_MODEL_IDS.first);
    mkdirSync(join(dir, 'a-first'));
    copyFileSync(join(variants, 'yolo-detect-416.onnx'), join(dir, 'a-first', 'a.onnx'));
    rmSync(join(dir, 'Renamed'), { recursive: true });
    const again = await scanModelFolders(dir, new Set(['primitives-obb']));
    expect(again.models.map((m) => m.name)).toEqual(['a-first', 'yolo-det']);
    expect(again.models[1]!.id).toBe(ids.get('yolo-det'));
  });
});

describe('folder model hashes between starts', () => {
  it('takes the sha256 of an unchanged file from the cache file and hashes a changed one again', async () => {
    const dir = join(tmp, 'hashed');
    mkdirSync(join(dir, 'det'), { recursive: true });
    const file = join(dir, 'det', 'best.onnx');
    copyFileSync(join(variants, 'yolo-detect-416.onnx'), file);
    const real = createHash('sha256').update(readFileSync(file)).digest('hex');
    const cacheFile = join(tmp, 'data', 'model-hashes.json');
    const first = await scanModelFolders(dir, new Set(), { hashCacheFile: cacheFile });
    expect(first.models[0]!.files[0]!.sha256).toBe(real);
    const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, { size: number; mtimeMs: number; sha256: string }>;
    expect(Object.keys(cached)).toEqual([file]);
    expect(cached[file]).toMatchObject({ size: statSync(file).size, sha256: real });

    // A second start reads the recorded digest (planted here to tell it from a fresh hash) instead of the file.
    writeFileSync(cacheFile, JSON.stringify({ [file]: { ...cached[file], sha256: 'a'.repeat(64) } }));
    const second = await scanModelFolders(dir, new Set(), { hashCacheFile: cacheFile });
    expect(second.models[0]!.files[0]!.sha256).toBe('a'.repeat(64));

    // A changed mtime (or size) is a changed file: hashed again and recorded.
    const later = new Date(Date.now() + 5000);
    utimesSync(file, later, later);
    const third = await scanModelFolders(dir, new Set(), { hashCacheFile: cacheFile });
    expect(third.models[0]!.files[0]!.sha256).toBe(real);
    expect((JSON.parse(readFileSync(cacheFile, 'utf8')) as typeof cached)[file]!.sha256).toBe(real);

    // A file replaced by another of the same size whose copy kept the old mtime (cp -p, rsync -a, tar) is hashed again:
    // with a planted digest recorded for it, the replaced file gets its real one.
    const recorded = JSON.parse(readFileSync(cacheFile, 'utf8')) as typeof cached;
    writeFileSync(cacheFile, JSON.stringify({ [file]: { ...recorded[file], sha256: 'b'.repeat(64) } }));
    const { atime, mtime } = statSync(file);
    const bytes = readFileSync(file);
    rmSync(file);
    writeFileSync(file, bytes);
    utimesSync(file, atime, mtime);
    expect(statSync(file).mtimeMs).toBe(recorded[file]!.mtimeMs);
    expect((await scanModelFolders(dir, new Set(), { hashCacheFile: cacheFile })).models[0]!.files[0]!.sha256).toBe(real);

    // A broken cache file, or one that cannot be written, only costs a hash.
    writeFileSync(cacheFile, '{not json');
    expect((await scanModelFolders(dir, new Set(), { hashCacheFile: cacheFile })).models[0]!.files[0]!.sha256).toBe(real);
    const unwritable = join(file, 'cannot', 'be', 'here.json');
    expect((await scanModelFolders(dir, new Set(), { hashCacheFile: unwritable })).models[0]!.files[0]!.sha256).toBe(real);
  });
});

describe('model ids', () => {
  it('keeps the three ranges apart and steps past a taken folder id', () => {
    const a = folderModelId('alpha');
    expect(folderModelId('alpha')).toBe(a);
    expect(a).toBeGreaterThanOrEqual(FOLDER_MODEL_IDS.first);
    expect(a).toBeLessThanOrEqual(FOLDER_MODEL_IDS.last);
    expect(folderModelId('alpha', new Set([a]))).toBe(a === FOLDER_MODEL_IDS.last ? FOLDER_MODEL_IDS.first : a + 1);
    const i = installedModelId('0b9a3c1e-2f4d-4e5a-9b6c-7d8e9f0a1b2c');
    expect(i).toBeGreaterThanOrEqual(INSTALLED_MODEL_IDS.first);
    expect(i).toBeLessThanOrEqual(2 ** 31 - 1);
    expect(manifestModelId(0)).toBe(1);
  });
});

describe('pre-processing overrides', () => {
  it('refuses bad pad_value, mean and std by field', () => {
    const bad = (): unknown => parseModelConfig({ preprocess: { pad_value: 300, mean: [1, 2], std: [1, 0, 1] } });
    expect(bad).toThrow(/"preprocess.pad_value" must be an integer from 0 to 255/);
    expect(bad).toThrow(/"preprocess.mean" must be three numbers/);
    expect(bad).toThrow(/"preprocess.std" values must be greater than 0/);
  });

  it('repaints the letterbox padding and normalizes by mean/std on 0-255 values', () => {
    // A 4×2 canvas holding a 2×2 image at x = 1..2: columns 0 and 3 are padding.
    const tensor = new Float32Array(3 * 8).fill(114 / 255);
    for (const c of [0, 1, 2]) for (const i of [1, 2, 5, 6]) tensor[c * 8 + i] = 1;
    applyPreprocessOverrides(
      { tensor, inputW: 4, inputH: 2, padX: 1, padY: 0, newW: 2, newH: 2 },
      { pad_value: 0, mean: [255, 0, 0], std: [1, 255, 1] },
    );
    expect(Array.from(tensor.subarray(0, 8))).toEqual([-255, 0, 0, -255, -255, 0, 0, -255]);
    expect(Array.from(tensor.subarray(8, 16))).toEqual([0, 1, 1, 0, 0, 1, 1, 0]);
    const untouched = new Float32Array(24).fill(0.5);
    applyPreprocessOverrides({ tensor: untouched, inputW: 4, inputH: 2, padX: 1, padY: 0, newW: 2, newH: 2 }, { pad_value: 114 });
    expect(untouched.every((v) => v === 0.5)).toBe(true);
  });
});
