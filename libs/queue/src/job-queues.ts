import { getQueueToken } from '@nestjs/bull';
import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Queue } from 'bull';
import { type BullJobData, QUEUES, type QueueName } from './job-registry.js';

/** The Bull queues of the registry (the delivery mechanism for internal workers), looked up once each. */
@Injectable()
export class JobQueues {
  private readonly queues = new Map<QueueName, Queue<BullJobData>>();

  constructor(private readonly moduleRef: ModuleRef) {}

  queue(name: QueueName): Queue<BullJobData> {
    let q = this.queues.get(name);
    if (!q) {
      q = this.moduleRef.get<Queue<BullJobData>>(getQueueToken(name), { strict: false });
      this.queues.set(name, q);
    }
    return q;
  }

  get names(): readonly QueueName[] {
    return QUEUES;
  }
}
