import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MikroORM } from '@mikro-orm/core';
import type { ModuleRef } from '@nestjs/core';
import { getQueueToken } from '@nestjs/bull';
import Bull, { type Queue } from 'bull';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AppConfig, loadConfig } from '@aperture/config/config.js';
import { Job, JobArtifact } from '@aperture/database/entities/job.entity.js';
import { ormOptions } from '@aperture/database/orm-options.js';
import { RedisKeys } from '@aperture/redis/redis.module.js';
import { withRedisLock } from '@aperture/redis/redis-lock.js';
import { LocalDiskStorage } from '@aperture/storage/local-disk.storage.js';
import { JobLeaseLostError } from './job-handler.js';
import { type JobAttempt, JobLifecycle } from './job-lifecycle.js';
import { JobQueues } from './job-queues.js';
import { type BullJobData, QUEUES } from './job-registry.js';

// What test/support/global-setup.ts provides (declared here too: `npm run build` compiles this file without test/).
declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisPrefix: string;
    redisUrl: string;
  }
}

/**
 * The job lifecycle's guarded transitions on both databases it supports: the run's PostgreSQL database (schema from
 * the app's migrations) and a temporary SQLite file; Bull on the real Redis under a prefix of this file's own.
 */
const dialects = [
  { dialect: 'postgresql', url: () => inject('databaseUrl') },
  { dialect: 'sqlite', url: (dir: string) => `sqlite:${join(dir, 'lifecycle.sqlite')}` },
] as const;

