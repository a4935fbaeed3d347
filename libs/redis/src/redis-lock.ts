import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * Runs fn while holding a Redis lock (SET NX PX, renewed while held, released only by its owner).
 * Waits up to waitMs for the lock.
 */
export async function withRedisLock<T>(redis: Redis, key: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const token = randomUUID();
  const ttl = 30000;
  const deadline = Date.now() + waitMs;
  while ((await redis.set(key, token, 'PX', ttl, 'NX')) !== 'OK') {
    if (Date.now() > deadline) throw new Error(`Timed out after ${waitMs} ms waiting for lock ${key}`);
    await sleep(250);
  }
  const renew = setInterval(() => void redis.eval(EXTEND, 1, key, token, String(ttl)).catch(() => undefined), ttl / 3);
  try {
    return await fn();
  } finally {
    clearInterval(renew);
    await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
  }
}
