import type { LengthUnit } from '@aperture/common/length-units.js';
import type { JsonObject } from '@aperture/database/entities/job.entity.js';
import type { SegmentAutoParams, SegmentAutoResult } from './segment-auto.types.js';
import type { SegmentObjectsParams, SegmentObjectsResult } from './segment-objects.types.js';

/**
 * The typed job registry: every job type, the queue it runs on and the payload it carries.
 * A Bull job carries only `{ jobId }`: the payload lives in the Job record's params, typed here.
 * The worker refuses to boot unless every type below has exactly one handler.
 */
export const QUEUES = ['default', 'inference'] as const;
export type QueueName = (typeof QUEUES)[number];

/** Options of a direct model inference (POST /models/{name}/infer). */
export interface InferOptions {
  conf?: number;
  iou?: number;
  max_det?: number;
  /** SAM prompts in original-image pixels. */
  points?: { x: number; y: number; label: 0 | 1 }[];
  box?: { x1: number; y1: number; x2: number; y2: number };
}

/** Prediction task: oriented primitives, then the scene from them. Models by manifest name. */
export interface PredictTaskParams {
  imageId: string;
  detectionModel: string;
  classificationModel: string;
  conf: number;
  iou: number;
}

/** Fragment analysis: fragment masks, sizes calibrated by the red ball. */
export interface FragmentsTaskParams {
  imageId: string;
  model: string;
  realRadius: number | null;
  unit: LengthUnit;
  conf: number;
  iou: number;
}

/** Projects: one project image through the project's model. */
export interface ProjectDetectParams {
  projectId: string;
  imageId: string;
  model: string;
  conf: number;
  iou: number;
}

/** Prompt segmentation (POST /segment/points, /segment/box): one prompt set per box (or one for points alone). */
export const SEGMENT_OUTPUTS = ['rle', 'png', 'coco_rle'] as const;
export type SegmentOutput = (typeof SEGMENT_OUTPUTS)[number];

export interface SegmentPromptParams {
  model: string;
  /** The image file: a job input (upload) or one of the owner's images. */
  imageKey: string;
  /** Prompt sets in original-image pixels. */
  prompts: { points?: { x: number; y: number; label: 0 | 1 }[]; box?: { x1: number; y1: number; x2: number; y2: number } }[];
  /** True: the decoder's 3 multimask outputs per prompt set; false: the single mask the pipeline picks. */
  multimask: boolean;
  output: SegmentOutput;
}

/** A SAM image embedding of one of the user's images (GET /images/{id}/embedding), stored for client-side decoding. */
export interface ImageEmbeddingParams {
  model: string;
  imageId: string;
  imageKey: string;
}

/** Booth: the X-ray result options of one submitted photo (by the worker's xray model, or an external worker's lease). */
export interface BoothXrayParams {
  submissionId: string;
  /** The stored photo. */
  imageKey: string;
  /** The image-to-image model an internal worker runs. */
  model: string;
  /** How many result options to make. */
  options: number;
}

export interface JobPayloads {
  'qr.batch': { batchId: string };
  'model.infer': { model: string; imageKey: string; options: InferOptions };
  'task.predict': PredictTaskParams;
  'task.fragments': FragmentsTaskParams;
  'project.detect': ProjectDetectParams;
  'segment.prompt': SegmentPromptParams;
  'segment.auto': SegmentAutoParams;
  'image.embedding': ImageEmbeddingParams;
  'segment.objects': SegmentObjectsParams;
  'booth.xray': BoothXrayParams;
}
export type JobType = keyof JobPayloads;

/** Width and height of the image a job worked on, in pixels. */
export type ImageSize = { width: number; height: number };

/** qr.batch: the rendered PDF (an artifact) and its numbers. */
export type QrBatchResult = {
  batch_id: string;
  codes: number;
  pages: number;
  pdf_artifact_id: string;
  pdf_bytes: number;
  render_ms: number;
};

/** model.infer: what the model's kind produced (detections, masks, a SAM mask or X-ray options), with the timings. */
export type ModelInferResult = JsonObject & {
  model: string;
  kind: string;
  width: number;
  height: number;
  timings_ms: { decode: number; preprocess: number; postprocess: number; total: number };
};

/** task.predict: the primitives found and the scene classified from them. */
export type PredictTaskResult = {
  image_class: string | null;
  class_probs: JsonObject | null;
  primitives: JsonObject[];
  count: number;
  detection_model: string;
  classification_model: string;
  image: ImageSize;
  note: string | null;
};

/** task.fragments: the fragment analysis (sizes, D10/D50/D90, …) and what it was asked with. */
export type FragmentsTaskResult = JsonObject & {
  model: string;
  real_radius: number | null;
  requested_unit: LengthUnit;
  conf: number;
  iou: number;
  image: ImageSize;
};

/** project.detect: the detections and the annotated image (an artifact). */
export type ProjectDetectResult = {
  model: string;
  count: number;
  detections: JsonObject[];
  image: ImageSize;
  annotated_artifact_id: string;
};

