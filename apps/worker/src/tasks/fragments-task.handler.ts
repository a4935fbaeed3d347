import { Injectable } from '@nestjs/common';
import { analyzeFragments, type FragmentInput, fragmentsCsv } from '@aperture/analysis/fragments.js';
import { renderFragmentOverlay, renderLabelMask, renderPassingChart } from '@aperture/analysis/render.js';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import { DetectionPipeline } from '@aperture/models/detection.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler } from '@aperture/queue/job-handler.js';
import type { FragmentsTaskResult } from '@aperture/queue/job-registry.js';
import { ImageJobSupport, json, queueMs } from './image-job-support.js';

/** The label of the calibration object in a fragments model. */
const BALL_LABEL = 'calibration_ball';

/**
 * Fragment analysis: instance masks, the red calibration ball (never a fragment) giving the scale,
 * D = sqrt(4A/π) per fragment in real units, D10/D50/D90; overlay, label masks, passing-size chart, CSV and JSON.
 */
@Injectable()
@HandlesJob('task.fragments')
export class FragmentsTaskHandler implements JobHandler<'task.fragments'> {
  constructor(
    private readonly detection: DetectionPipeline,
    private readonly support: ImageJobSupport,
  ) {}

  async handle(ctx: JobContext<'task.fragments'>): Promise<FragmentsTaskResult> {
    const p = ctx.params;
    const { img, decodeMs } = await this.support.image(ctx.em, p.imageId);
    await ctx.progress(0.1);
    const seg = await this.detection.segmentInstances(p.model, img, { conf: p.conf, iou: p.iou }, { queueMs: queueMs(ctx.job), decodeMs });
    const model = seg.model;
    if (ctx.signal.aborted) throw new JobCancelledError();
    await ctx.progress(0.5);
    const ballClassId = (model.labels ?? []).indexOf(BALL_LABEL);
    const dets: FragmentInput[] = seg.detections.map((d) => ({
      classId: d.classId,
      score: d.score,
      box: [d.x1, d.y1, d.x2, d.y2],
      rle: d.rle!,
      area: d.area,
    }));
    const analysis = analyzeFragments(img, dets, { realRadius: p.realRadius, unit: p.unit, ballClassId });
    const result: FragmentsTaskResult = {
      ...(analysis as unknown as JsonObject),
      model: model.name,
      real_radius: p.realRadius,
      requested_unit: p.unit,
      conf: p.conf,
      iou: p.iou,
      image: { width: img.width, height: img.height },
    };
    // The three images encode at once (each PNG encode is single-threaded).
    const [overlay, masks, chart] = await Promise.all([
      renderFragmentOverlay(img, dets, analysis),
      renderLabelMask(img.width, img.height, dets, ballClassId),
      renderPassingChart(analysis),
    ]);
    await ctx.progress(0.8);
    await ctx.saveArtifact('overlay.png', 'image/png', overlay);
    await ctx.saveArtifact('masks.png', 'image/png', masks);
    await ctx.saveArtifact('chart.png', 'image/png', chart);
    await ctx.saveArtifact('fragments.csv', 'text/csv', Buffer.from(fragmentsCsv(analysis)));
    await ctx.saveArtifact('result.json', 'application/json', json(result));
    return result;
  }
}
