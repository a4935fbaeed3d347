/**
 * Generates a migration for the configured database from the difference between the entities and the
 * schema that the existing migrations produce. Run it once per dialect:
 *   npm run build && DATABASE_URL=sqlite:./tmp/gen.sqlite npm run migration:create -- <name>
 *   npm run build && DATABASE_URL=postgres://postgres@127.0.0.1/gen npm run migration:create -- <name>
 * then add the new class to that dialect's migrations/<dialect>/index.ts.
 */
import 'reflect-metadata';
import { MikroORM } from '@mikro-orm/core';
import { loadConfig } from '@aperture/config/config.js';
import { ormOptions } from './orm-options.js';

const name = process.argv[2] ?? 'change';
const config = loadConfig();
const orm = await MikroORM.init(ormOptions(config));
try {
  await orm.migrator.up();
  const pending = await orm.migrator.getPending();
  if (pending.length > 0) throw new Error('pending migrations remain');
  const result = await orm.migrator.create(undefined, false, false, name);
  if (result.diff.up.length === 0) console.log('No schema changes.');
  else console.log(`Wrote ${result.fileName}`);
} finally {
  await orm.close(true);
}
