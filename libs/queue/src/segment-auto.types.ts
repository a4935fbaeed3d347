import type { JsonObject } from '@aperture/database/entities/job.entity.js';

/** segment.auto: SamAutomaticMaskGenerator's parameters (same names; omitted ones take SAM's defaults). */
export interface SegmentAutoOptions {
  points_per_side?: number;
  points_per_batch?: number;
  pred_iou_thresh?: number;
  stability_score_thresh?: number;
  stability_score_offset?: number;
  box_nms_thresh?: number;
  crop_n_layers?: number;
  crop_nms_thresh?: number;
  crop_overlap_ratio?: number;
  crop_n_points_downscale_factor?: number;
  min_mask_region_area?: number;
  output_mode?: 'binary_mask' | 'uncompressed_rle' | 'coco_rle';
}

/** segment.auto: the image (an upload under the job's inputs, or one of the user's images) and the options. */
export interface SegmentAutoParams {
  model: string;
  imageKey: string;
  imageId: string | null;
  options: SegmentAutoOptions;
}

/** One mask as SAM's generator returns it; `segmentation` is an uncompressed RLE (counts: numbers) or COCO RLE (counts: string). */
export type SegmentAutoMask = {
  segmentation: { size: [number, number]; counts: number[] | string };
  area: number;
  bbox: [number, number, number, number];
  predicted_iou: number;
  point_coords: [[number, number]];
  stability_score: number;
  crop_box: [number, number, number, number];
};

/** segment.auto: every mask found, with the image size and the timings. */
export type SegmentAutoResult = JsonObject & {
  model: string;
  width: number;
  height: number;
  output_mode: string;
  /** 'uncompressed_rle' (also for output_mode binary_mask: JSON holds no bitmaps) or 'coco_rle'. */
  segmentation_format: 'uncompressed_rle' | 'coco_rle';
  count: number;
  masks: SegmentAutoMask[];
  timings_ms: { decode: number; encode: number; decoder: number; postprocess: number; total: number };
};
