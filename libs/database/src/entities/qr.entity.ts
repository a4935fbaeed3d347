import { randomUUID } from 'node:crypto';
import { Collection, type Opt } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, OneToOne, PrimaryKey, Property, Unique } from '@mikro-orm/decorators/legacy';
import { Job } from './job.entity.js';
import { User } from './user.entity.js';

/** A batch of unique QR codes rendered into one print-ready PDF by a job. */
@Entity({ tableName: 'qr_batches' })
export class QrBatch {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  @Property({ type: 'integer' })
  n!: number;

  @Property({ type: 'string', length: 500 })
  urlTemplate!: string;

  @OneToOne(() => Job, { owner: true, deleteRule: 'cascade' })
  job!: Job;

  @OneToMany(() => QrCode, (c) => c.batch, { orphanRemoval: true })
  codes = new Collection<QrCode>(this);

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();
}

@Entity({ tableName: 'qr_codes' })
@Unique({ properties: ['batch', 'position'] })
export class QrCode {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => QrBatch, { deleteRule: 'cascade' })
  batch!: QrBatch;

  @Property({ type: 'integer' })
  position!: number;

  /** The unique code itself (also the {code} of the URL template). */
  @Property({ type: 'string', length: 32, unique: true })
  code!: string;

  /** What the QR symbol encodes. */
  @Property({ type: 'string', length: 600 })
  value!: string;
}
