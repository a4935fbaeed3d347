import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseImgsz, parseNames } from '@aperture/inference/onnx-metadata.js';
import { OnnxFormatError } from '@aperture/inference/onnx-protobuf.js';
import { SAM_MEAN, SAM_STD } from '@aperture/inference/preprocess.js';
import type { ValueMetadata } from '@aperture/inference/session-types.js';
import { checkContract } from './model-contracts.js';
import { folderModelId } from './model-ids.js';
import { MODEL_KINDS, type ModelEntry, type ModelFile, type ModelKind, type TensorSpec } from './manifest.js';
import { inspectOnnxFile, type OnnxFileInfo } from './onnx-graph.js';
import { checkPreprocessOverrides } from './preprocess-overrides.js';

/**
 * The model repository: models that are not in manifest.json. A model is one ONNX file (or a Segment Anything
 * encoder/decoder pair) plus an optional model.json (ModelConfig); whatever the ONNX files say is read from them
 * (Ultralytics metadata_props: task, names, imgsz; the official SAM export's tensor names), the rest from the config.
 * Used for sub-folders of MODELS_DIR and for models installed through the API (no ONNX Runtime here).
 */

/** model.json: every field optional; what it gives wins over what the ONNX files say. */
export interface ModelConfig {
  name?: string;
  kind?: ModelKind;
  contract?: string;
  description?: string;
  version?: string;
  labels?: string[];
  /** Square input size (or [h, w]) for letterboxed / centre-cropped models. */
  input_size?: number | [number, number];
  /** Pre-processing overrides, kept in the model's `preprocess` (e.g. mean, std, pad_value). */
  preprocess?: Record<string, unknown>;
}

/** A model that cannot be described or does not fit its contract; `problems` each name the file, tensor or field. */
export class ModelDefinitionError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'ModelDefinitionError';
  }
}

/** One ONNX file of a model to describe: where it is, what it is called in messages, and what it declares. */
export interface InspectedFile {
  /** The path the entry records (relative to MODELS_DIR, or a storage key). */
  path: string;
  /** The name shown in messages (the uploaded file name). */
  label: string;
  info: OnnxFileInfo;
  sha256: string;
  sizeBytes: number;
}

export const MODEL_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const SAM_DECODER_INPUTS = ['image_embeddings', 'point_coords', 'point_labels', 'mask_input', 'has_mask_input', 'orig_im_size'];

const CONFIG_KEYS = ['name', 'kind', 'contract', 'description', 'version', 'labels', 'input_size', 'preprocess'];

/** Checks a parsed model.json; every problem names the field. */
export function parseModelConfig(raw: unknown, where = 'model.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelDefinitionError([`${where} must be a JSON object`]);
  const o = raw as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(o))
    if (!CONFIG_KEYS.includes(k)) problems.push(`${where}: unknown field "${k}" (known: ${CONFIG_KEYS.join(', ')})`);
  const strField = (k: string): void => {
    if (o[k] !== undefined && typeof o[k] !== 'string') problems.push(`${where}: "${k}" must be a string`);
  };
  ['name', 'contract', 'description', 'version'].forEach(strField);
  if (typeof o['name'] === 'string' && !MODEL_NAME_RE.test(o['name']))
    problems.push(`${where}: "name" must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit`);
  if (o['kind'] !== undefined && !MODEL_KINDS.includes(o['kind'] as ModelKind))
    problems.push(`${where}: "kind" must be one of ${MODEL_KINDS.join(', ')}`);
  if (o['labels'] !== undefined && (!Array.isArray(o['labels']) || !o['labels'].every((l) => typeof l === 'string')))
    problems.push(`${where}: "labels" must be an array of strings`);
  const size = o['input_size'];
  const goodSide = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 32 && v <= 4096;
  if (size !== undefined && !goodSide(size) && !(Array.isArray(size) && size.length === 2 && size.every(goodSide)))
    problems.push(`${where}: "input_size" must be an integer from 32 to 4096, or [h, w] of them`);
  if (o['preprocess'] !== undefined && (typeof o['preprocess'] !== 'object' || o['preprocess'] === null || Array.isArray(o['preprocess'])))
    problems.push(`${where}: "preprocess" must be an object`);
  else if (o['preprocess'] !== undefined) problems.push(...checkPreprocessOverrides(o['preprocess'] as Record<string, unknown>, where));
  if (problems.length) throw new ModelDefinitionError(problems);
  return o as ModelConfig;
}

/** sha256 and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha256: string; sizeBytes: number }> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    sizeBytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), sizeBytes };
}

interface CachedHash {
  size: number;
  mtimeMs: number;
  /** The inode's change time and number too: copies that keep a file's mtime (cp -p, rsync -a, tar) still change these. */
  ctimeMs: number;
  ino: number;
  sha256: string;
}

