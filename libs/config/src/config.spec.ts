import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_JWT_SECRET, loadConfig } from './config.js';

const problemsOf = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe('loadConfig', () => {
  it('runs on embedded defaults: SQLite under DATA_DIR, local Redis, port 3000', () => {
    const c = loadConfig({ DATA_DIR: '/tmp/aperture-x' });
    expect(c.database).toEqual({
      dialect: 'sqlite',
      file: '/tmp/aperture-x/aperture.sqlite',
      url: 'sqlite:/tmp/aperture-x/aperture.sqlite',
    });
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.port).toBe(3000);
    expect(c.rateLimit).toEqual({ perMinute: 60, perHour: 1000 });
    expect(c.storage.dir).toBe('/tmp/aperture-x/storage');
  });

  it('reads PostgreSQL URLs', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/aperture' }).database).toEqual({
      dialect: 'postgresql',
      url: 'postgres://u:p@db:5432/aperture',
    });
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({
      PORT: 'x',
      REDIS_URL: 'http://nope',
      LOG_LEVEL: 'loud',
      JOB_ATTEMPTS: '0',
      QR_URL_TEMPLATE: 'https://x/',
      ADMIN_USERNAME: 'root',
    });
    expect(problems).toHaveLength(6);
    expect(problems.join('\n')).toMatch(/PORT must be an integer/);
    expect(problems.join('\n')).toMatch(/REDIS_URL must use redis: or rediss:/);
    expect(problems.join('\n')).toMatch(/LOG_LEVEL must be one of/);
    expect(problems.join('\n')).toMatch(/JOB_ATTEMPTS must be between 1 and 20/);
    expect(problems.join('\n')).toMatch(/QR_URL_TEMPLATE must contain the placeholder \{code\}/);
    expect(problems.join('\n')).toMatch(/ADMIN_USERNAME and ADMIN_PASSWORD must be set together/);
  });

  it('refuses a missing, default or short JWT secret in production', () => {
    expect(problemsOf({ NODE_ENV: 'production', CORS_ORIGINS: 'https://a' })).toContain('JWT_SECRET is required in production');
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: DEFAULT_JWT_SECRET })).toContain(
      'JWT_SECRET must not be the default value in production',
    );
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: 'short' })).toContain(
      'JWT_SECRET must be at least 32 characters in production',
    );
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) })).toEqual([]);
  });

  it('allows the development default secret outside production', () => {
    expect(loadConfig({}).jwt.secret).toBe(DEFAULT_JWT_SECRET);
  });
});
