import type { LengthUnit } from '@aperture/common/length-units.js';

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

/** Seed 001: oriented primitives, then the scene from them. Models by manifest name. */
export interface PredictTaskParams {
  imageId: string;
  detectionModel: string;
  classificationModel: string;
  conf: number;
  iou: number;
}

/** Seed 000: fragment masks, sizes calibrated by the red ball. */
export interface FragmentsTaskParams {
  imageId: string;
  model: string;
  realRadius: number | null;
  unit: LengthUnit;
  conf: number;
  iou: number;
}

/** Seed 003: one project image through the project's model. */
export interface ProjectDetectParams {
  projectId: string;
  imageId: string;
  model: string;
  conf: number;
  iou: number;
}

export interface JobPayloads {
  'qr.batch': { batchId: string };
  'model.infer': { model: string; imageKey: string; options: InferOptions };
  'task.predict': PredictTaskParams;
  'task.fragments': FragmentsTaskParams;
  'project.detect': ProjectDetectParams;
}
export type JobType = keyof JobPayloads;

export const JOB_TYPES: Record<JobType, { queue: QueueName; description: string }> = {
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
};

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
