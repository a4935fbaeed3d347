import { Injectable } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, Reflector } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { describe, expect, it } from 'vitest';
import { HandlesJob, type JobContext, type JobHandler } from '@aperture/queue/job-handler.js';
import { ALL_JOB_TYPES, type JobType } from '@aperture/queue/job-registry.js';
import { JobRegistryError, JobRunner } from './job-runner.service.js';
import { QrBatchHandler } from './qr/qr-batch.handler.js';

@Injectable()
@HandlesJob('qr.batch')
class SecondQrHandler implements JobHandler<'qr.batch'> {
  async handle(_ctx: JobContext<'qr.batch'>) {
    return {} as never; // never called: only the registry check runs
  }
}

/** Stands in for the model handler (its real dependencies, the model registry and storage, are not needed here). */
@Injectable()
@HandlesJob('model.infer')
class InferStub implements JobHandler<'model.infer'> {
  async handle(_ctx: JobContext<'model.infer'>) {
    return {} as never;
  }
}

/** Stand-ins for the image-job handlers (their dependencies are not needed to check the registry). */
function stubFor(type: JobType): new () => unknown {
  @Injectable()
  @HandlesJob(type)
  class Stub {
    async handle() {
      return {};
    }
  }
  Object.defineProperty(Stub, 'name', { value: `${type}Stub` });
  return Stub;
}
const IMAGE_JOB_TYPES = [
  'task.predict',
  'task.fragments',
  'project.detect',
  'segment.prompt',
  'segment.auto',
  'image.embedding',
  'segment.objects',
  'booth.xray',
] as const;
const imageJobStubs = IMAGE_JOB_TYPES.map(stubFor);

@Injectable()
@HandlesJob('no.such.type' as JobType)
class UnknownTypeHandler implements JobHandler<'qr.batch'> {
  async handle(_ctx: JobContext<'qr.batch'>) {
    return {} as never; // never called: only the registry check runs
  }
}

async function runnerWith(...providers: (new () => unknown)[]): Promise<JobRunner> {
  const mod = await Test.createTestingModule({ imports: [DiscoveryModule], providers }).compile();
  const never = null as never;
  return new JobRunner(mod.get(DiscoveryService), mod.get(Reflector), never, never, never, never, never, never, never);
}

describe('job registry check at worker boot', () => {
  it('accepts exactly one handler per job type', async () => {
    const runner = await runnerWith(QrBatchHandler, InferStub, ...imageJobStubs);
    expect([...runner.discoverHandlers().keys()].sort()).toEqual([...ALL_JOB_TYPES].sort());
  });

  it('refuses a job type without a handler', async () => {
    const runner = await runnerWith(InferStub, ...imageJobStubs);
    expect(() => runner.discoverHandlers()).toThrow(JobRegistryError);
    expect(() => runner.discoverHandlers()).toThrow(/job type "qr.batch" has no handler/);
  });

  it('refuses two handlers for one type and a handler for an unknown type', async () => {
    const runner = await runnerWith(QrBatchHandler, SecondQrHandler, UnknownTypeHandler, InferStub, ...imageJobStubs);
    expect(() => runner.discoverHandlers()).toThrow(/job type "qr.batch" has two handlers: QrBatchHandler and SecondQrHandler/);
    expect(() => runner.discoverHandlers()).toThrow(/UnknownTypeHandler handles unknown job type "no.such.type"/);
  });
});
