import { randomUUID } from 'node:crypto';
import type { Opt } from '@mikro-orm/core';
import { Entity, Index, ManyToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { User } from './user.entity.js';

/** One image of a batch: its position in the request, the name it was sent with and the job that runs it. */
export type BatchItem = { index: number; job_id: string; job_type: string; file_name: string };

/**
 * Images submitted together (POST /segment/batches): one job per image, each carrying this record's id as its
 * batch id. The batch's status and counts are derived from those jobs, never stored.
 */
@Entity({ tableName: 'batches' })
@Index({ properties: ['owner', 'createdAt'] })
export class Batch {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  /** What the batch runs (e.g. segment). */
  @Property({ type: 'string', length: 32 })
  kind!: string;

  /** The model every image runs on. */
  @Property({ type: 'string', length: 200 })
  model!: string;

  @Property({ type: 'integer' })
  totalImages!: number;

  /** Per image, in request order. */
  @Property({ type: 'json' })
  items!: BatchItem[];

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();
}
