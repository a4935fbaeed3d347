import { Inject, Injectable } from '@nestjs/common';
import sharp from 'sharp';
import { roundTo } from '@aperture/common/round.js';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import { cocoEncodeRle } from '@aperture/inference/amg.js';
import { maskToBbox, rleEncode } from '@aperture/inference/mask.js';
import { renderMaskSvg } from '@aperture/inference/mask-svg.js';
import { SamPipeline, type SamMask } from '@aperture/models/sam.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { SegmentOutput, SegmentPromptResult } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { contentSha256, queueMs, readStoredImage } from '../tasks/image-job-support.js';

/**
 * SAM prompt segmentation: one embedding (from the cache when the image was seen), one decoder run per prompt set,
 * each set's masks (the 3 multimask outputs, or the pipeline's single choice) in the requested encoding, and an SVG
 * (the downscaled image with every mask's outline and score) saved as the artifact visualization.svg.
 */
@Injectable()
@HandlesJob('segment.prompt')
export class SegmentPromptHandler implements JobHandler<'segment.prompt'> {
  constructor(
    private readonly sam: SamPipeline,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async handle(ctx: JobContext<'segment.prompt'>): Promise<SegmentPromptResult> {
    const { model, imageKey, prompts, multimask, output } = ctx.params;
    const { bytes, img } = await readStoredImage(this.storage, imageKey);
    for (const [i, p] of prompts.entries()) {
      const outside = [
        ...(p.points ?? []),
        ...(p.box
          ? [
              { x: p.box.x1, y: p.box.y1 },
              { x: p.box.x2, y: p.box.y2 },
            ]
          : []),
      ].find((q) => q.x < 0 || q.y < 0 || q.x > img.width || q.y > img.height);
      if (outside) throw new PermanentJobError(`Prompt ${i} has a point outside the ${img.width}×${img.height} image`);
    }
    if (ctx.signal.aborted) throw new JobCancelledError();
    const { embedding } = await this.sam.samEncodeCached(model, img, contentSha256(bytes));
    if (ctx.signal.aborted) throw new JobCancelledError();
    const dec = await this.sam.samDecode(embedding, prompts, { queueMs: queueMs(ctx.job) }, { multimask });
    const sets: SamMask[][] = multimask && dec.multimasks ? dec.multimasks : dec.masks.map((m) => [m]);
    const results: JsonObject[] = [];
    for (const [i, masks] of sets.entries()) {
      const encoded: JsonObject[] = [];
      for (const m of masks) {
        encoded.push({
          mask_index: m.index,
          score: roundTo(m.score, 4),
          bbox: maskToBbox(m.mask, m.width, m.height),
          area: m.area,
          mask: await encodeMask(m, output),
        });
      }
      results.push({ prompt_index: i, masks: encoded });
    }
    if (ctx.signal.aborted) throw new JobCancelledError();
    const svg = await renderMaskSvg(
      img,
      sets.flatMap((masks, i) => masks.map((m) => ({ mask: m.mask, score: m.score, title: `prompt ${i} mask ${m.index}` }))),
    );
    const artifact = await ctx.saveArtifact('visualization.svg', 'image/svg+xml', Buffer.from(svg, 'utf8'));
    return { model, width: img.width, height: img.height, results, visualization_artifact_id: artifact.id };
  }
}

async function encodeMask(m: SamMask, output: SegmentOutput): Promise<JsonObject | string> {
  const rle = rleEncode(m.mask, m.width, m.height);
  if (output === 'coco_rle') return { ...cocoEncodeRle(rle) };
  if (output === 'rle') return { size: rle.size, counts: rle.counts };
  const px = Buffer.alloc(m.mask.length);
  for (let i = 0; i < px.length; i++) px[i] = m.mask[i] ? 255 : 0;
  const png = await sharp(px, { raw: { width: m.width, height: m.height, channels: 1 } })
    .png()
    .toBuffer();
  return png.toString('base64');
}
