import { Inject, Injectable } from '@nestjs/common';
import { roundTo } from '@aperture/common/round.js';
import { type AmgRecord, cocoEncodeRle } from '@aperture/inference/amg.js';
import { rleDecode } from '@aperture/inference/mask.js';
import { renderMaskSvg } from '@aperture/inference/mask-svg.js';
import { AutoMaskPipeline } from '@aperture/models/auto-mask.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler } from '@aperture/queue/job-handler.js';
import type { SegmentAutoMask, SegmentAutoResult } from '@aperture/queue/segment-auto.types.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { contentSha256, queueMs, readStoredImage } from '../tasks/image-job-support.js';

/** A record of the generator as JSON: the segmentation is an RLE (binary_mask is stored as uncompressed RLE). */
function toJson(m: AmgRecord<'uncompressed_rle' | 'coco_rle'>): SegmentAutoMask {
  const [h, w] = m.segmentation.size;
  return {
    segmentation: { size: [h, w], counts: m.segmentation.counts },
    area: m.area,
    bbox: m.bbox,
    predicted_iou: roundTo(m.predicted_iou, 4),
    point_coords: [[roundTo(m.point_coords[0][0], 2), roundTo(m.point_coords[0][1], 2)]],
    stability_score: roundTo(m.stability_score, 4),
    crop_box: m.crop_box,
  };
}

/**
 * Automatic segmentation: SAM's automatic mask generator on one image (AutoMaskPipeline), progress after each batch
 * of grid points, and visualization.svg (every mask outlined over the image with its predicted IoU). The whole
 * image's embedding goes through the embedding cache, keyed by the file's sha256.
 */
@Injectable()
@HandlesJob('segment.auto')
export class SegmentAutoHandler implements JobHandler<'segment.auto'> {
  constructor(
    private readonly auto: AutoMaskPipeline,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async handle(ctx: JobContext<'segment.auto'>): Promise<SegmentAutoResult> {
    const { model, imageKey, options } = ctx.params;
    const started = performance.now();
    const { bytes, img, decodeMs } = await readStoredImage(this.storage, imageKey);
    if (ctx.signal.aborted) throw new JobCancelledError();
    const sha256 = contentSha256(bytes);
    const outputMode = options.output_mode ?? 'binary_mask';
    const format = outputMode === 'coco_rle' ? 'coco_rle' : 'uncompressed_rle';
    let pending: Promise<void> = Promise.resolve();
    // Uncompressed RLE for the visualization; COCO strings are made from it at the end.
    const { masks, timings } = await this.auto.generate(
      model,
      img,
      sha256,
      { ...options, output_mode: 'uncompressed_rle' },
      {
        signal: ctx.signal,
        timing: { queueMs: queueMs(ctx.job), decodeMs },
        // ctx.progress throttles its writes; one at a time, the last one awaited below.
        onProgress: (done, total) => void (pending = pending.then(() => ctx.progress(done / total)).catch(() => undefined)),
      },
    );
    await pending;
    if (ctx.signal.aborted) throw new JobCancelledError();
    const svg = await renderMaskSvg(
      img,
      masks.map((m, i) => ({ mask: rleDecode(m.segmentation), score: m.predicted_iou, title: `mask ${i}` })),
    );
    await ctx.saveArtifact('visualization.svg', 'image/svg+xml', Buffer.from(svg, 'utf8'));
    const records: AmgRecord<'uncompressed_rle' | 'coco_rle'>[] =
      format === 'coco_rle' ? masks.map((m) => ({ ...m, segmentation: cocoEncodeRle(m.segmentation) })) : masks;
    return {
      model,
      width: img.width,
      height: img.height,
      output_mode: outputMode,
      segmentation_format: format,
      count: masks.length,
      masks: records.map(toJson),
      timings_ms: {
        decode: roundTo(decodeMs, 2),
        encode: roundTo(timings.encodeMs, 2),
        decoder: roundTo(timings.decoderMs, 2),
        postprocess: roundTo(timings.postprocessMs, 2),
        total: roundTo(performance.now() - started, 2),
      },
    };
  }
}
