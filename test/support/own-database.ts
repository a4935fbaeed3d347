import pg from 'pg';
import { inject } from 'vitest';

/**
 * A PostgreSQL database of one test file's own, on the run's server, for state that would leak into the other files
 * of the run through the shared database (installed models: every app of the run would list them at boot). Returns
 * its URL and its removal.
 */
export async function ownDatabase(name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const runUrl = new URL(inject('databaseUrl'));
  const dbName = `${runUrl.pathname.slice(1)}_${name}`;
  const adminUrl = new URL(process.env.PG_ADMIN_URL ?? runUrl.toString());
  if (!process.env.PG_ADMIN_URL) adminUrl.pathname = '/postgres';
  const query = async (sql: string): Promise<void> => {
    const c = new pg.Client({ connectionString: adminUrl.toString() });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await query(`create database "${dbName}"`);
  const url = new URL(runUrl.toString());
  url.pathname = `/${dbName}`;
  return { url: url.toString(), drop: () => query(`drop database if exists "${dbName}" with (force)`) };
}
