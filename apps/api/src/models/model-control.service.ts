import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { ProblemException } from '@aperture/common/problem.js';
import { REDIS } from '@aperture/redis/redis.module.js';
import type { ModelEntry } from '@aperture/models/manifest.js';
import { type ControlMessage, ModelControlKeys, publishControl, readWorkerDocs, type WorkerDoc } from '@aperture/models/model-control.js';
import { type ModelControlResponseDto, ModelWorkerStateDto } from './models.dto.js';

/**
 * The API's end of the model control plane (Redis): the live workers' documents, and load/unload requests
 * published to every worker. It never opens a model.
 */
@Injectable()
export class ModelControlService {
  private readonly keys: ModelControlKeys;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.keys = new ModelControlKeys(config.redis.prefix);
  }

  /** The documents of the workers alive within the state TTL. */
  workers(): Promise<WorkerDoc[]> {
    return readWorkerDocs(this.redis, this.keys, this.config.models.stateTtlSeconds);
  }

  /**
   * Asks every live worker to load or unload the model and waits (up to waitMs) until each has answered.
   * Throws 503 when no worker is running, 422 MODEL_ERROR when a worker could not load it.
   */
  async control(op: ControlMessage['op'], model: ModelEntry, waitMs: number): Promise<ModelControlResponseDto> {
    const name = model.name;
    const before = await this.workers();
    if (before.length === 0) throw noWorker();
    const requestId = randomUUID();
    const receivers = await publishControl(this.redis, this.keys, { op, model: name, request_id: requestId });
    if (receivers === 0) throw noWorker();
    const asked = new Set(before.map((d) => d.worker_id));
    const deadline = Date.now() + waitMs;
    const poll = async (): Promise<{ docs: WorkerDoc[]; settled: boolean }> => {
      const docs = (await this.workers()).filter((d) => asked.has(d.worker_id));
      return { docs, settled: docs.every((d) => d.models[name]?.last_request?.id === requestId) };
    };
    let { docs, settled } = await poll();
    while (!settled && Date.now() < deadline) {
      await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
      ({ docs, settled } = await poll());
    }
    const workers = docs.map((d) => {
      const s = d.models[name];
      const done = s?.last_request?.id === requestId;
      return { ...ModelWorkerStateDto.from(d, s), done, ok: done && s!.last_request!.ok, error: done ? s!.last_request!.error : null };
    });
    const failed = workers.filter((w) => w.done && !w.ok);
    if (settled && failed.length > 0) {
      const detail = `Model ${name} could not be ${op}ed on ${failed.length} of ${workers.length} worker(s): ${failed[0]!.error}`;
      throw new ProblemException(422, 'MODEL_ERROR', detail, { workers });
    }
    return { name, op, request_id: requestId, settled, workers };
  }
}

const noWorker = (): ProblemException =>
  new ProblemException(
    503,
    'SERVICE_UNAVAILABLE',
    'No worker is running to act on the request: start one (npm run start:worker, or npm start for API and worker in one process).',
  );
