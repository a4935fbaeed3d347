import { createHash, randomUUID } from 'node:crypto';

/** A model name or version as one key segment: itself when it is a valid segment, else a digest of it. */
const segment = (v: string): string =>
  /^[a-z0-9][a-z0-9._-]{0,99}$/.test(v) ? v : `h-${createHash('sha256').update(v).digest('hex').slice(0, 32)}`;

/**
 * Every storage key Aperture writes, in one place. Keys are generated here from record ids (never user-sent names):
 *   images/{imageId}/original          an uploaded image
 *   jobs/{jobId}/attempt-{n}/{uuid}    a file written by attempt n of a job (each attempt has its own prefix)
 *   inputs/{jobId}/{name}              an input uploaded with a job (kept apart from the attempts' files)
 *   embeddings/{sha256}/{model}/{version}/embedding.f32, …/meta.json
 *                                      a SAM image embedding of an image file (by its sha256) and what it was made with
 *   booth/{submissionId}/{file}        a booth photo (original) and its confirmed pair ({uuid}-xray.png, {uuid}-original.png)
 *   carousel/{entryId}/{file}          a carousel entry's own copies (xray.png, original.png)
 *   models/{installedModelId}/{role}.onnx  an ONNX file of a model installed through the API
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
  /**
   * A SAM image embedding of the image file with this sha256 by one version of a model: the raw float32 bytes and
   * its description (written last, so its presence means both are complete). Shared by every image with those bytes.
   */
  embedding: (sha256: string, model: string, version: string): { data: string; meta: string } => {
    const dir = `embeddings/${sha256}/${segment(model)}/${segment(version)}`;
    return { data: `${dir}/embedding.f32`, meta: `${dir}/meta.json` };
  },
  /** Every embedding of one image file (for deletion once no image has those bytes). */
  embeddingPrefix: (sha256: string): string => `embeddings/${sha256}`,
  /** A booth submission's files: the photo as uploaded (original), then the confirmed pair (xray.png, original.png). */
  boothOriginal: (submissionId: string): string => `booth/${submissionId}/original`,
  /** One file of a confirmed pair, under a generated name (two racing confirmations never share a key). */
  boothResult: (submissionId: string, file: 'xray.png' | 'original.png'): string => `booth/${submissionId}/${randomUUID()}-${file}`,
  boothPrefix: (submissionId: string): string => `booth/${submissionId}`,
  /** A carousel entry's copies of its pair. */
  carousel: (entryId: string, file: 'xray.png' | 'original.png'): string => `carousel/${entryId}/${file}`,
  carouselPrefix: (entryId: string): string => `carousel/${entryId}`,
  /** One ONNX file (by role: model, encoder, decoder) of an installed model, under the installation's record id. */
  installedModelFile: (installedModelId: string, role: string): string => `models/${installedModelId}/${role}.onnx`,
  installedModelPrefix: (installedModelId: string): string => `models/${installedModelId}`,
} as const;
