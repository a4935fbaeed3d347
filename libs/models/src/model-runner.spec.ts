import { describe, expect, it } from 'vitest';
import type { InputTensor, OutputTensor } from '@aperture/inference/session-types.js';
import { PermanentJobError } from '@aperture/queue/job-handler.js';
import { DetectionPipeline } from './detection.pipeline.js';
import type { ModelEntry } from './manifest.js';
import type { SessionHost } from '@aperture/inference/session-host.js';
import { ModelError, ModelRegistry, type PhaseTimings, UnknownModelError } from './model-registry.js';
import { ModelRunner } from './model-runner.js';

/** A registry of one detector whose runs answer what the test says; records what the pipelines record. */
class FakeRegistry {
  readonly records: (PhaseTimings & { totalMs: number; name: string })[] = [];
  runs = 0;
  constructor(
    private readonly models: ModelEntry[],
    private readonly answer: () => Record<string, OutputTensor>,
  ) {}

  model(name: string): ModelEntry {
    const m = this.models.find((x) => x.name === name);
    if (!m) throw new UnknownModelError(name);
    return m;
  }

  async resolve(name: string): Promise<ModelEntry> {
    return this.model(name);
  }

  async run(
    name: string,
    _role: string,
    _inputs: Record<string, InputTensor>,
  ): Promise<{ outputs: Record<string, OutputTensor>; computeMs: number; generation: number }> {
    this.runs++;
    this.model(name);
    return { outputs: this.answer(), computeMs: 7, generation: 1 };
  }

  record(name: string, t: PhaseTimings & { totalMs: number }): void {
    this.records.push({ name, ...t });
  }
}

const detector = {
  name: 'det',
  kind: 'detector',
  contract: 'ultralytics-detect',
  labels: ['a', 'b'],
  input_size: [32, 32],
} as unknown as ModelEntry;
const classifier = { name: 'cls', kind: 'classifier', contract: 'scene-sequence', labels: ['x'] } as unknown as ModelEntry;
const img = { data: new Uint8Array(16 * 8 * 3).fill(128), width: 16, height: 8, channels: 3 } as const;

/** YOLO detect output [1, 4 + nc, anchors] with one confident box of class 1 at the centre of the 32×32 input. */
function oneBox(): Record<string, OutputTensor> {
  const anchors = 3;
  const data = new Float32Array(6 * anchors);
  const set = (row: number, v: number): void => void (data[row * anchors] = v);
  set(0, 16);
  set(1, 16);
  set(2, 8);
  set(3, 4);
  set(5, 0.9);
  return { output0: { type: 'float32', dims: [1, 6, anchors], data } as OutputTensor };
}

function setup(answer: () => Record<string, OutputTensor> = oneBox) {
  const registry = new FakeRegistry([detector, classifier], answer);
  const runner = new ModelRunner(registry as unknown as ModelRegistry);
  return { registry, runner, detection: new DetectionPipeline(runner) };
}

describe('ModelRunner and the pipelines on it', () => {
  it('records one inference per call: queue, decode as pre-processing, and the total of the phases', async () => {
    const { registry, detection } = setup();
    const det = await detection.detect('det', img, { conf: 0.5 }, { queueMs: 3, decodeMs: 100 });
    expect(det.objects.map((o) => o.label)).toEqual(['b']);
    expect(det.computeMs).toBe(7);
    expect(registry.records).toHaveLength(1);
    const r = registry.records[0]!;
    expect(r).toMatchObject({ name: 'det', queueMs: 3 });
    expect(r.preprocessMs).toBeCloseTo(100 + det.preprocessMs, 9);
    expect(r.postprocessMs).toBe(det.postprocessMs);
    expect(r.totalMs).toBeCloseTo(100 + det.preprocessMs + 7 + det.postprocessMs, 9);
  });

  it('maps model errors to permanent job errors and records no success', async () => {
    const broken = setup(() => {
      throw new ModelError('Model det (model) failed to run: boom');
    });
    await expect(broken.detection.detect('det', img, {})).rejects.toThrow(new PermanentJobError('Model det (model) failed to run: boom'));
    expect(broken.registry.records).toHaveLength(0);

    const misfit = setup(() => ({ output1: { type: 'float32', dims: [1], data: new Float32Array(1) } as OutputTensor }));
    const err = await misfit.detection.detect('det', img, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentJobError);
    expect((err as Error).message).toMatch(/^Model det: Output output0 is missing/);
    expect(misfit.registry.records).toHaveLength(0);
  });

  it('refuses unknown models and models of another kind before running them', async () => {
    const { registry, runner, detection } = setup();
    expect(() => runner.entry('nope')).toThrow(new PermanentJobError('Model nope does not exist.'));
    const wrongKind = new PermanentJobError('Model cls is a classifier; expected detector or segmenter');
    await expect(detection.detect('cls', img, {})).rejects.toThrow(wrongKind);
    await expect(detection.segmentInstances('det', img, {})).rejects.toThrow(PermanentJobError);
    expect(registry.runs).toBe(0);
  });

  it('fetches a model the registry lacks through fetchMissing before refusing it (a missed install announcement)', async () => {
    const asked: string[] = [];
    const registry: ModelRegistry = new ModelRegistry({ version: 1, total_size_bytes: 0, models: [] }, {} as SessionHost, {
      dir: '/',
      fetchMissing: async (name) => {
        asked.push(name);
        if (name === 'det') registry.add(detector);
      },
    });
    const runner = new ModelRunner(registry);
    expect(() => runner.entry('det')).toThrow(PermanentJobError);
    await expect(runner.resolve('det', ['detector'])).resolves.toBe(detector);
    await expect(runner.resolve('det')).resolves.toBe(detector);
    expect(asked).toEqual(['det']);
    await expect(runner.resolve('nope')).rejects.toThrow(new PermanentJobError('Model nope does not exist.'));
    await expect(runner.resolve('det', ['classifier'])).rejects.toThrow(/is a detector; expected classifier/);
    expect(asked).toEqual(['det', 'nope']);
  });
});
