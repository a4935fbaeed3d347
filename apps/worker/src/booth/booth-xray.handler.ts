import { Inject, Injectable } from '@nestjs/common';
import { ImageToImagePipeline } from '@aperture/models/image-to-image.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import { type BoothOption, type BoothXrayResult, boothOptionName } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort, StorageNotFoundError } from '@aperture/storage/storage.port.js';
import { queueMs, readStoredImage } from '../tasks/image-job-support.js';

/**
 * The booth's internal processing: one run of the image-to-image model on the photo gives one image per style; the
 * first `options` of them (a different style each, cycling past the model's count) are stored as the attempt's
 * artifacts option-0 … option-{n-1}. Completing is the runner's guarded write, so an external worker holding the
 * same job can never complete it too.
 */
@Injectable()
@HandlesJob('booth.xray')
export class BoothXrayHandler implements JobHandler<'booth.xray'> {
  constructor(
    private readonly pipeline: ImageToImagePipeline,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async handle(ctx: JobContext<'booth.xray'>): Promise<BoothXrayResult> {
    const { imageKey, model, options: n } = ctx.params;
    let img;
    try {
      ({ img } = await readStoredImage(this.storage, imageKey));
    } catch (e) {
      if (e instanceof StorageNotFoundError)
        throw new PermanentJobError(`The photo of booth submission ${ctx.params.submissionId} is missing`);
      throw e;
    }
    if (ctx.signal.aborted) throw new JobCancelledError();
    const out = await this.pipeline.imageToImage(model, img, { queueMs: queueMs(ctx.job) });
    if (out.options.length === 0) throw new PermanentJobError(`Model ${model} returned no image`);
    await ctx.progress(0.8);
    const options: BoothOption[] = [];
    for (let i = 0; i < n; i++) {
      if (ctx.signal.aborted) throw new JobCancelledError();
      const o = out.options[i % out.options.length]!;
      const artifact = await ctx.saveArtifact(boothOptionName(i), 'image/png', o.png);
      options.push({ index: i, artifact_id: artifact.id, style: o.style, content_type: 'image/png' });
    }
    return { source: 'internal', model, options };
  }
}
