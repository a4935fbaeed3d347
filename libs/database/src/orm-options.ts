import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Options } from '@mikro-orm/core';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { Migrator } from '@mikro-orm/migrations';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { SqliteDriver } from '@mikro-orm/sqlite';
import type { AppConfig } from '@aperture/config/config.js';
import { ENTITIES } from './entities.js';
import { POSTGRESQL_MIGRATIONS } from './migrations/postgresql/index.js';
import { SQLITE_MIGRATIONS } from './migrations/sqlite/index.js';

const MIGRATIONS_TABLE = 'mikro_orm_migrations';

/** Source folder of a dialect's migrations (where `npm run migration:create` writes). */
function migrationsSourceDir(dialect: AppConfig['database']['dialect']): string {
  // This file lives at libs/database/src (source) or dist/libs/database/src (compiled).
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${'/dist/'}`) ? resolve(here, '../../../..') : resolve(here, '../../..');
  return resolve(root, 'libs/database/src/migrations', dialect);
}

/** MikroORM options for the configured database. Schema changes only ever come from migrations. */
export function ormOptions(config: AppConfig): Partial<Options> {
  const common = {
    entities: ENTITIES,
    metadataProvider: ReflectMetadataProvider,
    extensions: [Migrator],
    discovery: { warnWhenNoEntities: true },
    debug: false,
    allowGlobalContext: false,
    forceUtcTimezone: true,
  } satisfies Partial<Options>;
  if (config.database.dialect === 'sqlite') {
    mkdirSync(dirname(config.database.file), { recursive: true });
    return {
      ...common,
      driver: SqliteDriver,
      dbName: config.database.file,
      migrations: {
        tableName: MIGRATIONS_TABLE,
        migrationsList: SQLITE_MIGRATIONS,
        path: migrationsSourceDir('sqlite'),
        emit: 'ts',
        snapshot: false,
        transactional: true,
        allOrNothing: true,
      },
    };
  }
  return {
    ...common,
    driver: PostgreSqlDriver,
    clientUrl: config.database.url,
    pool: { min: 0, max: 10 },
    migrations: {
      tableName: MIGRATIONS_TABLE,
      migrationsList: POSTGRESQL_MIGRATIONS,
      path: migrationsSourceDir('postgresql'),
      emit: 'ts',
      snapshot: false,
      transactional: true,
      allOrNothing: true,
    },
  };
}
