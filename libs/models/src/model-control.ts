import type { Redis } from 'ioredis';
import type { ModelStatus } from './model-status.js';

/**
 * The model control plane between the API and every worker replica, over Redis:
 * - the API publishes load/unload requests on one channel; every worker subscribed to it acts on them;
 * - each worker writes its document (its models' states and statistics) under its own key with a TTL, refreshed by a
 *   heartbeat, and registers itself in a sorted set by last heartbeat; the API reads the live ones.
 * A worker that dies simply stops refreshing and drops out after the TTL.
 */

export interface ControlMessage {
  /** load/unload: a model's sessions; install/remove: a model installed through the API appears or goes (every process). */
  op: 'load' | 'unload' | 'install' | 'remove';
  model: string;
  request_id: string;
}

/** One worker's view of one model, plus the control request it handled last. */
export interface WorkerModelState extends ModelStatus {
  /** The last control request for this model that this worker finished (load or unload), and its outcome. */
  last_request: { id: string; op: ControlMessage['op']; ok: boolean; error: string | null } | null;
}

export interface WorkerDoc {
  worker_id: string;
  hostname: string;
  pid: number;
  started_at: string;
  updated_at: string;
  rss_bytes: number;
  models_memory_bytes: number;
  models: Record<string, WorkerModelState>;
}

export class ModelControlKeys {
  constructor(private readonly prefix: string) {}
  get channel(): string {
    return `${this.prefix}:models:control`;
  }
  get workers(): string {
    return `${this.prefix}:models:workers`;
  }
  worker(id: string): string {
    return `${this.prefix}:models:worker:${id}`;
  }
}

export function parseControlMessage(raw: string): ControlMessage | null {
  try {
    const m = JSON.parse(raw) as Partial<ControlMessage>;
    if (
      (m.op === 'load' || m.op === 'unload' || m.op === 'install' || m.op === 'remove') &&
      typeof m.model === 'string' &&
      typeof m.request_id === 'string'
    ) {
      return { op: m.op, model: m.model, request_id: m.request_id };
    }
  } catch {
    /* not ours */
  }
  return null;
}

/** Writes a worker's document (TTL) and its heartbeat entry. */
export async function writeWorkerDoc(redis: Redis, keys: ModelControlKeys, doc: WorkerDoc, ttlSeconds: number): Promise<void> {
  await redis
    .multi()
    .set(keys.worker(doc.worker_id), JSON.stringify(doc), 'EX', ttlSeconds)
    .zadd(keys.workers, Date.now(), doc.worker_id)
    .exec();
}

export async function removeWorkerDoc(redis: Redis, keys: ModelControlKeys, workerId: string): Promise<void> {
  await redis.multi().del(keys.worker(workerId)).zrem(keys.workers, workerId).exec();
}

/** The documents of the workers alive within the TTL (expired entries are pruned on the way). */
export async function readWorkerDocs(redis: Redis, keys: ModelControlKeys, ttlSeconds: number): Promise<WorkerDoc[]> {
  const since = Date.now() - ttlSeconds * 1000;
  await redis.zremrangebyscore(keys.workers, '-inf', `(${since}`);
  const ids = await redis.zrange(keys.workers, 0, -1);
  if (ids.length === 0) return [];
  const raws = await redis.mget(ids.map((id) => keys.worker(id)));
  const docs: WorkerDoc[] = [];
  for (const raw of raws) {
    if (!raw) continue;
    try {
      docs.push(JSON.parse(raw) as WorkerDoc);
    } catch {
      /* skip a corrupt document */
    }
  }
  return docs.sort((a, b) => a.worker_id.localeCompare(b.worker_id));
}

/** Publishes a control request; resolves to the number of workers subscribed. */
export async function publishControl(redis: Redis, keys: ModelControlKeys, message: ControlMessage): Promise<number> {
  return redis.publish(keys.channel, JSON.stringify(message));
}
