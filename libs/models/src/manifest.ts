import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MODEL_KINDS = ['detector', 'segmenter', 'classifier', 'sam', 'image-to-image'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export interface TensorSpec {
  name: string;
  dtype: string;
  /** Fixed dims are numbers, symbolic ones their names. */
  shape: (number | string)[];
}

export interface ModelFile {
  role: 'model' | 'encoder' | 'decoder';
  path: string;
  sha256: string;
  size_bytes: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  metadata: Record<string, string>;
}

export interface ModelEntry {
  name: string;
  kind: ModelKind;
  task: string;
  contract: string;
  version: string;
  description: string;
  input_size: [number, number] | null;
  labels: string[] | null;
  size_mb: number;
  files: ModelFile[];
  preprocess: Record<string, unknown>;
  metrics: Record<string, unknown>;
  /**
   * shipped: comes with MODELS_DIR (manifest.json, or a sub-folder with an ONNX file and an optional model.json);
   * installed: uploaded through POST /models, kept in the database and storage. Absent in manifest.json (shipped).
   */
  source?: 'shipped' | 'installed';
  /**
   * The numeric id GET /models lists, stable across installs and removals (model-ids.ts): manifest.json's models by
   * position, folder models by name, installed models by their database row. Set where the entry is made.
   */
  id?: number;
  /** The labels come from model.json and replace the ONNX metadata's class names (checked against the graph only). */
  labels_override?: boolean;
}

export interface ModelManifest {
  version: number;
  total_size_bytes: number;
  models: ModelEntry[];
}

/** The repository's models/ folder (from source or from dist/). */
export function defaultModelsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes('/dist/') ? resolve(here, '../../../../models') : resolve(here, '../../../models');
}

export function loadManifest(modelsDir = defaultModelsDir()): ModelManifest {
  const manifest = JSON.parse(readFileSync(resolve(modelsDir, 'manifest.json'), 'utf8')) as ModelManifest;
  if (manifest.version !== 1 || !Array.isArray(manifest.models)) throw new Error('models/manifest.json: unsupported format');
  for (const m of manifest.models) {
    if (!MODEL_KINDS.includes(m.kind)) throw new Error(`models/manifest.json: ${m.name} has unknown kind ${m.kind}`);
  }
  return manifest;
}

/** Problems with the files on disk against the manifest (missing, size or sha256 differ). */
export function checkManifestFiles(manifest: ModelManifest, modelsDir = defaultModelsDir()): string[] {
  const problems: string[] = [];
  for (const m of manifest.models) {
    for (const f of m.files) {
      let data: Buffer;
      try {
        data = readFileSync(resolve(modelsDir, f.path));
      } catch {
        problems.push(`${m.name}: ${f.path} is missing`);
        continue;
      }
      if (data.length !== f.size_bytes) problems.push(`${m.name}: ${f.path} is ${data.length} bytes, manifest says ${f.size_bytes}`);
      const sha = createHash('sha256').update(data).digest('hex');
      if (sha !== f.sha256) problems.push(`${m.name}: ${f.path} sha256 ${sha} differs from the manifest's ${f.sha256}`);
    }
  }
  return problems;
}
