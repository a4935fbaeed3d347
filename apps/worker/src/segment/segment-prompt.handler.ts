import { Inject, Injectable } from '@nestjs/common';
import sharp from 'sharp';
import { roundTo } from '@aperture/common/round.js';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import { cocoEncodeRle } from '@aperture/inference/amg.js';
import { maskToBbox, rleEncode } from '@aperture/inference/mask.js';
import { outlinePath, traceOutlines } from '@aperture/inference/outline.js';
import type { RgbImage } from '@aperture/imaging/decode.js';
import { SamPipeline, type SamMask } from '@aperture/models/sam.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { SegmentOutput, SegmentPromptResult } from '@aperture/queue/job-registry.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { contentSha256, queueMs, readStoredImage } from '../tasks/image-job-support.js';

/** Longest side of the image embedded in the visualization. */
const SVG_MAX_SIDE = 1024;
const COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#46f0f0', '#f032e6', '#bcf60c', '#008080', '#9a6324'];

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
    const svg = await renderSvg(img, sets);
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

/** The image (≤ 1024 px long side, JPEG) under every mask's outline, semi-transparent fill, and its score. */
async function renderSvg(img: RgbImage, sets: SamMask[][]): Promise<string> {
  const scale = Math.min(1, SVG_MAX_SIDE / Math.max(img.width, img.height));
  const w = Math.max(1, Math.round(img.width * scale));
  const h = Math.max(1, Math.round(img.height * scale));
  const jpeg = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(w, h)
    .jpeg({ quality: 80 })
    .toBuffer();
  const { width: W, height: H } = img;
  const font = Math.max(10, Math.round(Math.max(W, H) / 50));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<image x="0" y="0" width="${W}" height="${H}" preserveAspectRatio="none" href="data:image/jpeg;base64,${jpeg.toString('base64')}"/>`,
  ];
  let k = 0;
  for (const [i, masks] of sets.entries()) {
    for (const m of masks) {
      const color = COLORS[k++ % COLORS.length]!;
      const d = outlinePath(traceOutlines(m.mask, m.width, m.height));
      parts.push(
        `<path d="${d || 'M0 0Z'}" fill="${color}" fill-opacity="0.35" fill-rule="evenodd" stroke="${color}" stroke-width="2" ` +
          `vector-effect="non-scaling-stroke"><title>prompt ${i} mask ${m.index} score ${m.score.toFixed(3)}</title></path>`,
      );
      const [bx, by] = maskToBbox(m.mask, m.width, m.height);
      parts.push(
        `<text x="${bx}" y="${Math.max(font, by - 3)}" font-family="sans-serif" font-size="${font}" fill="${color}" ` +
          `stroke="#000" stroke-width="0.5">${m.score.toFixed(3)}</text>`,
      );
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}
