import { randomUUID } from 'node:crypto';
import type { Opt } from '@mikro-orm/core';
import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import type { JsonObject } from './job.entity.js';

/** One stored file of an installed model: its role, storage key, the uploaded file's name, sha256 and size. */
export interface InstalledModelFile {
  role: 'model' | 'encoder' | 'decoder';
  key: string;
  file_name: string;
  sha256: string;
  size_bytes: number;
}

/**
 * A model installed through POST /models: its files live in storage (models/<name>/…), the rest here. `entry` is the
 * model's manifest entry as described at install time (kind, contract, labels, input size, tensors, metadata), so every
 * process rebuilds the model from this row and the stored files alone.
 */
@Entity({ tableName: 'installed_models' })
export class InstalledModel {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @Property({ type: 'string', length: 63, unique: true })
  name!: string;

  @Property({ type: 'string', length: 32 })
  kind!: string;

  @Property({ type: 'string', length: 64 })
  contract!: string;

  @Property({ type: 'json' })
  files!: InstalledModelFile[];

  /** The model.json sent with the files ({} when none). */
  @Property({ type: 'json' })
  config: JsonObject & Opt = {};

  @Property({ type: 'json' })
  entry!: JsonObject;

  /** Who installed it (username; kept when the account is deleted). */
  @Property({ type: 'string', length: 255 })
  installedBy!: string;

  @Property({ type: 'datetime' })
  installedAt: Date & Opt = new Date();
}
