import { HttpException } from '@nestjs/common';

/** The `code` values every problem+json response carries (DESIGN.md §4). */
export const ERROR_CODES = [
  'VALIDATION_ERROR',
  'IMAGE_VALIDATION_ERROR',
  'MODEL_ERROR',
  'JOB_NOT_FOUND',
  'NOT_FOUND',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'CONFLICT',
  'RATE_LIMITED',
  'PAYLOAD_TOO_LARGE',
  'SERVICE_UNAVAILABLE',
  'DRIVE_ERROR',
  'INTERNAL_ERROR',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface FieldError {
  field: string;
  messages: string[];
}

export interface ProblemExtras {
  errors?: FieldError[];
  [key: string]: unknown;
}

/** An error that leaves the API as RFC 9457 problem details with the given code and detail. */
export class ProblemException extends HttpException {
  constructor(
    status: number,
    readonly code: ErrorCode,
    readonly detail: string,
    readonly extras: ProblemExtras = {},
  ) {
    super(detail, status);
  }
}

export const notFound = (detail: string, code: ErrorCode = 'NOT_FOUND'): ProblemException => new ProblemException(404, code, detail);
export const conflict = (detail: string, extras?: ProblemExtras): ProblemException => new ProblemException(409, 'CONFLICT', detail, extras);
export const badRequest = (detail: string, extras?: ProblemExtras): ProblemException =>
  new ProblemException(400, 'VALIDATION_ERROR', detail, extras);
export const unauthorized = (detail = 'Not authenticated'): ProblemException => new ProblemException(401, 'UNAUTHORIZED', detail);
export const forbidden = (detail = 'You do not have permission to perform this action.'): ProblemException =>
  new ProblemException(403, 'FORBIDDEN', detail);

/** The default code for a status when the thrower did not choose one. */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
    case 422:
      return 'VALIDATION_ERROR';
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'CONFLICT';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 429:
      return 'RATE_LIMITED';
    case 503:
      return 'SERVICE_UNAVAILABLE';
    default:
      return status >= 500 ? 'INTERNAL_ERROR' : 'VALIDATION_ERROR';
  }
}

export const problemType = (code: ErrorCode): string => `urn:aperture:problem:${code.toLowerCase().replace(/_/g, '-')}`;
