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
 * Lets a request wait for jobs to finish instead of polling: one Redis subscription per process (opened on first use)
 * to the final and cancel channels, and a set of waiters per job id. A waiter is a hint to look again, never the
 * answer: the caller re-reads the records, so a lost message costs at most the wait, never a wrong status.
 */
@Injectable()
export class JobWaiter implements OnModuleDestroy {
  private readonly logger = new Logger(JobWaiter.name);
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscriber: Redis | null = null;
  private subscribing: Promise<void> | null = null;
  private closing = false;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /**
   * The job as `reload` reads it once it is final, or after waitMs, or once signal aborts (whichever comes first).
   * `job` is the record as the caller has it; 0 (or a final job) returns it as it is.
   */
  async whenFinal<T extends { id: string; status: JobStatus }>(
    job: T,
    waitMs: number,
    reload: () => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    if (waitMs <= 0 || FINAL_JOB_STATUSES.includes(job.status)) return job;
    let now = job;
    await this.whenAllFinal(
      [job.id],
      waitMs,
      async () => {
        now = await reload();
        return FINAL_JOB_STATUSES.includes(now.status) ? [] : [now.id];
      },
      signal,
    );
    return now;
  }

  /**
   * Waits until every job of ids is final, as `unfinished` reads them (it answers which of the ids it is given are
   * still queued or running), for at most waitMs, and no longer once signal aborts (the client went away) or the
   * process shuts down. True when all are final. The records are read once before waiting and once per announcement,
   * never on a timer; no timer, listener or waiter outlives the call.
   */
  async whenAllFinal(
    ids: readonly string[],
    waitMs: number,
    unfinished: (ids: string[]) => Promise<string[]>,
    signal?: AbortSignal,
  ): Promise<boolean> {
    let left = [...new Set(ids)];
    if (left.length === 0) return true;
    if (waitMs <= 0 || signal?.aborted || this.closing) return (await unfinished(left)).length === 0;
    const deadline = Date.now() + waitMs;
    try {
      await this.subscribe();
    } catch (e) {
      this.logger.warn(`Cannot subscribe to job events (${(e as Error).message}); looking again every 250 ms instead`);
      return this.poll(left, deadline, unfinished, signal);
    }
    let dirty: boolean;
    let wake: () => void = () => undefined;
    const onEvent = (): void => {
      dirty = true;
      wake();
    };
    const onAbort = (): void => wake();
    // Registered before the first read, so a job that finishes between the read and the wait is not missed.
    const sets = left.map((id) => {
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      set.add(onEvent);
      return [id, set] as const;
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      for (;;) {
        dirty = false;
        left = await unfinished(left);
        if (left.length === 0) return true;
        const ms = deadline - Date.now();
        if (ms <= 0 || signal?.aborted || this.closing) return false;
        if (dirty) continue; // announced while we were reading: read again at once
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, ms);
        });
        clearTimeout(timer);
        if (signal?.aborted || this.closing) return false; // nobody to answer, or the process is going: no more reads
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      for (const [id, set] of sets) {
        set.delete(onEvent);
        if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
      }
    }
  }

  /** How many jobs requests are waiting on now (each counted once). */
  watchedJobs(): number {
    return this.waiters.size;
  }

  /** Without the subscription (Redis unreachable): re-read the records every 250 ms until final, the deadline or abort. */
  private async poll(
    ids: string[],
    deadline: number,
    unfinished: (ids: string[]) => Promise<string[]>,
    signal?: AbortSignal,
  ): Promise<boolean> {
    let left = ids;
    for (;;) {
      left = await unfinished(left);
      if (left.length === 0) return true;
      if (Date.now() >= deadline || signal?.aborted || this.closing) return false;
      await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.max(0, deadline - Date.now()))));
    }
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
    this.closing = true;
    for (const set of this.waiters.values()) for (const wake of set) wake();
    await this.subscriber?.quit().catch(() => undefined);
  }
}
