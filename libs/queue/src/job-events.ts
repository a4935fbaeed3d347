import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { FINAL_JOB_STATUSES, type JobStatus } from '@aperture/database/entities/job.entity.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import { CANCEL_CHANNEL } from './job-registry.js';

/** Published (with the job id) once a job's record has reached completed or failed; cancellations go on CANCEL_CHANNEL. */
const FINAL_CHANNEL = 'jobs:final';
const SUBSCRIBE_TIMEOUT_MS = 2000;

/** Tells every API replica that a job's record is final, so requests waiting on it answer at once. */
export async function publishJobFinal(redis: Redis, keys: RedisKeys, jobId: string): Promise<void> {
  await redis.publish(keys.key(FINAL_CHANNEL), jobId);
}

/**
 * Lets a request wait for a job to finish instead of polling: one Redis subscription per process (opened on first
 * use) to the final and cancel channels, and a set of waiters per job id. A waiter is a hint to look again, never
 * the answer: the caller re-reads the record, so a lost message costs at most the wait, never a wrong status.
 */
@Injectable()
export class JobWaiter implements OnModuleDestroy {
  private readonly logger = new Logger(JobWaiter.name);
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscriber: Redis | null = null;
  private subscribing: Promise<void> | null = null;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /**
   * Registers interest in jobId before the caller checks the record (so a finish between the check and the wait is
   * not missed). until(ms) resolves when the job is announced final or ms have passed; always call dispose().
   */
  async watch(jobId: string): Promise<{ until: (ms: number) => Promise<void>; dispose: () => void }> {
    await this.subscribe();
    let wake: () => void = () => undefined;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    let set = this.waiters.get(jobId);
    if (!set) this.waiters.set(jobId, (set = new Set()));
    set.add(wake);
    let timer: NodeJS.Timeout | undefined;
    return {
      until: (ms) => Promise.race([woken, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]),
      dispose: () => {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0 && this.waiters.get(jobId) === set) this.waiters.delete(jobId);
      },
    };
  }

  /**
   * The job as `reload` reads it once it is final, or after waitMs (whichever comes first). `job` is the record as
   * the caller has it; 0 returns it as it is.
   */
  async whenFinal<T extends { id: string; status: JobStatus }>(job: T, waitMs: number, reload: () => Promise<T>): Promise<T> {
    if (waitMs <= 0 || FINAL_JOB_STATUSES.includes(job.status)) return job;
    let watch: Awaited<ReturnType<JobWaiter['watch']>>;
    try {
      watch = await this.watch(job.id);
    } catch (e) {
      this.logger.warn(`Cannot subscribe to job events (${(e as Error).message}); looking again every 250 ms instead`);
      return this.poll(job, waitMs, reload);
    }
    try {
      const now = await reload(); // it may have finished before the subscription
      if (FINAL_JOB_STATUSES.includes(now.status)) return now;
      await watch.until(waitMs);
      return await reload();
    } finally {
      watch.dispose();
    }
  }

  /** Without the subscription (Redis unreachable): re-read the record every 250 ms until it is final or waitMs has passed. */
  private async poll<T extends { id: string; status: JobStatus }>(job: T, waitMs: number, reload: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + waitMs;
    let now = job;
    while (!FINAL_JOB_STATUSES.includes(now.status) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.max(0, deadline - Date.now()))));
      now = await reload();
    }
    return now;
  }

  private subscribe(): Promise<void> {
    this.subscribing ??= (async () => {
      const sub = this.redis.duplicate({ connectionName: 'aperture-job-events' });
      sub.on('message', (_channel: string, jobId: string) => {
        for (const wake of this.waiters.get(jobId) ?? []) wake();
      });
      sub.on('error', (e: Error) => this.logger.warn(`Job event subscription: ${e.message}`));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Redis did not confirm the subscription within ${SUBSCRIBE_TIMEOUT_MS} ms`)),
          SUBSCRIBE_TIMEOUT_MS,
        );
      });
      try {
        await Promise.race([sub.subscribe(this.keys.key(FINAL_CHANNEL), this.keys.key(CANCEL_CHANNEL)), timeout]);
      } catch (e) {
        sub.disconnect();
        throw e;
      } finally {
        clearTimeout(timer);
      }
      this.subscriber = sub;
    })().catch((e: unknown) => {
      this.subscribing = null;
      throw e;
    });
    return this.subscribing;
  }

  async onModuleDestroy(): Promise<void> {
    for (const set of this.waiters.values()) for (const wake of set) wake();
    await this.subscriber?.quit().catch(() => undefined);
  }
}