/** segment.prompt: masks per prompt set (each with mask_index, score, bbox, area, mask) and the SVG artifact. */
export type SegmentPromptResult = JsonObject & {
  model: string;
  width: number;
  height: number;
  results: JsonObject[];
  visualization_artifact_id: string | null;
};

/**
 * image.embedding: where the embedding's bytes are (StorageKeys.embedding) and what a client needs to run the SAM
 * decoder on them itself. Also stored as the embedding's meta.json.
 */
export type ImageEmbeddingResult = {
  model: string;
  version: string;
  /** sha256 of the image file the embedding was computed from. */
  sha256: string;
  data_key: string;
  /** image_embeddings dims, e.g. [1, 256, 64, 64]. */
  shape: number[];
  dtype: 'float32';
  byte_length: number;
  /** The original image size (after EXIF orientation): the decoder's orig_im_size is [height, width]. */
  width: number;
  height: number;
  /** The encoder's square input side (SAM: 1024) and ResizeLongestSide's scale = input_size / max(width, height). */
  input_size: number;
  scale: number;
  /** The image's size inside the encoder input (the rest is zero padding). */
  resized_width: number;
  resized_height: number;
  /** Whether the worker's embedding cache already held it (no encoder run). */
  cache_hit: boolean;
};

/** One stored result option of a booth job: the artifact option-{index}. */
export type BoothOption = { index: number; artifact_id: string; style: string; content_type: string };

/** booth.xray: the result options (artifacts option-0 … option-{n-1}) and who made them. */
export type BoothXrayResult = {
  source: 'internal' | 'external';
  model: string | null;
  options: BoothOption[];
};

/** What each job type's handler returns; stored as the Job record's result (JSON). */
export interface JobResults {
  'qr.batch': QrBatchResult;
  'model.infer': ModelInferResult;
  'task.predict': PredictTaskResult;
  'task.fragments': FragmentsTaskResult;
  'project.detect': ProjectDetectResult;
  'segment.prompt': SegmentPromptResult;
  'segment.auto': SegmentAutoResult;
  'image.embedding': ImageEmbeddingResult;
  'segment.objects': SegmentObjectsResult;
  'booth.xray': BoothXrayResult;
}

/** Every result must be storable as JSON: this fails to compile if one is not. */
export type JobResultsAreJson = { [K in JobType]: JobResults[K] extends JsonObject ? true : never };

export const JOB_TYPES: Record<JobType, { queue: QueueName; description: string; leasable?: true }> = {
  'qr.batch': { queue: 'default', description: 'Render a batch of unique QR codes into a print-ready PDF' },
  'model.infer': {
    queue: 'inference',
    description: 'Run one model on one uploaded image (detections, masks, SAM prompt or X-ray options)',
  },
  'task.predict': { queue: 'inference', description: 'Prediction task: oriented primitives, then the scene classified from them' },
  'task.fragments': {
    queue: 'inference',
    description: 'Fragment analysis: masks, calibrated diameters, D10/D50/D90, overlay, chart and CSV',
  },
  'project.detect': { queue: 'inference', description: "One project image through the project's model: detections and an annotated image" },
  'segment.prompt': {
    queue: 'inference',
    description: 'SAM prompt segmentation: masks for points and/or boxes, with an SVG visualization',
  },
  'segment.auto': { queue: 'inference', description: 'Automatic segmentation: every mask SAM finds on an image (a grid of clicks)' },
  'image.embedding': {
    queue: 'inference',
    description: "SAM image embedding of one of the user's images, stored for decoding on the client",
  },
  'segment.objects': {
    queue: 'inference',
    description: 'Object extraction: each SAM mask cleaned and cut out as an RGBA PNG, with masks, an overlay and metadata',
  },
  'booth.xray': {
    queue: 'inference',
    description: 'Booth: the X-ray result options of one photo (internal xray model, or an external worker over HTTP)',
    leasable: true,
  },
};

/** The name of a booth job's option n among its artifacts. */
export const boothOptionName = (n: number): string => `option-${n}`;

/** The job types that are prediction tasks (routes under /tasks). */
export const TASK_JOB_TYPES = ['task.predict', 'task.fragments'] as const satisfies readonly JobType[];

export const ALL_JOB_TYPES = Object.keys(JOB_TYPES) as JobType[];

export function isJobType(value: string): value is JobType {
  return Object.prototype.hasOwnProperty.call(JOB_TYPES, value);
}

/** What Bull stores for a job: the id of the Job record. */
export interface BullJobData {
  jobId: string;
}

/** Redis pub/sub channel (under the deployment prefix) on which cancellations of running jobs are announced. */
export const CANCEL_CHANNEL = 'jobs:cancel';

/** The model a job runs, for listing and filtering (its main one: a prediction task's detector); null for a job without one. */
export function jobModel<T extends JobType>(type: T, params: JobPayloads[T]): string | null {
  if (type === 'task.predict') return (params as PredictTaskParams).detectionModel;
  const model = (params as { model?: unknown }).model;
  return typeof model === 'string' ? model : null;
}

/** How many images a job of this type works on: one for every image job, none for a QR batch. */
export function jobImageCount(type: string): number {
  return type === 'qr.batch' ? 0 : 1;
}