describe.each(dialects)('JobLifecycle on $dialect', ({ dialect, url }) => {
  const dir = mkdtempSync(join(tmpdir(), `aperture-lifecycle-${dialect}-`));
  const prefix = `${inject('redisPrefix')}-lifecycle-${dialect}-${randomBytes(3).toString('hex')}`;
  const config: AppConfig = loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dir,
    DATABASE_URL: url(dir),
    REDIS_URL: inject('redisUrl'),
    REDIS_PREFIX: prefix,
    JOB_BACKOFF_MS: '200',
  });
  const redis = new Redis(config.redis.url, { maxRetriesPerRequest: 2 });
  const storage = new LocalDiskStorage(join(dir, 'storage'));
  const bull = new Map<string, Queue<BullJobData>>(
    QUEUES.map((name) => [getQueueToken(name), new Bull<BullJobData>(name, config.redis.url, { prefix: `${prefix}:bull` })]),
  );
  const queues = new JobQueues({ get: (token: string) => bull.get(token) } as unknown as ModuleRef);
  let orm: MikroORM;
  let lifecycle: JobLifecycle;

  beforeAll(async () => {
    orm = await MikroORM.init(ormOptions(config));
    // As the API does: migrations under a lock (other suites may migrate the run's PostgreSQL database too).
    await withRedisLock(redis, `${inject('redisPrefix')}:lock:migrations`, 60000, () => orm.migrator.up());
    lifecycle = new JobLifecycle(orm, queues, config, redis, new RedisKeys(config), storage);
  });

  afterAll(async () => {
    for (const q of bull.values()) await q.close();
    await orm?.close(true);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  async function newJob(
    fields: Partial<Pick<Job, 'status' | 'attempts' | 'maxAttempts' | 'queuedAt' | 'leaseExpiresAt'>> = {},
  ): Promise<Job> {
    const em = orm.em.fork();
    const job = em.create(Job, { type: 'qr.batch', owner: null, params: { batchId: 'none' }, maxAttempts: 3, ...fields });
    await em.flush();
    return job;
  }

  const reload = (id: string) => orm.em.fork().findOneOrFail(Job, { id });
  const artifactsOf = (id: string) => orm.em.fork().find(JobArtifact, { job: id }, { orderBy: { attempt: 'asc' } });

  async function claimed(jobId: string, owner: string, leaseMs = 60000): Promise<{ attempt: JobAttempt; job: Job }> {
    const r = await lifecycle.claim(orm.em.fork(), jobId, { owner, leaseMs });
    if (r.kind !== 'claimed') throw new Error(`expected ${owner} to claim ${jobId}, got ${r.kind}`);
    return r;
  }

  it('a cancel that lands first wins: the job is never claimed, and a running attempt cannot complete it', async () => {
    const queued = await newJob();
    expect(await lifecycle.cancel(orm.em.fork(), queued)).toBe(true);
    expect(await lifecycle.claim(orm.em.fork(), queued.id, { owner: 'w1', leaseMs: 60000 })).toEqual({
      kind: 'final',
      status: 'cancelled',
    });
    expect(await reload(queued.id)).toMatchObject({ status: 'cancelled', attempts: 0, leaseOwner: null });

    const running = await newJob();
    const { attempt } = await claimed(running.id, 'w1');
    expect(await lifecycle.cancel(orm.em.fork(), await reload(running.id))).toBe(true);
    expect(await lifecycle.renew(attempt, 0.5)).toBe(false);
    expect(await lifecycle.complete(attempt, { done: true })).toBe(false);
    expect(await lifecycle.fail(attempt, 'boom')).toBe('stale');
    expect(await reload(running.id)).toMatchObject({ status: 'cancelled', result: null, attempts: 1 });
    expect(await lifecycle.cancel(orm.em.fork(), await reload(running.id))).toBe(false);
  });

  it('a stale attempt cannot save or complete; its files go, the current attempt keeps its own', async () => {
    const job = await newJob();
    const first = await claimed(job.id, 'stalled-worker', 50);
    const em1 = orm.em.fork();
    const early = await lifecycle.saveArtifact(
      em1,
      first.attempt,
      await em1.findOneOrFail(Job, { id: job.id }),
      'a.txt',
      'text/plain',
      Buffer.from('first'),
    );
    expect(early.storageKey).toMatch(new RegExp(`^jobs/${job.id}/attempt-1/`));
    expect(await lifecycle.claim(orm.em.fork(), job.id, { owner: 'other', leaseMs: 60000 })).toMatchObject({ kind: 'busy' });
    await sleep(80); // the first attempt's lease expires: it is taken over
    const second = await claimed(job.id, 'second-worker');
    expect(second.attempt.attempt).toBe(2);
    const em2 = orm.em.fork();
    const kept = await lifecycle.saveArtifact(em2, second.attempt, second.job, 'a.txt', 'text/plain', Buffer.from('second'));
    expect(kept.storageKey).toMatch(new RegExp(`^jobs/${job.id}/attempt-2/`));

    // The stalled run wakes up: everything it tries now affects nothing, and it cleans up only after itself.
    expect(await lifecycle.renew(first.attempt, 0.9)).toBe(false);
    await expect(
      lifecycle.saveArtifact(em1, first.attempt, await em1.findOneOrFail(Job, { id: job.id }), 'b.txt', 'text/plain', Buffer.from('late')),
    ).rejects.toBeInstanceOf(JobLeaseLostError);
    expect(await lifecycle.complete(first.attempt, { by: 'first' })).toBe(false);
    expect(await storage.exists(early.storageKey)).toBe(false);
    expect(await storage.exists(kept.storageKey)).toBe(true);

    expect(await lifecycle.complete(second.attempt, { by: 'second' })).toBe(true);
    expect(await reload(job.id)).toMatchObject({
      status: 'completed',
      attempts: 2,
      result: { by: 'second' },
      progress: 1,
      leaseOwner: null,
    });
    const arts = await artifactsOf(job.id);
    expect(arts.map((a) => [a.id, a.attempt])).toEqual([[kept.id, 2]]);
    expect(await storage.exists(kept.storageKey)).toBe(true);
    expect(await lifecycle.complete(first.attempt, { by: 'first' })).toBe(false); // once more, after the winner
    expect(await storage.exists(kept.storageKey)).toBe(true);
    expect((await artifactsOf(job.id)).map((a) => a.id)).toEqual([kept.id]);
  });

  it('completing attempt n removes the artifacts another attempt left behind', async () => {
    const job = await newJob();
    const first = await claimed(job.id, 'w1');
    const em1 = orm.em.fork();
    const left = await lifecycle.saveArtifact(
      em1,
      first.attempt,
      await em1.findOneOrFail(Job, { id: job.id }),
      'x',
      'text/plain',
      Buffer.from('1'),
    );
    expect(await lifecycle.fail(first.attempt, 'transient')).toBe('retry');
    expect(await storage.exists(left.storageKey)).toBe(false); // a retried attempt's files go with it
    expect(await reload(job.id)).toMatchObject({ status: 'queued', attempts: 1, error: 'transient' });
    const second = await claimed(job.id, 'w2');
    expect(await lifecycle.complete(second.attempt, {})).toBe(true);
    const third = await lifecycle.claim(orm.em.fork(), job.id, { owner: 'w3', leaseMs: 60000 });
    expect(third).toEqual({ kind: 'final', status: 'completed' });
  });

  it('two claimers race: exactly one wins', async () => {
    for (let round = 0; round < 5; round++) {
      const job = await newJob();
      const results = await Promise.all(
        ['a', 'b', 'c'].map((owner) => lifecycle.claim(orm.em.fork(), job.id, { owner: `${owner}-${round}`, leaseMs: 60000 })),
      );
      const winners = results.filter((r) => r.kind === 'claimed');
      expect(winners, JSON.stringify(results.map((r) => r.kind))).toHaveLength(1);
      expect(results.filter((r) => r.kind === 'busy')).toHaveLength(2);
      const row = await reload(job.id);
      expect(row).toMatchObject({ status: 'running', attempts: 1 });
      expect(winners[0]!.kind === 'claimed' && winners[0]!.attempt.owner).toBe(row.leaseOwner);
    }
  });

  it('the sweeper re-enqueues a queued row with no Bull job and resolves running rows whose Bull job is gone', async () => {
    const q = queues.queue('default');
    const old = new Date(Date.now() - 60000);
    const orphan = await newJob({ queuedAt: old });
    const fresh = await newJob(); // just committed: its enqueue may be on its way
    const withRetries = await newJob({
      status: 'running',
      attempts: 1,
      maxAttempts: 3,
      queuedAt: old,
      leaseExpiresAt: new Date(Date.now() - 1000),
    });
    const exhausted = await newJob({
      status: 'running',
      attempts: 3,
      maxAttempts: 3,
      queuedAt: old,
      leaseExpiresAt: new Date(Date.now() - 1000),
    });
    const leased = await newJob({ status: 'running', attempts: 1, queuedAt: old, leaseExpiresAt: new Date(Date.now() + 60000) });
    const delivered = await newJob({ status: 'running', attempts: 1, queuedAt: old, leaseExpiresAt: new Date(Date.now() - 1000) });
    await lifecycle.enqueue(delivered); // still in Bull: Bull's stalled check and the claim's takeover deal with it

    const report = await lifecycle.sweep({ queuedGraceMs: 10000 });
    expect(await q.getJob(orphan.id)).not.toBeNull();
    expect(await q.getJob(fresh.id)).toBeNull();
    expect(await reload(withRetries.id)).toMatchObject({ status: 'queued', attempts: 1, leaseOwner: null, leaseExpiresAt: null });
    expect(await q.getJob(withRetries.id)).not.toBeNull();
    expect(await reload(exhausted.id)).toMatchObject({ status: 'failed', attempts: 3 });
    expect((await reload(exhausted.id)).error).toMatch(/lease expired/);
    expect(await q.getJob(exhausted.id)).toBeNull();
    expect(await reload(leased.id)).toMatchObject({ status: 'running' });
    expect(await q.getJob(leased.id)).toBeNull();
    expect(await reload(delivered.id)).toMatchObject({ status: 'running', attempts: 1 });
    expect(report).toMatchObject({ enqueued: expect.any(Number), requeued: expect.any(Number), failed: expect.any(Number) });
    expect(report.requeued).toBeGreaterThanOrEqual(1);
    expect(report.failed).toBeGreaterThanOrEqual(1);

    // A second sweep finds nothing more to do for these rows.
    await lifecycle.sweep({ queuedGraceMs: 10000 });
    expect(await reload(withRetries.id)).toMatchObject({ status: 'queued', attempts: 1 });
    expect(await reload(exhausted.id)).toMatchObject({ status: 'failed' });

    // The re-queued job is claimed as its next attempt.
    const next = await claimed(withRetries.id, 'w');
    expect(next.attempt.attempt).toBe(2);
  });

  it('a Bull job that Bull gave up on (failed) does not keep a queued row waiting', async () => {
    const q = queues.queue('inference'); // empty so far: the job below is the next one
    const em = orm.em.fork();
    const job = em.create(Job, { type: 'model.infer', params: {}, maxAttempts: 3, queuedAt: new Date(Date.now() - 60000) });
    await em.flush();
    await lifecycle.enqueue(job);
    const taken = (await q.getNextJob())!; // as a worker would, then Bull gives up on it (e.g. stalled too often)
    expect(taken.id).toBe(job.id);
    await taken.discard();
    await taken.moveToFailed({ message: 'job stalled more than allowable limit' });
    expect(await (await q.getJob(job.id))!.getState()).toBe('failed');
    await lifecycle.sweep({ queuedGraceMs: 10000 });
    expect(await (await q.getJob(job.id))!.getState()).toBe('waiting');
  });
});
