import { Injectable } from '@nestjs/common';
import { renderDetections } from '@aperture/analysis/render.js';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import { ClassificationPipeline } from '@aperture/models/classification.pipeline.js';
import { type DetectedObject, DetectionPipeline } from '@aperture/models/detection.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler } from '@aperture/queue/job-handler.js';
import type { PredictTaskResult } from '@aperture/queue/job-registry.js';
import { ImageJobSupport, json, queueMs } from './image-job-support.js';
import { roundTo } from '@aperture/common/round.js';

/**
 * The prediction task's output: a primitive's normalized rotated box (x, y = centre; width, height = the box's sides over
 * the image width and height; rotation = angle / π in [0, 1)) and its four normalized corners.
 */
function primitiveOf(o: DetectedObject, width: number, height: number): JsonObject {
  const b = o.rbox ?? {
    cx: (o.box[0] + o.box[2]) / 2,
    cy: (o.box[1] + o.box[3]) / 2,
    w: o.box[2] - o.box[0],
    h: o.box[3] - o.box[1],
    angle: 0,
  };
  return {
    primitive_class: o.label,
    probability: roundTo(o.score, 4),
    x: roundTo(b.cx / width, 4),
    y: roundTo(b.cy / height, 4),
    width: roundTo(b.w / width, 4),
    height: roundTo(b.h / height, 4),
    rotation: roundTo(b.angle / Math.PI, 4),
    corners: o.corners.map(([x, y]) => [roundTo(x / width, 4), roundTo(y / height, 4)]),
    corners_px: o.corners.map(([x, y]) => [roundTo(x, 2), roundTo(y, 2)]),
  };
}

/** Primitives by the detection model, then the scene by the classification model FROM those primitives. */
@Injectable()
@HandlesJob('task.predict')
export class PredictTaskHandler implements JobHandler<'task.predict'> {
  constructor(
    private readonly detection: DetectionPipeline,
    private readonly classification: ClassificationPipeline,
    private readonly support: ImageJobSupport,
  ) {}

  async handle(ctx: JobContext<'task.predict'>): Promise<PredictTaskResult> {
    const p = ctx.params;
    const { img, decodeMs } = await this.support.image(ctx.em, p.imageId);
    await ctx.progress(0.1);
    const det = await this.detection.detect(p.detectionModel, img, { conf: p.conf, iou: p.iou }, { queueMs: queueMs(ctx.job), decodeMs });
    const detector = det.model;
    if (ctx.signal.aborted) throw new JobCancelledError();
    await ctx.progress(0.6);
    const cls = await this.classification.classify(p.classificationModel, detector.name, det.objects, img.width, img.height, {
      queueMs: queueMs(ctx.job),
    });
    const classifier = cls.model;
    const scenes = classifier.labels ?? [];
    let imageClass: string | null = null;
    let classProbs: JsonObject | null = null;
    if (cls.probs) {
      const probs = cls.probs;
      classProbs = Object.fromEntries(scenes.map((s, i) => [s, roundTo(probs[i] ?? 0, 4)]));
      let best = 0;
      for (let i = 1; i < probs.length; i++) if (probs[i]! > probs[best]!) best = i;
      imageClass = scenes[best] ?? String(best);
    }
    const result: PredictTaskResult = {
      image_class: imageClass,
      class_probs: classProbs,
      primitives: det.objects.map((o) => primitiveOf(o, img.width, img.height)),
      count: det.objects.length,
      detection_model: detector.name,
      classification_model: classifier.name,
      image: { width: img.width, height: img.height },
      note: cls.probs ? null : 'No primitive was detected, so the scene cannot be classified.',
    };
    const annotated = await renderDetections(
      img,
      det.objects.map((o) => ({ label: o.label, classId: o.classId, score: o.score, corners: o.corners })),
      'jpeg',
    );
    await ctx.saveArtifact('annotated.jpg', 'image/jpeg', annotated);
    await ctx.saveArtifact('result.json', 'application/json', json(result));
    return result;
  }
}
