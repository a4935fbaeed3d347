import { Inject, Injectable } from '@nestjs/common';
import sharp from 'sharp';
import { roundTo } from '@aperture/common/round.js';
import type { RgbImage } from '@aperture/imaging/decode.js';
import { rleDecode } from '@aperture/inference/mask.js';
import { renderMaskSvg } from '@aperture/inference/mask-svg.js';
import { type CleanMask, cleanMask, cropRect, cutObject, maskBytes, tintMasks } from '@aperture/inference/objects.js';
import { AutoMaskPipeline } from '@aperture/models/auto-mask.pipeline.js';
import { SamPipeline } from '@aperture/models/sam.pipeline.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler } from '@aperture/queue/job-handler.js';
import type { SegmentObject, SegmentObjectsResult } from '@aperture/queue/segment-objects.types.js';
import { DriveError, DriveStorage } from '@aperture/storage/drive.storage.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { contentSha256, json, queueMs, readStoredImage } from '../tasks/image-job-support.js';

/** A mask before cleaning (decoded when its turn comes: the generator's masks stay RLE until then), with its scores. */
interface RawMask {
  bitmap: () => Uint8Array;
  score: number;
  stability: number | null;
}

/** A file this job saved, for the Drive upload. */
interface SavedFile {
  name: string;
  contentType: string;
  data: Buffer;
}

/** Share of the progress bar the masks take (the generator's grid, or the decoder); the files take the rest. */
const MASKS_PROGRESS = 0.7;

/** A PNG of raw pixels; one channel stays a greyscale PNG. */
const png = (data: Uint8Array, width: number, height: number, channels: 1 | 3 | 4): Promise<Buffer> => {
  const image = sharp(data, { raw: { width, height, channels } });
  return (channels === 1 ? image.toColourspace('b-w') : image).png().toBuffer();
};

/**
 * Object extraction: the masks of SAM's automatic mask generator (or of the given prompts, one best mask per prompt
 * set), each cleaned (small holes filled, specks removed); every mask of at least min_pixels becomes object_{i}.png
 * (the tight crop, the mask as alpha, feathered when asked) and mask_{i}.png (the full-size mask), largest first;
 * then overlay.png, visualization.svg and metadata.json. With a Drive target every file is uploaded too, under the
 * job's id as a name prefix; a Drive failure keeps the local files and is reported as drive_error.
 */
