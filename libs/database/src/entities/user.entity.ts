import { randomUUID } from 'node:crypto';
import { type FilterQuery, type Opt, sql } from '@mikro-orm/core';
import { Entity, PrimaryKey, Property, Unique } from '@mikro-orm/decorators/legacy';
import type { UserRole } from '@aperture/common/roles.js';

/** Usernames are unique whatever their case: `Admin` and `admin` are one name (and look it up with `lower(username)`). */
@Entity({ tableName: 'users' })
@Unique({
  name: 'users_username_lower_unique',
  expression: 'create unique index "users_username_lower_unique" on "users" (lower("username"))',
})
export class User {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @Property({ type: 'string', length: 64, unique: true })
  username!: string;

  @Property({ type: 'string', length: 254, unique: true, nullable: true })
  email: string | null = null;

  @Property({ type: 'string', length: 255, hidden: true })
  passwordHash!: string;

  @Property({ type: 'string', length: 200, nullable: true })
  fullName: string | null = null;

  @Property({ type: 'string', length: 100, nullable: true })
  firstName: string | null = null;

  @Property({ type: 'string', length: 100, nullable: true })
  lastName: string | null = null;

  @Property({ type: 'string', length: 32, nullable: true })
  phone: string | null = null;

  /** ISO date (YYYY-MM-DD). */
  @Property({ type: 'string', length: 10, nullable: true })
  birthDate: string | null = null;

  @Property({ type: 'string', length: 2048, nullable: true })
  pictureUrl: string | null = null;

  /** The Google account linked to this user (OpenID `sub`). */
  @Property({ type: 'string', length: 255, unique: true, nullable: true })
  googleSub: string | null = null;

  /** Bumped by "log out everywhere": access tokens carrying an older version stop working. */
  @Property({ type: 'integer' })
  tokenVersion: number & Opt = 0;

  @Property({ type: 'string', length: 16 })
  role: UserRole & Opt = 'user';

  @Property({ type: 'boolean' })
  disabled: boolean & Opt = false;

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();

  @Property({ type: 'datetime', onUpdate: () => new Date() })
  updatedAt: Date & Opt = new Date();
}

/** The user whose name is `username` in any case (the unique index is on lower(username)). */
export const byUsername = (username: string): FilterQuery<User> =>
  ({ [sql`lower(username)`]: username.toLowerCase() }) as FilterQuery<User>;
