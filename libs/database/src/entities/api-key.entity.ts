import { randomUUID } from 'node:crypto';
import type { Opt } from '@mikro-orm/core';
import type { ApiKeyScope } from '@aperture/common/roles.js';
import { Entity, ManyToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { User } from './user.entity.js';

/** A user's API key. Only its sha256 and a short visible prefix are stored; the key itself is shown once. */
@Entity({ tableName: 'api_keys' })
export class ApiKey {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  @Property({ type: 'string', length: 100 })
  name!: string;

  /** The first characters of the key (e.g. "apk_3f9a1c2b"), to tell keys apart in lists. */
  @Property({ type: 'string', length: 16 })
  prefix!: string;

  @Property({ type: 'string', length: 64, unique: true })
  keyHash!: string;

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();

  @Property({ type: 'datetime', nullable: true })
  lastUsedAt: Date | null = null;

  @Property({ type: 'datetime', nullable: true })
  revokedAt: Date | null = null;

  /** What the key may do; null for keys made before scopes existed, which get the default (read, write). */
  @Property({ type: 'json', nullable: true })
  scopes: ApiKeyScope[] | null = null;

  /** After this moment the key no longer works; null: until revoked. */
  @Property({ type: 'datetime', nullable: true })
  expiresAt: Date | null = null;
}
