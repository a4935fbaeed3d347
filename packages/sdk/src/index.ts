export {
  type Aperture,
  type ApertureOptions,
  createAperture,
  type Credentials,
  type JobResult,
  type JobType,
  type ResultOf,
  type TaskResult,
  type TokenResponse,
  type WaitOptions,
} from './client.js';
export { ApertureError, JobFailedError, type Problem, unwrap } from './errors.js';
export { type FileSource, fileFrom, multipart } from './multipart.js';
export type { components, operations, paths } from './generated/schema.js';
