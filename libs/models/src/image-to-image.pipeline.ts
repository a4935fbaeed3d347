import { Injectable } from '@nestjs/common';
import { outputPngs } from '@aperture/analysis/render.js';
import { type ImageInput, imageSource } from '@aperture/imaging/decode.js';
import { imageToChw01 } from '@aperture/inference/preprocess.js';
import { float32Output } from '@aperture/inference/session-host.js';
import type { ModelEntry } from './manifest.js';
import { type InferenceTiming, ModelRunner, type PhaseMs } from './model-runner.js';

/** One output image of an image-to-image model: its style (the model's label, else option-N) as a PNG. */
export interface ImageOption {
  style: string;
  png: Buffer;
}

/** Image-to-image models (the X-ray effect): the image as CHW in [0, 1] in, N result images out. */
@Injectable()
export class ImageToImagePipeline {
  constructor(private readonly runner: ModelRunner) {}

  /** The model's output images, PNG-encoded (post-processing), in the model's output order. One inference. */
  async imageToImage(
    name: string,
    input: ImageInput,
    timing: InferenceTiming = {},
  ): Promise<{ model: ModelEntry; options: ImageOption[] } & PhaseMs> {
    const model = await this.runner.resolve(name, ['image-to-image']);
    const t0 = performance.now();
    // The model's input is the full-size image.
    const img = await imageSource(input).rgb();
    const chw = imageToChw01(img);
    const preprocessMs = performance.now() - t0;
    const { outputs, computeMs } = await this.runner.run(model, 'model', {
      image: { type: 'float32', dims: chw.dims, data: chw.tensor },
    });
    const t1 = performance.now();
    const out = this.runner.post(model, () => float32Output(outputs, 'output'));
    const pngs = await outputPngs(out.data, out.dims[0] ?? 1, img.width, img.height);
    const labels = model.labels ?? [];
    const options = pngs.map((png, s) => ({ style: labels[s] ?? `option-${s + 1}`, png }));
    const phases = { preprocessMs, computeMs, postprocessMs: performance.now() - t1 };
    this.runner.record(model, timing, phases);
    return { model, options, ...phases };
  }
}
