import { createHash } from 'node:crypto';

/**
 * The numeric ids of the models (GET /models `id`, the older clients' *_model_id fields), in three ranges that cannot
 * collide, so installing or removing a model never changes another model's id:
 * - manifest.json's models: 1 … 999, their 1-based position in the file (as always);
 * - folder models (sub-folders of MODELS_DIR): 1000 … 999 999, from the model's name (sha256), so the same folder keeps
 *   its id across restarts whatever other folders come and go; two names that fall on the same id (about one chance in
 *   100 000 for ten folders) are told apart by taking the next free id in the order of the folder names;
 * - installed models (POST /models): 1 000 000 … 2^31 − 1, from their installed_models row's id (sha256), which the
 *   install draws until the id is free; a model installed again under the same name is a new model with a new id.
 */
export const FOLDER_MODEL_IDS = { first: 1000, last: 999_999 } as const;
export const INSTALLED_MODEL_IDS = { first: 1_000_000, last: 2 ** 31 - 1 } as const;

function inRange(key: string, range: { first: number; last: number }): number {
  const n = createHash('sha256').update(key).digest().readUInt32BE(0);
  return range.first + (n % (range.last - range.first + 1));
}

/** The id of a manifest.json model at 0-based position `index`. */
export const manifestModelId = (index: number): number => index + 1;

/** A folder model's id from its name: the first id from the name's hash on that `taken` lacks (wrapping in the range). */
export function folderModelId(name: string, taken: ReadonlySet<number> = new Set()): number {
  const { first, last } = FOLDER_MODEL_IDS;
  let id = inRange(name, FOLDER_MODEL_IDS);
  while (taken.has(id)) id = id === last ? first : id + 1;
  return id;
}

/** An installed model's id from its installed_models row id. */
export const installedModelId = (rowId: string): number => inRange(rowId, INSTALLED_MODEL_IDS);
