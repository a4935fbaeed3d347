import { Injectable } from '@nestjs/common';
import { float32Output } from '@aperture/inference/session-host.js';
import type { DetectedObject } from './detection.pipeline.js';
import type { ModelEntry } from './manifest.js';
import { ModelError } from './model-registry.js';
import { asJobError, type InferenceTiming, ModelRunner, type PhaseMs } from './model-runner.js';

/** Scene classifiers that read the primitives a detector found (the prediction task). */
@Injectable()
export class ClassificationPipeline {
  constructor(private readonly runner: ModelRunner) {}

  /**
   * The scene from the detected primitives: one row per primitive (in the order given: by score), the class one-hot
   * over the classifier's primitive classes followed by the 4 corners normalized by the image size. The classifier
   * must read the detector's classes. Returns null probabilities when there is no primitive (a sequence model has
   * nothing to read). One inference of the classifier in its statistics.
   */
  async classify(
    name: string,
    detectorName: string,
    objects: readonly DetectedObject[],
    width: number,
    height: number,
    timing: InferenceTiming = {},
  ): Promise<{ model: ModelEntry; probs: Float32Array | null } & PhaseMs> {
    const classifier = this.runner.entry(name, ['classifier']);
    const detector = this.runner.entry(detectorName);
    const t0 = performance.now();
    const input = classifier.files[0]?.inputs[0];
    const rowLen = typeof input?.shape[2] === 'number' ? input.shape[2] : 13;
    const nc = rowLen - 8;
    const classes = detector.labels ?? [];
    if (classes.length !== nc) {
      const what = `Classifier ${classifier.name} reads ${nc} primitive classes; detector ${detector.name} has ${classes.length}`;
      throw asJobError(new ModelError(`${what}: they do not go together`));
    }
    if (objects.length === 0) {
      const phases = { preprocessMs: performance.now() - t0, computeMs: 0, postprocessMs: 0 };
      this.runner.record(classifier, timing, phases);
      return { model: classifier, probs: null, ...phases };
    }
    const rows = new Float32Array(objects.length * rowLen);
    objects.forEach((o, i) => {
      const base = i * rowLen;
      rows[base + o.classId] = 1;
      o.corners.forEach(([x, y], k) => {
        rows[base + nc + 2 * k] = x / width;
        rows[base + nc + 2 * k + 1] = y / height;
      });
    });
    const preprocessMs = performance.now() - t0;
    const feeds = { [input?.name ?? 'primitives']: { type: 'float32' as const, dims: [1, objects.length, rowLen], data: rows } };
    const { outputs, computeMs } = await this.runner.run(classifier, 'model', feeds);
    const t1 = performance.now();
    const outName = classifier.files[0]?.outputs[0]?.name ?? 'probs';
    const probs = this.runner.post(classifier, () => {
      const out = float32Output(outputs, outName).data;
      const labels = classifier.labels ?? [];
      if (labels.length && out.length !== labels.length) throw new Error(`output has ${out.length} values for ${labels.length} labels`);
      const sum = out.reduce((a, b) => a + b, 0);
      // Probabilities already (the shipped model softmaxes); logits are softmaxed here.
      if (Math.abs(sum - 1) < 1e-3 && out.every((v) => v >= 0)) return Float32Array.from(out);
      const max = Math.max(...out);
      const e = out.map((v) => Math.exp(v - max));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    });
    const phases = { preprocessMs, computeMs, postprocessMs: performance.now() - t1 };
    this.runner.record(classifier, timing, phases);
    return { model: classifier, probs, ...phases };
  }
}
