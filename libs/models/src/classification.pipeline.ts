import { Injectable } from '@nestjs/common';
import { type ImageInput, imageSource } from '@aperture/imaging/decode.js';
import { classifyPreprocessImage } from '@aperture/inference/preprocess.js';
import { float32Output } from '@aperture/inference/session-host.js';
import type { DetectedObject } from './detection.pipeline.js';
import type { ModelEntry } from './manifest.js';
import { ModelError } from './model-registry.js';
import { asJobError, type InferenceTiming, ModelRunner, type PhaseMs } from './model-runner.js';
import { applyPreprocessOverrides } from './preprocess-overrides.js';

/** Probabilities from a classifier's output: as they are when they already sum to 1, else softmaxed (logits). */
function probabilities(out: ArrayLike<number>): Float32Array {
  const values = Float32Array.from(out);
  const sum = values.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) < 1e-3 && values.every((v) => v >= 0)) return values;
  const max = Math.max(...values);
  const e = values.map((v) => Math.exp(v - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/**
 * Classifiers: scene classifiers that read the primitives a detector found (the prediction task), and image
 * classifiers in the Ultralytics classify layout.
 */
@Injectable()
export class ClassificationPipeline {
  constructor(private readonly runner: ModelRunner) {}

  /**
   * An Ultralytics classify model on an image: short side resized to the input size, centre crop, RGB /255; the
   * output [1, nc] as probabilities (softmaxed when the export did not). One inference in its statistics.
   */
  async classifyImage(
    name: string,
    img: ImageInput,
    timing: InferenceTiming = {},
  ): Promise<{ model: ModelEntry; probs: Float32Array } & PhaseMs> {
    const model = await this.runner.resolve(name, ['classifier']);
    if (model.contract !== 'ultralytics-classify') {
      throw asJobError(new ModelError(`Model ${name} (${model.contract}) does not classify images`));
    }
    const t0 = performance.now();
    const input = model.files[0]?.inputs[0];
    const size = model.input_size?.[0] ?? 224;
    const pre = await classifyPreprocessImage(imageSource(img), size);
    applyPreprocessOverrides({ tensor: pre.tensor, inputW: size, inputH: size }, model.preprocess);
    const preprocessMs = performance.now() - t0;
    const feeds = { [input?.name ?? 'images']: { type: 'float32' as const, dims: pre.dims, data: pre.tensor } };
    const { outputs, computeMs } = await this.runner.run(model, 'model', feeds);
    const t1 = performance.now();
    const outName = model.files[0]?.outputs[0]?.name ?? 'output0';
    const probs = this.runner.post(model, () => {
      const out = float32Output(outputs, outName).data;
      const labels = model.labels ?? [];
      if (labels.length && out.length !== labels.length) throw new Error(`output has ${out.length} values for ${labels.length} labels`);
      return probabilities(out);
    });
    const phases = { preprocessMs, computeMs, postprocessMs: performance.now() - t1 };
    this.runner.record(model, timing, phases);
    return { model, probs, ...phases };
  }

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
    const classifier = await this.runner.resolve(name, ['classifier']);
    const detector = await this.runner.resolve(detectorName);
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
      // Probabilities already (the shipped model softmaxes); logits are softmaxed here.
      return probabilities(out as ArrayLike<number>);
    });
    const phases = { preprocessMs, computeMs, postprocessMs: performance.now() - t1 };
    this.runner.record(classifier, timing, phases);
    return { model: classifier, probs, ...phases };
  }
}
