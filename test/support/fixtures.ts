import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { defaultModelsDir } from '@aperture/models/manifest.js';

/** The shipped models' fixture images and their ground truth. */
export const fixtures = resolve(defaultModelsDir(), 'fixtures');

/** A ground-truth JSON file of the fixtures. */
export const gt = <T>(p: string): T => JSON.parse(readFileSync(resolve(fixtures, p), 'utf8')) as T;