@Injectable()
@HandlesJob('segment.objects')
export class SegmentObjectsHandler implements JobHandler<'segment.objects'> {
  constructor(
    private readonly sam: SamPipeline,
    private readonly auto: AutoMaskPipeline,
    private readonly drive: DriveStorage,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async handle(ctx: JobContext<'segment.objects'>): Promise<SegmentObjectsResult> {
    const p = ctx.params;
    const { bytes, img, decodeMs } = await readStoredImage(this.storage, p.imageKey);
    if (ctx.signal.aborted) throw new JobCancelledError();
    const raw = await this.masks(ctx, img, contentSha256(bytes), decodeMs);

    const kept: { clean: CleanMask; raw: RawMask }[] = [];
    let skipped = 0;
    for (const r of raw) {
      const clean = cleanMask(r.bitmap(), img.width, img.height, p.cleanArea);
      if (clean.area === 0 || clean.area < p.minPixels) skipped++;
      else kept.push({ clean, raw: r });
    }
    kept.sort((a, b) => b.clean.area - a.clean.area);

    const jobUrl = `/api/v1/jobs/${ctx.job.id}`;
    /** What to hand to Drive afterwards (kept in memory only when asked). */
    const files: SavedFile[] = [];
    const save = async (name: string, contentType: string, data: Buffer): Promise<string> => {
      if (ctx.signal.aborted) throw new JobCancelledError();
      const artifact = await ctx.saveArtifact(name, contentType, data);
      const url = `${jobUrl}/artifacts/${artifact.id}`;
      if (p.drive) files.push({ name, contentType, data });
      return url;
    };

    const objects: SegmentObject[] = [];
    for (const [index, { clean, raw: r }] of kept.entries()) {
      const object = cutObject(img, clean.mask, clean.box, p.feather);
      const objectFile = `object_${index}.png`;
      const maskFile = `mask_${index}.png`;
      objects.push({
        index,
        bbox: [clean.box[0], clean.box[1], clean.box[2] - clean.box[0], clean.box[3] - clean.box[1]],
        area: clean.area,
        score: roundTo(r.score, 4),
        stability_score: r.stability === null ? null : roundTo(r.stability, 4),
        crop_box: cropRect(clean.box),
        object_file: objectFile,
        mask_file: maskFile,
        object_url: await save(objectFile, 'image/png', await png(object.data, object.width, object.height, 4)),
        mask_url: await save(maskFile, 'image/png', await png(maskBytes(clean.mask), img.width, img.height, 1)),
      });
      await ctx.progress(MASKS_PROGRESS + ((1 - MASKS_PROGRESS) * (index + 1)) / (kept.length + 1));
    }
    const masks = kept.map((k) => k.clean.mask);
    const overlayUrl = await save('overlay.png', 'image/png', await png(tintMasks(img, masks), img.width, img.height, 3));
    const svg = await renderMaskSvg(
      img,
      kept.map((k, i) => ({ mask: k.clean.mask, score: k.raw.score, title: `object ${i}` })),
    );
    await save('visualization.svg', 'image/svg+xml', Buffer.from(svg, 'utf8'));
    const metadata = {
      job_id: ctx.job.id,
      model: p.model,
      image: { width: img.width, height: img.height },
      params: { mode: p.source.mode, min_pixels: p.minPixels, clean_area: p.cleanArea, feather: p.feather, source: p.source },
      saved: objects.length,
      skipped,
      objects: objects.map(({ object_url: _o, mask_url: _m, ...o }) => o),
      files: { overlay: 'overlay.png', visualization: 'visualization.svg' },
    };
    const metadataUrl = await save('metadata.json', 'application/json', json(metadata));

    const { uploaded, error } = p.drive ? await this.upload(ctx.job.id, files, p.drive.folderId) : { uploaded: [], error: null };
    return {
      job_id: ctx.job.id,
      model: p.model,
      width: img.width,
      height: img.height,
      mode: p.source.mode,
      saved: objects.map((o) => o.object_file),
      skipped,
      objects,
      drive_files: uploaded,
      drive_error: error,
      overlay_url: overlayUrl,
      metadata_url: metadataUrl,
      visualization_url: `${jobUrl}/visualization.svg`,
    };
  }

  /** Every mask of the source, full image size. */
  private async masks(ctx: JobContext<'segment.objects'>, img: RgbImage, sha256: string, decodeMs: number): Promise<RawMask[]> {
    const { model, source } = ctx.params;
    const timing = { queueMs: queueMs(ctx.job), decodeMs };
    if (source.mode === 'prompts') {
      const { embedding } = await this.sam.samEncodeCached(model, img, sha256);
      if (ctx.signal.aborted) throw new JobCancelledError();
      const dec = await this.sam.samDecode(embedding, source.prompts, timing);
      await ctx.progress(MASKS_PROGRESS);
      return dec.masks.map((m) => ({ bitmap: () => m.mask, score: m.score, stability: null }));
    }
    let pending: Promise<void> = Promise.resolve();
    const { masks } = await this.auto.generate(
      model,
      img,
      sha256,
      { ...source.options, output_mode: 'uncompressed_rle' },
      {
        signal: ctx.signal,
        timing,
        // ctx.progress throttles its writes; one at a time, the last one awaited below.
        onProgress: (done, total) =>
          void (pending = pending.then(() => ctx.progress((MASKS_PROGRESS * done) / total)).catch(() => undefined)),
      },
    );
    await pending;
    return masks.map((m) => ({ bitmap: () => rleDecode(m.segmentation), score: m.predicted_iou, stability: m.stability_score }));
  }

  /** Uploads the files in order under `{jobId}_{name}`; stops at the first Drive failure and reports it. */
  private async upload(
    jobId: string,
    files: SavedFile[],
    folderId: string | null,
  ): Promise<{ uploaded: SegmentObjectsResult['drive_files']; error: string | null }> {
    const uploaded: SegmentObjectsResult['drive_files'] = [];
    for (const f of files) {
      try {
        const name = `${jobId}_${f.name}`;
        uploaded.push({ name, ...(await this.drive.upload(name, f.contentType, f.data, folderId ?? undefined)) });
      } catch (e) {
        if (e instanceof DriveError) return { uploaded, error: e.message };
        throw e;
      }
    }
    return { uploaded, error: null };
  }
}
