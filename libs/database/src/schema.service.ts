import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { MikroORM } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import { withRedisLock } from '@aperture/redis/redis-lock.js';

/** Applies migrations (under a cluster-wide lock) or waits until another process has applied them. */
@Injectable()
export class SchemaService {
  private readonly logger = new Logger('Schema');
  private current = false;

  constructor(
    private readonly orm: MikroORM,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** Applies pending migrations. Two processes never race: the second waits for the lock, then finds nothing pending. */
  async migrate(lockWaitMs = 120000): Promise<string[]> {
    return withRedisLock(this.redis, this.keys.key('lock', 'migrations'), lockWaitMs, async () => {
      const applied = await this.orm.migrator.up();
      const names = applied.map((m) => m.name);
      if (names.length > 0) this.logger.log(`Applied migrations: ${names.join(', ')}`);
      this.current = true;
      return names;
    });
  }

  /** Polls until no migration is pending (the worker never migrates). */
  async waitUntilCurrent(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let logged = false;
    for (;;) {
      try {
        if ((await this.orm.migrator.getPending()).length === 0) {
          this.current = true;
          return;
        }
      } catch (err) {
        if (!logged) this.logger.warn(`Schema not readable yet: ${(err as Error).message}`);
      }
      if (!logged) {
        this.logger.log('Waiting for the API to apply database migrations…');
        logged = true;
      }
      if (Date.now() > deadline) throw new Error(`Database schema still not current after ${timeoutMs} ms`);
      await sleep(500);
    }
  }

  /** True when no migration is pending (checked against the database, cached once true). */
  async isCurrent(): Promise<boolean> {
    if (this.current) return true;
    try {
      this.current = (await this.orm.migrator.getPending()).length === 0;
    } catch {
      this.current = false;
    }
    return this.current;
  }
}
