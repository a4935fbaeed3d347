import { resolve } from 'node:path';
import { Inject, Logger, type Provider } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { defaultModelsDir, loadManifest, type ModelManifest } from './manifest.js';
import { manifestModelId } from './model-ids.js';
import { scanModelFolders } from './model-repository.js';

const MODEL_MANIFEST = Symbol('MODEL_MANIFEST');
export const MODELS_DIR = Symbol('MODELS_DIR');
export const InjectManifest = (): PropertyDecorator & ParameterDecorator => Inject(MODEL_MANIFEST);

/**
 * The models folder (MODELS_DIR, else the shipped models/) and its models, read once at boot: manifest.json's, then
 * one per sub-folder holding ONNX file(s) and an optional model.json (a folder that cannot be described is logged and
 * skipped; the folder models' sha256 are kept in DATA_DIR/model-hashes.json by path, size and mtime, so a restart
 * reads only changed files in full). Models installed through the API are added to (and removed from) `models` at run time by the process's
 * model repository service.
 */
export const manifestProviders: Provider[] = [
  { provide: MODELS_DIR, inject: [APP_CONFIG], useFactory: (c: AppConfig): string => c.models.dir ?? defaultModelsDir() },
  {
    provide: MODEL_MANIFEST,
    inject: [MODELS_DIR, APP_CONFIG],
    useFactory: async (dir: string, config: AppConfig): Promise<ModelManifest> => {
      let manifest: ModelManifest;
      try {
        manifest = loadManifest(dir);
      } catch (e) {
        throw new Error(`Cannot read the model manifest in ${dir} (MODELS_DIR): ${(e as Error).message}`, { cause: e });
      }
      manifest.models.forEach((m, i) => {
        m.source = 'shipped';
        m.id = manifestModelId(i);
      });
      const folders = await scanModelFolders(dir, new Set(manifest.models.map((m) => m.name)), {
        hashCacheFile: resolve(config.dataDir, 'model-hashes.json'),
      });
      for (const p of folders.problems) new Logger('Models').warn(`Model folder skipped: ${p}`);
      manifest.models.push(...folders.models);
      return manifest;
    },
  },
];