/**
 * sha256 of files by path, kept in a JSON file between starts together with each file's size, mtime, ctime and inode:
 * a folder model whose files did not change is not read again at boot (every process hashed every folder model in
 * full). A file where any of those differs is hashed again (a replaced file gets a new ctime even when a copy keeps its
 * size and mtime). The cache file lives in DATA_DIR (MODELS_DIR may be read-only); it is
 * written whole and renamed into place, so processes that start together at worst each hash once more. Without a file
 * (null) it only hashes.
 */
export class FileHashCache {
  private readonly used = new Map<string, CachedHash>();
  private changed = false;

  private constructor(
    private readonly file: string | null,
    private readonly known: Record<string, CachedHash>,
  ) {}

  /** A cache in this process's memory only. */
  static inMemory(): FileHashCache {
    return new FileHashCache(null, {});
  }

  /** Reads the cache file; a missing or unreadable one is an empty cache. */
  static async open(file: string | null): Promise<FileHashCache> {
    let known: Record<string, CachedHash> = {};
    if (file) {
      try {
        const raw: unknown = JSON.parse(await readFile(file, 'utf8'));
        if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) known = raw as Record<string, CachedHash>;
      } catch {
        /* no cache yet, or a broken one: hash everything */
      }
    }
    return new FileHashCache(file, known);
  }

  /** sha256 and size of a file: from the cache when its size, mtime, ctime and inode are the recorded ones, else hashed. */
  async hash(path: string): Promise<{ sha256: string; sizeBytes: number }> {
    const key = resolve(path);
    const s = await stat(key);
    const k = this.known[key];
    const same = k && k.size === s.size && k.mtimeMs === s.mtimeMs && k.ctimeMs === s.ctimeMs && k.ino === s.ino;
    if (same && typeof k.sha256 === 'string') {
      this.used.set(key, k);
      return { sha256: k.sha256, sizeBytes: k.size };
    }
    const h = await hashFile(key);
    this.used.set(key, { size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino, sha256: h.sha256 });
    this.changed = true;
    return h;
  }

  /** Writes the files hashed since open() (and drops the others) when anything changed; a failure only costs a re-hash. */
  async save(): Promise<void> {
    if (!this.file || (!this.changed && this.used.size === Object.keys(this.known).length)) return;
    const part = `${this.file}.${randomBytes(6).toString('hex')}.part`;
    try {
      await mkdir(dirname(this.file), { recursive: true });
      await writeFile(part, JSON.stringify(Object.fromEntries(this.used)));
      await rename(part, this.file);
    } catch {
      await rm(part, { force: true }).catch(() => undefined);
    }
  }
}

/** Inspects one ONNX file for describeModel(); a file that is no ONNX model is a ModelDefinitionError naming it. */
export async function inspectFile(
  fsPath: string,
  path: string,
  label: string,
  hash: (fsPath: string) => Promise<{ sha256: string; sizeBytes: number }> = hashFile,
): Promise<InspectedFile> {
  let info: OnnxFileInfo;
  try {
    info = await inspectOnnxFile(fsPath);
  } catch (e) {
    if (e instanceof OnnxFormatError) throw new ModelDefinitionError([`${label}: ${e.message}`]);
    throw e;
  }
  return { path, label, info, ...(await hash(fsPath)) };
}

const spec = (v: ValueMetadata): TensorSpec => ({ name: v.name, dtype: v.type ?? 'unknown', shape: v.shape ?? [] });
const fixed = (v: ValueMetadata | undefined, i: number): number | undefined => {
  const d = v?.shape?.[i];
  return typeof d === 'number' && d > 0 ? d : undefined;
};

function contractOf(task: string | undefined, files: InspectedFile[], label: string): { kind: ModelKind; contract: string } {
  if (files.length === 2) return { kind: 'sam', contract: 'segment-anything' };
  const f = files[0]!;
  const rank = f.info.inputs[0]?.shape?.length;
  switch (task) {
    case 'detect':
      return { kind: 'detector', contract: 'ultralytics-detect' };
    case 'obb':
      return { kind: 'detector', contract: 'ultralytics-obb' };
    case 'segment':
      return { kind: 'segmenter', contract: 'ultralytics-segment' };
    case 'classify':
      return rank === 3
        ? { kind: 'classifier', contract: 'sequence-classifier' }
        : { kind: 'classifier', contract: 'ultralytics-classify' };
    case 'image-to-image':
      return { kind: 'image-to-image', contract: 'image-to-image' };
    default:
      throw new ModelDefinitionError([
        `${label}: cannot tell what kind of model this is: its metadata_props have no Ultralytics "task" ` +
          `(detect, segment, obb, classify)${task ? ` (found "${task}")` : ''} and it is no Segment Anything encoder/decoder pair; ` +
          'give "kind" and "contract" in model.json (the "config" field)',
      ]);
  }
}

