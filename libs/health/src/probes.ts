import type { MikroORM } from '@mikro-orm/core';
import type { Queue } from 'bull';
import type { Redis } from 'ioredis';

/** Rejects when p has not settled within ms (a probe must answer even while a dependency hangs). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function probeDatabase(orm: MikroORM): Promise<void> {
  await orm.em.getConnection().execute('select 1');
}

export async function probeRedis(redis: Redis): Promise<void> {
  const pong = await redis.ping();
  if (pong !== 'PONG') throw new Error(`Redis answered ${pong}`);
}

export async function probeQueue(queue: Queue): Promise<Record<string, number>> {
  const counts = await queue.getJobCounts();
  return { ...counts };
}
