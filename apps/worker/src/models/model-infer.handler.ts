import { Inject, Injectable } from '@nestjs/common';
import { outputPngs } from '@aperture/analysis/render.js';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import { maskToBbox, rleEncode } from '@aperture/inference/mask.js';
import { encodeSamPrompt, samMaskFromOutputs, type SamPrompt } from '@aperture/inference/postprocess/sam.js';
import { imageToChw01, samPreprocess } from '@aperture/inference/preprocess.js';
import { decodeImage, type RgbImage } from '@aperture/imaging/decode.js';
import { float32Output } from '@aperture/inference/session-host.js';
import type { ModelEntry } from '@aperture/models/manifest.js';
import { detectObjects, segmentInstances } from '@aperture/models/pipelines.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { InferOptions, ModelInferResult } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ImageJobSupport, queueMs, r2, r4, readAll } from '../tasks/image-job-support.js';
import { ModelAgent } from './model-agent.service.js';

interface Outcome {
  result: JsonObject;
  preprocessMs: number;
  postprocessMs: number;
}

/**
 * Runs one model on one uploaded image, by the model's kind: oriented or axis-aligned detections, instance masks
 * (COCO RLE), a SAM mask for a click or a box, or the X-ray result options as PNG artifacts. Records the phases
 * in the model's statistics.
 */
@Injectable()
@HandlesJob('model.infer')
export class ModelInferHandler implements JobHandler<'model.infer'> {
  constructor(
    private readonly agent: ModelAgent,
    private readonly support: ImageJobSupport,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async handle(ctx: JobContext<'model.infer'>): Promise<ModelInferResult> {
    const { model: name, imageKey, options } = ctx.params;
    const registry = this.agent.registry;
    const model = this.support.model(registry, name);
    const started = performance.now();
    const t0 = performance.now();
    const img = await decodeImage(await readAll(await this.storage.read(imageKey)));
    const decodeMs = performance.now() - t0;
    if (ctx.signal.aborted) throw new JobCancelledError();
    const outcome = await this.support.step(() => this.infer(ctx, model, img, options));
    const totalMs = performance.now() - started;
    registry.record(name, { totalMs, queueMs: queueMs(ctx.job), preprocessMs: decodeMs + outcome.preprocessMs, postprocessMs: outcome.postprocessMs });
    return {
      model: name,
      kind: model.kind,
      width: img.width,
      height: img.height,
      ...outcome.result,
      timings_ms: { decode: r2(decodeMs), preprocess: r2(outcome.preprocessMs), postprocess: r2(outcome.postprocessMs), total: r2(totalMs) },
    };
  }

  private async infer(ctx: JobContext<'model.infer'>, model: ModelEntry, img: RgbImage, o: InferOptions): Promise<Outcome> {
    const registry = this.agent.registry;
    const nms = { conf: o.conf, iou: o.iou, maxDet: o.max_det };
    const labels = model.labels ?? [];
    const label = (i: number): string => labels[i] ?? String(i);
    switch (model.kind) {
      case 'segmenter': {
        const seg = await segmentInstances(registry, model, img, nms);
        const detections: JsonObject[] = seg.detections.map((d) => ({
          class: label(d.classId),
          class_id: d.classId,
          score: r4(d.score),
          box_xyxy: [r2(d.x1), r2(d.y1), r2(d.x2), r2(d.y2)],
          area: d.area,
          mask: d.rle as unknown as JsonObject,
        }));
        return { result: { count: detections.length, detections }, preprocessMs: seg.preprocessMs, postprocessMs: seg.postprocessMs };
      }
      case 'detector': {
        const det = await detectObjects(registry, model, img, nms);
        const detections = det.objects.map((d): JsonObject =>
          d.rbox
            ? {
                class: d.label,
                class_id: d.classId,
                score: r4(d.score),
                cx: r2(d.rbox.cx),
                cy: r2(d.rbox.cy),
                w: r2(d.rbox.w),
                h: r2(d.rbox.h),
                angle: r4(d.rbox.angle),
                corners: d.corners.map(([x, y]) => [r2(x), r2(y)]),
              }
            : { class: d.label, class_id: d.classId, score: r4(d.score), box_xyxy: d.box.map(r2) },
        );
        return { result: { count: detections.length, detections }, preprocessMs: det.preprocessMs, postprocessMs: det.postprocessMs };
      }
      case 'sam': {
        const prompt: SamPrompt = { points: o.points, box: o.box };
        if (!prompt.points?.length && !prompt.box) throw new PermanentJobError('A SAM model needs a prompt: points and/or a box');
        const t0 = performance.now();
        const pre = await samPreprocess(img.data, img.width, img.height);
        const preMs = performance.now() - t0;
        const enc = await registry.run(model.name, 'encoder', { image: { type: 'float32', dims: pre.dims, data: pre.tensor } });
        if (ctx.signal.aborted) throw new JobCancelledError();
        const t1 = performance.now();
        const feeds = encodeSamPrompt(prompt, { origW: img.width, origH: img.height, newW: pre.newW, newH: pre.newH }, float32Output(enc.outputs, 'image_embeddings').data);
        const t2 = performance.now();
        const dec = await registry.run(model.name, 'decoder', feeds);
        const t3 = performance.now();
        const m = samMaskFromOutputs(float32Output(dec.outputs, 'masks'), float32Output(dec.outputs, 'iou_predictions'), prompt);
        const result: JsonObject = {
          mask_index: m.index,
          score: r4(m.score),
          area: m.area,
          bbox_xywh: maskToBbox(m.mask, m.width, m.height),
          mask: rleEncode(m.mask, m.width, m.height) as unknown as JsonObject,
        };
        return { result, preprocessMs: preMs + (t2 - t1), postprocessMs: performance.now() - t3 };
      }
      case 'image-to-image': {
        const t0 = performance.now();
        const input = imageToChw01(img);
        const pre = performance.now() - t0;
        const { outputs } = await registry.run(model.name, 'model', { image: { type: 'float32', dims: input.dims, data: input.tensor } });
        const t1 = performance.now();
        const out = float32Output(outputs, 'output');
        const pngs = await outputPngs(out.data, out.dims[0] ?? 1, img.width, img.height);
        if (ctx.signal.aborted) throw new JobCancelledError();
        const options: JsonObject[] = [];
        for (const [s, png] of pngs.entries()) {
          const style = labels[s] ?? `option-${s + 1}`;
          const artifact = await ctx.saveArtifact(`${style}.png`, 'image/png', png);
          options.push({ style, artifact_id: artifact.id });
        }
        return { result: { options }, preprocessMs: pre, postprocessMs: performance.now() - t1 };
      }
      default:
        throw new PermanentJobError(`Model ${model.name} (${model.kind}) does not take an image: ${model.kind === 'classifier' ? 'it classifies detected primitives (use a prediction task)' : 'unsupported kind'}`);
    }
  }
}
