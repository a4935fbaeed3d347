import { Injectable } from '@nestjs/common';
import { renderDetections } from '@aperture/analysis/render.js';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import { DetectionPipeline } from '@aperture/models/detection.pipeline.js';
import { HandlesJob, type JobContext, type JobHandler } from '@aperture/queue/job-handler.js';
import type { ProjectDetectResult } from '@aperture/queue/job-registry.js';
import { ImageJobSupport, queueMs } from '../tasks/image-job-support.js';
import { roundTo } from '@aperture/common/round.js';

/** Projects: one project image through the project's model: detections and an annotated image. */
@Injectable()
@HandlesJob('project.detect')
export class ProjectDetectHandler implements JobHandler<'project.detect'> {
  constructor(
    private readonly detection: DetectionPipeline,
    private readonly support: ImageJobSupport,
  ) {}

  async handle(ctx: JobContext<'project.detect'>): Promise<ProjectDetectResult> {
    const p = ctx.params;
    const { img, decodeMs } = await this.support.image(ctx.em, p.imageId);
    await ctx.progress(0.2);
    const det = await this.detection.detect(p.model, img, { conf: p.conf, iou: p.iou }, { queueMs: queueMs(ctx.job), decodeMs });
    const model = det.model;
    const detections: JsonObject[] = det.objects.map((o) => {
      const d: JsonObject = { class: o.label, confidence: roundTo(o.score, 4), bbox_xyxy_abs: o.box.map((v) => roundTo(v, 2)) };
      if (o.rbox) {
        d['corners'] = o.corners.map(([x, y]) => [roundTo(x, 2), roundTo(y, 2)]);
        d['angle'] = roundTo(o.rbox.angle, 4);
      }
      return d;
    });
    await ctx.progress(0.8);
    const annotated = await renderDetections(
      img,
      det.objects.map((o) => ({ label: o.label, classId: o.classId, score: o.score, corners: o.corners })),
      'jpeg',
    );
    const artifact = await ctx.saveArtifact('annotated.jpg', 'image/jpeg', annotated);
    return {
      model: model.name,
      count: detections.length,
      detections,
      image: { width: img.width, height: img.height },
      annotated_artifact_id: artifact.id,
    };
  }
}
