import { Inject, Injectable } from '@nestjs/common';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import { maskToBbox, rleEncode } from '@aperture/inference/mask.js';
import type { SamPrompt } from '@aperture/inference/postprocess/sam.js';
import type { ImageSource } from '@aperture/imaging/decode.js';
import { ClassificationPipeline } from '@aperture/models/classification.pipeline.js';
import { DetectionPipeline } from '@aperture/models/detection.pipeline.js';
import { ImageToImagePipeline } from '@aperture/models/image-to-image.pipeline.js';
import type { ModelEntry } from '@aperture/models/manifest.js';
import { type InferenceTiming, ModelRunner } from '@aperture/models/model-runner.js';
import { SamPipeline } from '@aperture/models/sam.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { InferOptions, ModelInferResult } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { contentSha256, queueMs, readStoredSource } from '../tasks/image-job-support.js';
import { roundTo } from '@aperture/common/round.js';

interface Outcome {
  result: JsonObject;
  preprocessMs: number;
  postprocessMs: number;
}

/**
 * Runs one model on one uploaded image, by the model's kind: oriented or axis-aligned detections, instance masks
 * (COCO RLE), a SAM mask for a click or a box, or the X-ray result options as PNG artifacts. The pipelines record
 * the phases in the model's statistics (the image's decoding as pre-processing).
 */
@Injectable()
@HandlesJob('model.infer')
export class ModelInferHandler implements JobHandler<'model.infer'> {
  constructor(
    private readonly runner: ModelRunner,
    private readonly detection: DetectionPipeline,
    private readonly sam: SamPipeline,
    private readonly imageToImage: ImageToImagePipeline,
    private readonly classification: ClassificationPipeline,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async handle(ctx: JobContext<'model.infer'>): Promise<ModelInferResult> {
    const { model: name, imageKey, options } = ctx.params;
    // An installed model this worker has not heard of yet is fetched by the lookup (ModelRunner.resolve).
    const model = await this.runner.resolve(name);
    const started = performance.now();
    // The header only: each kind decodes at the size its model needs (detectors, segmenters and SAM resize while
    // decoding; the X-ray effect decodes at full size).
    const { bytes, src: img, decodeMs } = await readStoredSource(this.storage, imageKey);
    if (ctx.signal.aborted) throw new JobCancelledError();
    const image = { img, bytes };
    const outcome = await this.infer(ctx, model, image, options, { queueMs: queueMs(ctx.job), decodeMs });
    const totalMs = performance.now() - started;
    return {
      model: name,
      kind: model.kind,
      width: img.width,
      height: img.height,
      ...outcome.result,
      timings_ms: {
        decode: roundTo(decodeMs, 2),
        preprocess: roundTo(outcome.preprocessMs, 2),
        postprocess: roundTo(outcome.postprocessMs, 2),
        total: roundTo(totalMs, 2),
      },
    };
  }

  private async infer(
    ctx: JobContext<'model.infer'>,
    model: ModelEntry,
    { img, bytes }: { img: ImageSource; bytes: Uint8Array },
    o: InferOptions,
    timing: InferenceTiming,
  ): Promise<Outcome> {
    const nms = { conf: o.conf, iou: o.iou, maxDet: o.max_det };
    const labels = model.labels ?? [];
    const label = (i: number): string => labels[i] ?? String(i);
    switch (model.kind) {
      case 'segmenter': {
        const seg = await this.detection.segmentInstances(model.name, img, nms, timing);
        const detections: JsonObject[] = seg.detections.map((d) => ({
          class: label(d.classId),
          class_id: d.classId,
          score: roundTo(d.score, 4),
          box_xyxy: [roundTo(d.x1, 2), roundTo(d.y1, 2), roundTo(d.x2, 2), roundTo(d.y2, 2)],
          area: d.area,
          mask: d.rle as unknown as JsonObject,
        }));
        return { result: { count: detections.length, detections }, preprocessMs: seg.preprocessMs, postprocessMs: seg.postprocessMs };
      }
      case 'detector': {
        const det = await this.detection.detect(model.name, img, nms, timing);
        const detections = det.objects.map((d): JsonObject =>
          d.rbox
            ? {
                class: d.label,
                class_id: d.classId,
                score: roundTo(d.score, 4),
                cx: roundTo(d.rbox.cx, 2),
                cy: roundTo(d.rbox.cy, 2),
                w: roundTo(d.rbox.w, 2),
                h: roundTo(d.rbox.h, 2),
                angle: roundTo(d.rbox.angle, 4),
                corners: d.corners.map(([x, y]) => [roundTo(x, 2), roundTo(y, 2)]),
              }
            : { class: d.label, class_id: d.classId, score: roundTo(d.score, 4), box_xyxy: d.box.map((v) => roundTo(v, 2)) },
        );
        return { result: { count: detections.length, detections }, preprocessMs: det.preprocessMs, postprocessMs: det.postprocessMs };
      }
      case 'sam': {
        const prompt: SamPrompt = { points: o.points, box: o.box };
        const { embedding, hit } = await this.sam.samEncodeCached(model.name, img, contentSha256(bytes));
        if (ctx.signal.aborted) throw new JobCancelledError();
        const dec = await this.sam.samDecode(embedding, [prompt], timing);
        const m = dec.masks[0]!;
        const result: JsonObject = {
          mask_index: m.index,
          score: roundTo(m.score, 4),
          area: m.area,
          bbox_xywh: maskToBbox(m.mask, m.width, m.height),
          mask: rleEncode(m.mask, m.width, m.height) as unknown as JsonObject,
        };
        const encodeMs = hit ? 0 : embedding.encodeMs.preprocessMs;
        return { result, preprocessMs: encodeMs + dec.preprocessMs, postprocessMs: dec.postprocessMs };
      }
      case 'image-to-image': {
        const out = await this.imageToImage.imageToImage(model.name, img, timing);
        if (ctx.signal.aborted) throw new JobCancelledError();
        const options: JsonObject[] = [];
        for (const { style, png } of out.options) {
          const artifact = await ctx.saveArtifact(`${style}.png`, 'image/png', png);
          options.push({ style, artifact_id: artifact.id });
        }
        return { result: { options }, preprocessMs: out.preprocessMs, postprocessMs: out.postprocessMs };
      }
      case 'classifier': {
        if (model.contract !== 'ultralytics-classify') break;
        const cls = await this.classification.classifyImage(model.name, img, timing);
        const ranked = [...cls.probs].map((p, i) => ({ i, p })).sort((a, b) => b.p - a.p);
        const top = ranked.slice(0, 5).map(({ i, p }): JsonObject => ({ class: label(i), class_id: i, score: roundTo(p, 4) }));
        const result: JsonObject = { class: label(ranked[0]?.i ?? 0), score: roundTo(ranked[0]?.p ?? 0, 4), top };
        return { result, preprocessMs: cls.preprocessMs, postprocessMs: cls.postprocessMs };
      }
    }
    throw new PermanentJobError(
      `Model ${model.name} (${model.kind}) does not take an image: ` +
        (model.kind === 'classifier' ? 'it classifies detected primitives (use a prediction task)' : 'unsupported kind'),
    );
  }
}
