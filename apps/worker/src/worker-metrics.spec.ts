import { describe, expect, it } from 'vitest';
import { METRIC, Metrics } from '@aperture/metrics/metrics.js';
import { loadManifest } from '@aperture/models/manifest.js';
import { ModelRegistry } from '@aperture/models/model-registry.js';
import type { SessionHost } from '@aperture/inference/session-host.js';
import { parseExposition } from '@test/support/prometheus.js';
import type { ModelAgent } from './models/model-agent.service.js';
import { WorkerMetrics } from './worker-metrics.service.js';

/** The shipped manifest's registry; record() needs no session, so no host is started. */
function setup() {
  const registry = new ModelRegistry(loadManifest(), null as unknown as SessionHost, { dir: '' });
  const metrics = new Metrics();
  const worker = new WorkerMetrics(metrics, { registry } as unknown as ModelAgent);
  worker.onModuleInit();
  const scrape = async () => parseExposition(await metrics.text());
  return { registry, metrics, worker, scrape };
}

describe('WorkerMetrics', () => {
  it('records each attempt once, with its queue wait and outcome', async () => {
    const { worker, scrape } = setup();
    const queuedAt = new Date('2026-01-01T00:00:00Z');
    const job = { type: 'qr.batch' as const, queuedAt, startedAt: new Date(queuedAt.getTime() + 1500) };
    const end = worker.jobStarted(job);
    end('retried');
    end('completed'); // ignored: one outcome per attempt
    worker.jobStarted({ ...job, startedAt: new Date(queuedAt.getTime() + 250) })('failed');
    const m = await scrape();
    expect(m.value(`${METRIC.jobQueueWait}_count`, { type: 'qr.batch' })).toBe(2);
    expect(m.value(`${METRIC.jobQueueWait}_sum`, { type: 'qr.batch' })).toBeCloseTo(1.75, 9);
    expect(m.value(`${METRIC.jobQueueWait}_bucket`, { type: 'qr.batch', le: '0.25' })).toBe(1);
    expect(m.value(`${METRIC.jobDuration}_count`, { type: 'qr.batch', outcome: 'retried' })).toBe(1);
    expect(m.value(`${METRIC.jobDuration}_count`, { type: 'qr.batch', outcome: 'failed' })).toBe(1);
    expect(m.value(`${METRIC.jobDuration}_count`, { type: 'qr.batch', outcome: 'completed' })).toBeUndefined();
  });

  it('turns the registry’s inference records into counts and phase times, decode apart from pre-processing', async () => {
    const { registry, scrape } = setup();
    // As ModelRunner records it: preprocessMs includes the decode.
    registry.record('xray', { totalMs: 40, queueMs: 5, decodeMs: 12, preprocessMs: 15, computeMs: 20, postprocessMs: 5 });
    const m = await scrape();
    expect(m.value(METRIC.modelInferences, { model: 'xray', outcome: 'success' })).toBe(1);
    const phase = (p: string) => m.value(`${METRIC.modelPhase}_sum`, { model: 'xray', phase: p });
    expect(phase('queue')).toBeCloseTo(0.005, 9);
    expect(phase('decode')).toBeCloseTo(0.012, 9);
    expect(phase('preprocess')).toBeCloseTo(0.003, 9);
    expect(phase('run')).toBeCloseTo(0.02, 9);
    expect(phase('postprocess')).toBeCloseTo(0.005, 9);
    // The registry's own statistics are unchanged: decode still counts as pre-processing there.
    expect(registry.status('xray').stats.preprocess).toEqual({ count: 1, total_ms: 15 });
  });
});