const DEFAULT_CONTRACT: Record<ModelKind, string> = {
  detector: 'ultralytics-detect',
  segmenter: 'ultralytics-segment',
  classifier: 'ultralytics-classify',
  sam: 'segment-anything',
  'image-to-image': 'image-to-image',
};

/**
 * Describes a model from its ONNX files and optional config, then checks it against its contract (model-contracts):
 * returns its manifest entry, or throws a ModelDefinitionError whose problems name the tensor or field.
 */
export function describeModel(
  name: string,
  inputFiles: InspectedFile[],
  config: ModelConfig = {},
  source: ModelEntry['source'] = 'installed',
): ModelEntry {
  if (inputFiles.length === 0 || inputFiles.length > 2) {
    throw new ModelDefinitionError([
      `a model has one ONNX file, or two for a Segment Anything encoder/decoder pair; got ${inputFiles.length}`,
    ]);
  }
  const isDecoder = (f: InspectedFile): boolean => f.info.inputs.some((v) => v.name === 'image_embeddings');
  let files = inputFiles;
  if (files.length === 2) {
    const dec = files.filter(isDecoder);
    if (dec.length !== 1) {
      throw new ModelDefinitionError([
        `two files are a Segment Anything pair only when exactly one is a decoder (inputs ${SAM_DECODER_INPUTS.join(', ')}); ` +
          `${dec.length === 0 ? 'neither' : 'both'} of ${files.map((f) => f.label).join(', ')} has an image_embeddings input`,
      ]);
    }
    files = [files.find((f) => !isDecoder(f))!, dec[0]!];
  }
  const main = files[0]!;
  const meta = main.info.metadata;
  const task = meta['task'];
  const inferred =
    config.kind !== undefined
      ? { kind: config.kind, contract: config.contract ?? DEFAULT_CONTRACT[config.kind] }
      : files.length === 1 && isDecoder(main)
        ? (() => {
            throw new ModelDefinitionError([`${main.label} is a Segment Anything decoder: send its encoder too (two files)`]);
          })()
        : contractOf(task, files, main.label);
  const contract = config.contract ?? inferred.contract;
  const kind = inferred.kind;
  const problems: string[] = [];
  let labels: string[] | null = config.labels ?? null;
  if (!labels && meta['names'] !== undefined && kind !== 'sam') {
    try {
      labels = parseNames(meta['names']);
    } catch (e) {
      problems.push(`${main.label}: metadata "names" cannot be parsed: ${(e as Error).message}`);
    }
  }
  let size: [number, number] | null = null;
  if (config.input_size !== undefined) {
    size = typeof config.input_size === 'number' ? [config.input_size, config.input_size] : config.input_size;
  } else if (meta['imgsz'] !== undefined && kind !== 'sam') {
    try {
      size = parseImgsz(meta['imgsz']);
    } catch (e) {
      problems.push(`${main.label}: metadata "imgsz" cannot be parsed: ${(e as Error).message}`);
    }
  }
  const input = main.info.inputs[0];
  if (!size && fixed(input, 2) && fixed(input, 3)) size = [fixed(input, 2)!, fixed(input, 3)!];
  if (kind === 'sam') size = [1024, 1024];
  if ((kind === 'detector' || kind === 'segmenter' || contract === 'ultralytics-classify') && size && size[0] !== size[1]) {
    problems.push(`${main.label}: input size ${size[0]}x${size[1]} is not square (Aperture letterboxes to a square input)`);
  }
  if ((kind === 'detector' || kind === 'segmenter') && !labels) {
    problems.push(`${main.label}: no class names: the metadata has no "names" and model.json no "labels"`);
  }
  if (problems.length) throw new ModelDefinitionError(problems);

  const roles: ModelFile['role'][] = files.length === 2 ? ['encoder', 'decoder'] : ['model'];
  const modelFiles: ModelFile[] = files.map((f, i) => ({
    role: roles[i]!,
    path: f.path,
    sha256: f.sha256,
    size_bytes: f.sizeBytes,
    inputs: f.info.inputs.map(spec),
    outputs: f.info.outputs.map(spec),
    metadata: f.info.metadata,
  }));
  const preprocess: Record<string, unknown> =
    kind === 'sam'
      ? {
          method: 'sam-resize-longest-side',
          size: 1024,
          mean: [...SAM_MEAN],
          std: [...SAM_STD],
          pad: 'zeros bottom/right after normalizing',
        }
      : contract === 'ultralytics-classify'
        ? { method: 'resize-short-side-centre-crop', size: size?.[0] ?? 224, scale: '1/255', channels: 'RGB', layout: 'NCHW' }
        : kind === 'detector' || kind === 'segmenter'
          ? { method: 'letterbox', size: size?.[0] ?? 640, pad_value: 114, scale: '1/255', channels: 'RGB', layout: 'NCHW' }
          : { method: 'rgb-unit', scale: '1/255', channels: 'RGB', layout: 'NCHW' };
  const sizeBytes = files.reduce((a, f) => a + f.sizeBytes, 0);
  const entry: ModelEntry = {
    name,
    kind,
    task: task ?? (kind === 'sam' ? 'sam' : kind),
    contract,
    version: config.version ?? meta['version'] ?? '1.0.0',
    description:
      config.description ?? meta['description'] ?? `${kind} (${contract}) brought as ${files.map((f) => basename(f.label)).join(' + ')}`,
    input_size: size,
    labels,
    size_mb: Math.round(sizeBytes / 1000) / 1000,
    files: modelFiles,
    preprocess: { ...preprocess, ...(config.preprocess ?? {}) },
    metrics: {},
    source,
    ...(config.labels ? { labels_override: true } : {}),
  };
  const views = files.map((f, i) => ({
    role: roles[i]!,
    path: f.label,
    inputs: f.info.inputs,
    outputs: f.info.outputs,
    metadata: f.info.metadata,
  }));
  const mismatch = checkContract(entry, views);
  if (mismatch.length) throw new ModelDefinitionError(mismatch);
  return entry;
}

