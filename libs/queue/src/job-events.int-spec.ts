import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { AppConfig } from '@aperture/config/config.js';
import type { JobStatus } from '@aperture/database/entities/job.entity.js';
import { RedisKeys } from '@aperture/redis/redis.module.js';
import { JobWaiter, publishJobFinal } from './job-events.js';

/** The waiter on the local Redis (as in CI), and on a Redis that does not answer. */
const keysFor = (prefix: string): RedisKeys => new RedisKeys({ redis: { prefix } } as AppConfig);
const job = (status: JobStatus) => ({ id: 'job-1', status });

describe('JobWaiter', () => {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });
  const dead = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => 50 });
  afterAll(() => {
    redis.disconnect();
    dead.disconnect();
  });

  it('answers as soon as the worker announces the job final, well before the wait runs out', async () => {
    const keys = keysFor(`aperture-spec-${process.pid}`);
    const waiter = new JobWaiter(redis, keys);
    let status: JobStatus = 'running';
    let reloads = 0;
    const t0 = Date.now();
    const waiting = waiter.whenFinal(job('running'), 20000, async () => (reloads++, job(status)));
    await new Promise((r) => setTimeout(r, 200));
    status = 'completed';
    await publishJobFinal(redis, keys, 'job-1');
    expect(await waiting).toEqual(job('completed'));
    expect(Date.now() - t0).toBeLessThan(10000);
    expect(reloads).toBe(2); // once after subscribing, once when woken: no polling
    await waiter.onModuleDestroy();
  });

  it('returns the record as it is once the wait runs out, and at once for a final job or wait 0', async () => {
    const waiter = new JobWaiter(redis, keysFor(`aperture-spec-b-${process.pid}`));
    expect(await waiter.whenFinal(job('queued'), 300, async () => job('queued'))).toEqual(job('queued'));
    let reloads = 0;
    expect(await waiter.whenFinal(job('failed'), 5000, async () => (reloads++, job('failed')))).toEqual(job('failed'));
    expect(await waiter.whenFinal(job('queued'), 0, async () => (reloads++, job('completed')))).toEqual(job('queued'));
    expect(reloads).toBe(0);
    await waiter.onModuleDestroy();
  });

  it('waits for every job of a set, reading them once per announcement, and leaves no waiter behind', async () => {
    const keys = keysFor(`aperture-spec-all-${process.pid}`);
    const waiter = new JobWaiter(redis, keys);
    const open = new Set(['a', 'b']);
    const asked: string[][] = [];
    const waiting = waiter.whenAllFinal(['a', 'b', 'a'], 20000, async (ids) => {
      asked.push([...ids]);
      return ids.filter((id) => open.has(id));
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(waiter.watchedJobs()).toBe(2);
    open.delete('a');
    await publishJobFinal(redis, keys, 'a');
    await new Promise((r) => setTimeout(r, 200));
    open.delete('b');
    await publishJobFinal(redis, keys, 'b');
    expect(await waiting).toBe(true);
    expect(asked).toEqual([['a', 'b'], ['a', 'b'], ['b']]); // once at first, then once per announcement: no polling
    expect(waiter.watchedJobs()).toBe(0);
    await waiter.onModuleDestroy();
  });

  it('stops waiting when the signal aborts (the client went away): false, and no waiter left', async () => {
    const waiter = new JobWaiter(redis, keysFor(`aperture-spec-abort-${process.pid}`));
    const abort = new AbortController();
    let reads = 0;
    const waiting = waiter.whenAllFinal(['x'], 60000, async (ids) => (reads++, ids), abort.signal);
    await new Promise((r) => setTimeout(r, 200));
    expect(waiter.watchedJobs()).toBe(1);
    abort.abort();
    expect(await waiting).toBe(false);
    expect(reads).toBe(1);
    expect(waiter.watchedJobs()).toBe(0);
    await waiter.onModuleDestroy();
  });

  it('without Redis it falls back to reading the record every 250 ms', async () => {
    const waiter = new JobWaiter(dead, keysFor('aperture-spec-dead'));
    let reloads = 0;
    const result = await waiter.whenFinal(job('running'), 10000, async () => job(++reloads >= 3 ? 'completed' : 'running'));
    expect(result).toEqual(job('completed'));
    expect(reloads).toBe(3);
    await waiter.onModuleDestroy();
  });
});
