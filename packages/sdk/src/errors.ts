/** An RFC 9457 problem as Aperture answers every error (`code` is stable; `detail` is for people). */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  [key: string]: unknown;
}

/** An error answer of the API, with its problem body. */
export class ApertureError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(`${status} ${problem.code ?? problem.title ?? 'error'}: ${problem.detail ?? ''}`.trim());
    this.name = 'ApertureError';
  }
}

/** A job that ended failed or cancelled, with the job's error. */
export class JobFailedError extends Error {
  constructor(
    readonly jobId: string,
    readonly status: string,
    readonly error: string | null,
  ) {
    super(`Job ${jobId} ${status}${error ? `: ${error}` : ''}`);
    this.name = 'JobFailedError';
  }
}

/** The result, or an ApertureError for an error answer (openapi-fetch's `{ data, error, response }`). */
export function unwrap<T>(res: { data?: T; error?: unknown; response: Response }): T {
  if (res.response.ok) return res.data as T;
  const problem = (res.error && typeof res.error === 'object' ? res.error : { detail: String(res.error ?? '') }) as Problem;
  throw new ApertureError(res.response.status, problem);
}