/**
 * The models of MODELS_DIR's sub-folders: each folder holding one ONNX file (or a SAM pair) and an optional
 * model.json. Folders named by a manifest model's file, or that cannot be described, are reported, not fatal. Each
 * model's id comes from its name (model-ids.ts), in the order of the folder names. With `hashCacheFile`, the files'
 * sha256 are kept there by path, size and mtime (FileHashCache), so a restart does not hash unchanged files again.
 */
export async function scanModelFolders(
  dir: string,
  taken: ReadonlySet<string>,
  opts: { hashCacheFile?: string | null } = {},
): Promise<{ models: ModelEntry[]; problems: string[] }> {
  const models: ModelEntry[] = [];
  const problems: string[] = [];
  const hashes = await FileHashCache.open(opts.hashCacheFile ?? null);
  try {
    await scanInto(dir, taken, hashes, models, problems);
  } finally {
    await hashes.save();
  }
  return { models, problems };
}

async function scanInto(
  dir: string,
  taken: ReadonlySet<string>,
  hashes: FileHashCache,
  models: ModelEntry[],
  problems: string[],
): Promise<void> {
  const names = new Set(taken);
  const ids = new Set<number>();
  let dirents;
  try {
    dirents = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const d of dirents.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!d.isDirectory() || d.name.startsWith('.')) continue;
    const folder = join(dir, d.name);
    const inside = await readdir(folder).catch(() => [] as string[]);
    const onnx = inside.filter((f) => f.endsWith('.onnx')).sort();
    if (onnx.length === 0) continue;
    try {
      let config: ModelConfig = {};
      if (inside.includes('model.json')) {
        let raw: unknown;
        try {
          raw = JSON.parse(await readFile(join(folder, 'model.json'), 'utf8'));
        } catch (e) {
          throw new ModelDefinitionError([`model.json is not JSON: ${(e as Error).message}`]);
        }
        config = parseModelConfig(raw);
      }
      const name = config.name ?? d.name.toLowerCase();
      if (!MODEL_NAME_RE.test(name)) throw new ModelDefinitionError([`"${name}" is no valid model name (set "name" in model.json)`]);
      if (names.has(name)) throw new ModelDefinitionError([`the name ${name} is already taken`]);
      const files: InspectedFile[] = [];
      for (const f of onnx) {
        const s = await stat(join(folder, f));
        if (s.isFile()) files.push(await inspectFile(join(folder, f), `${d.name}/${f}`, `${d.name}/${f}`, (p) => hashes.hash(p)));
      }
      const entry = describeModel(name, files, config, 'shipped');
      entry.id = folderModelId(name, ids);
      ids.add(entry.id);
      names.add(name);
      models.push(entry);
    } catch (e) {
      if (!(e instanceof ModelDefinitionError)) throw e;
      problems.push(`${d.name}/: ${e.message}`);
    }
  }
}
