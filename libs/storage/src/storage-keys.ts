import { randomUUID } from 'node:crypto';

/**
 * Every storage key Aperture writes, in one place. Keys are generated here from record ids (never user-sent names):
 *   images/{imageId}/original          an uploaded image
 *   jobs/{jobId}/attempt-{n}/{uuid}    a file written by attempt n of a job (each attempt has its own prefix)
 *   inputs/{jobId}/{name}              an input uploaded with a job (kept apart from the attempts' files)
 */
export const StorageKeys = {
  /** The uploaded file of an image. */
  imageOriginal: (imageId: string): string => `images/${imageId}/original`,
  /** Everything stored for an image (for deletion). */
  imagePrefix: (imageId: string): string => `images/${imageId}`,
  /** Everything the attempts of a job wrote (for deletion). */
  jobPrefix: (jobId: string): string => `jobs/${jobId}`,
  /** What one attempt of a job wrote (for discarding that attempt only). */
  jobAttemptPrefix: (jobId: string, attempt: number): string => `jobs/${jobId}/attempt-${attempt}`,
  /** A new artifact of one attempt of a job, under a generated name. */
  jobArtifact: (jobId: string, attempt: number, name: string = randomUUID()): string => `jobs/${jobId}/attempt-${attempt}/${name}`,
  /** An input uploaded with a job. */
  input: (jobId: string, name: string): string => `inputs/${jobId}/${name}`,
  /** Every input uploaded with a job (for deletion). */
  inputPrefix: (jobId: string): string => `inputs/${jobId}`,
} as const;
