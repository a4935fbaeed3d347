/** `npm run migrate`: applies pending migrations to the configured database, under the same lock as the API. */
import 'reflect-metadata';
import { MikroORM } from '@mikro-orm/core';
import { ConfigError, loadConfig } from '@aperture/config/config.js';
import { createRedis } from '@aperture/redis/redis.module.js';
import { withRedisLock } from '@aperture/redis/redis-lock.js';
import { ormOptions } from './orm-options.js';

try {
  const config = loadConfig();
  const redis = createRedis(config.redis.url, 'aperture-migrate');
  const orm = await MikroORM.init(ormOptions(config));
  try {
    const applied = await withRedisLock(redis, `${config.redis.prefix}:lock:migrations`, 120000, () => orm.migrator.up());
    console.log(applied.length ? `Applied: ${applied.map((m) => m.name).join(', ')}` : 'Database schema is up to date.');
  } finally {
    await orm.close(true);
    redis.disconnect();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
