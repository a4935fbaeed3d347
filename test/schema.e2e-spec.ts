import { join } from 'node:path';
import { MikroORM } from '@mikro-orm/core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@aperture/config/config.js';
import { ormOptions } from '@aperture/database/orm-options.js';
import { testEnv } from './support/env.js';

/** The committed migrations, applied to an empty database, produce exactly the schema the entities describe. */
describe('migrations match the entities', () => {
  for (const dialect of ['postgresql', 'sqlite'] as const) {
    it(`on ${dialect}`, async () => {
      const env = testEnv(`schema-${dialect}`);
      let url = env.DATABASE_URL!;
      if (dialect === 'sqlite') url = `sqlite:${join(env.DATA_DIR!, 'schema.sqlite')}`;
      else {
        // A database of its own, so the other suites' state does not matter.
        const pg = await import('pg');
        const admin = new pg.default.Client({ connectionString: url });
        await admin.connect();
        const name = `${new URL(url).pathname.slice(1)}_schema`;
        await admin.query(`drop database if exists "${name}"`);
        await admin.query(`create database "${name}"`);
        await admin.end();
        const u = new URL(url);
        u.pathname = `/${name}`;
        url = u.toString();
      }
      const orm = await MikroORM.init(ormOptions(loadConfig({ ...env, DATABASE_URL: url })));
      try {
        const applied = await orm.migrator.up();
        expect(applied.length).toBeGreaterThan(0);
        const diff = await orm.schema.getUpdateSchemaSQL({ wrap: false });
        expect(diff.trim()).toBe('');
      } finally {
        await orm.close(true);
        if (dialect === 'postgresql') {
          const pg = await import('pg');
          const admin = new pg.default.Client({ connectionString: env.DATABASE_URL });
          await admin.connect();
          await admin.query(`drop database if exists "${new URL(url).pathname.slice(1)}" with (force)`);
          await admin.end();
        }
      }
    });
  }
});
