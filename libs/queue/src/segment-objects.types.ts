import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import type { SegmentPromptParams } from './job-registry.js';
import type { SegmentAutoOptions } from './segment-auto.types.js';

/** Where segment.objects takes its masks from: the automatic mask generator, or one best mask per prompt set. */
export type SegmentObjectsSource =
  { mode: 'auto'; options: Omit<SegmentAutoOptions, 'output_mode'> } | { mode: 'prompts'; prompts: SegmentPromptParams['prompts'] };

/** segment.objects: the image, the masks' source and what to keep and how to cut it. */
export interface SegmentObjectsParams {
  model: string;
  /** The image file: a job input (upload) or one of the owner's images. */
  imageKey: string;
  imageId: string | null;
  source: SegmentObjectsSource;
  /** Objects with fewer pixels (after cleaning) are skipped. */
  minPixels: number;
  /** Holes and specks smaller than this many pixels are filled / removed from each mask. */
  cleanArea: number;
  /** Alpha feather radius in pixels (0: a hard edge). */
  feather: number;
  /** Upload every file to Google Drive (into folderId, or DRIVE_FOLDER_ID when null); null: keep them local only. */
  drive: { folderId: string | null } | null;
}

/** One extracted object: where it is, how good its mask is and its files. */
export type SegmentObject = {
  index: number;
  /** [x, y, w, h] of the cleaned mask, w = x1 − x0 of the inclusive box (as SAM's generator). */
  bbox: [number, number, number, number];
  area: number;
  /** Predicted IoU of the mask. */
  score: number;
  /** The generator's stability score; null for prompted masks. */
  stability_score: number | null;
  /** [x, y, width, height] of the object's PNG in the image (the tight crop). */
  crop_box: [number, number, number, number];
  object_file: string;
  mask_file: string;
  object_url: string;
  mask_url: string;
};

/** segment.objects: the objects saved (as artifacts, and on Drive when asked), how many were skipped and the extra files. */
export type SegmentObjectsResult = JsonObject & {
  job_id: string;
  model: string;
  width: number;
  height: number;
  mode: 'auto' | 'prompts';
  /** File names of the saved objects (object_{i}.png). */
  saved: string[];
  /** Masks dropped for having fewer than min_pixels pixels (after cleaning). */
  skipped: number;
  objects: SegmentObject[];
  /** Files uploaded to Google Drive (empty unless save_to_drive). */
  drive_files: { name: string; file_id: string; web_view: string }[];
  /** Why the Drive upload stopped (the local files are kept); null when it worked or was not asked for. */
  drive_error: string | null;
  overlay_url: string;
  metadata_url: string;
  visualization_url: string;
};
