import { Inject, type Provider } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { defaultModelsDir, loadManifest, type ModelManifest } from './manifest.js';

const MODEL_MANIFEST = Symbol('MODEL_MANIFEST');
export const MODELS_DIR = Symbol('MODELS_DIR');
export const InjectManifest = (): PropertyDecorator & ParameterDecorator => Inject(MODEL_MANIFEST);

/** The models folder (MODELS_DIR, else the shipped models/) and its manifest, read once at boot. */
export const manifestProviders: Provider[] = [
  { provide: MODELS_DIR, inject: [APP_CONFIG], useFactory: (c: AppConfig): string => c.models.dir ?? defaultModelsDir() },
  {
    provide: MODEL_MANIFEST,
    inject: [MODELS_DIR],
    useFactory: (dir: string): ModelManifest => {
      try {
        return loadManifest(dir);
      } catch (e) {
        throw new Error(`Cannot read the model manifest in ${dir} (MODELS_DIR): ${(e as Error).message}`, { cause: e });
      }
    },
  },
];
