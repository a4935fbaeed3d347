import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

export type Env = Record<string, string>;

/**
 * Environment for an app under test: the run's PostgreSQL database (or SQLite when asked), its own Redis
 * sub-prefix and data directory, quiet logs and limits high enough not to interfere (the rate-limit test sets its own).
 */
export function testEnv(name: string, overrides: Env = {}): Env {
  const dataDir = join(inject('runDir'), `${name}-${randomBytes(3).toString('hex')}`);
  mkdirSync(dataDir, { recursive: true });
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: inject('databaseUrl'),
    REDIS_URL: inject('redisUrl'),
    REDIS_PREFIX: `${inject('redisPrefix')}-${name}`,
    DATA_DIR: dataDir,
    JWT_SECRET: 'test-secret-that-is-long-enough-0123456789',
    RATE_LIMIT_PER_MINUTE: '100000',
    RATE_LIMIT_PER_HOUR: '1000000',
    BAD_CREDENTIALS_PER_MINUTE: '100000',
    JOB_BACKOFF_MS: '200',
    ...overrides,
  };
}

/** Replaces process.env entries for an in-process app (each test file runs in its own worker). */
export function applyEnv(env: Env): void {
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
}
