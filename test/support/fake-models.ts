import type { ModelEntry, ModelKind, ModelManifest } from '@aperture/models/manifest.js';
import { ModelCatalogueService } from '@apps/api/models/model-catalogue.service.js';
import { newTestService } from './new-test-service.js';

/** A manifest entry with what model resolution reads: name, kind, labels and the first input's shape. */
export function modelEntry(name: string, kind: ModelKind, opts: { labels?: string[]; inputShape?: number[] } = {}): ModelEntry {
  const inputs = [{ name: 'images', dtype: 'float32', shape: opts.inputShape ?? [1, 3, 640, 640] }];
  return {
    name,
    kind,
    task: kind,
    contract: 'test',
    version: '1',
    description: name,
    input_size: null,
    labels: opts.labels ?? null,
    size_mb: 1,
    files: [{ role: 'model', path: `${name}.onnx`, sha256: '0', size_bytes: 1, inputs, outputs: [], metadata: {} }],
    preprocess: {},
    metrics: {},
  };
}

/** The API's model catalogue over the given manifest; its control channel (Redis) is never touched. */
export function modelsOver(models: ModelEntry[]): ModelCatalogueService {
  const manifest: ModelManifest = { version: 1, total_size_bytes: 0, models };
  return newTestService(ModelCatalogueService, manifest, {});
}
