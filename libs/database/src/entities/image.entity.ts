import { randomUUID } from 'node:crypto';
import { type Opt } from '@mikro-orm/core';
import { Entity, Index, ManyToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Project } from './project.entity.js';
import { User } from './user.entity.js';

/** An uploaded image. The file lives in storage under `images/{id}/original`, never under the name the user sent. */
@Entity({ tableName: 'images' })
@Index({ properties: ['owner', 'createdAt'] })
@Index({ properties: ['owner', 'originalName'] })
export class Image {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  /** Set when the image was uploaded into a project; deleted with it. */
  @ManyToOne(() => Project, { nullable: true, deleteRule: 'cascade' })
  project: Project | null = null;

  @Property({ type: 'string', length: 300 })
  storageKey!: string;

  /** The file name the client sent (display only). */
  @Property({ type: 'string', length: 255 })
  originalName!: string;

  /** jpeg, png, webp, bmp or tiff: what the content is, whatever the name says. */
  @Property({ type: 'string', length: 16 })
  format!: string;

  @Property({ type: 'string', length: 100 })
  mime!: string;

  @Property({ type: 'bigint', runtimeType: 'number' })
  sizeBytes!: number;

  @Property({ type: 'integer' })
  width!: number;

  @Property({ type: 'integer' })
  height!: number;

  @Property({ type: 'string', length: 64 })
  sha256!: string;

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();

  @Property({ type: 'datetime', onUpdate: () => new Date() })
  updatedAt: Date & Opt = new Date();
}
