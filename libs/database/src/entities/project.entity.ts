import { randomUUID } from 'node:crypto';
import { type Opt } from '@mikro-orm/core';
import { Entity, Index, ManyToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { User } from './user.entity.js';

/** A set of images processed with one chosen model. Its status is derived from its jobs. */
@Entity({ tableName: 'projects' })
@Index({ properties: ['owner', 'createdAt'] })
export class Project {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  @Property({ type: 'string', length: 200 })
  name!: string;

  @Property({ type: 'text' })
  description: string & Opt = '';

  /** Name of the manifest model the project's images are processed with. */
  @Property({ type: 'string', length: 100 })
  model!: string;

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();

  @Property({ type: 'datetime', onUpdate: () => new Date() })
  updatedAt: Date & Opt = new Date();
}
