import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { codeForStatus, type ErrorCode, ProblemException, problemType } from './problem.js';

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: ErrorCode;
  [key: string]: unknown;
}

/** body-parser / raw-body errors carry a status and a type instead of being HttpExceptions. */
interface HttpishError {
  status?: number;
  statusCode?: number;
  type?: string;
  expose?: boolean;
  message?: string;
}

/** Clear sentences for the errors body-parser raises before a request reaches a controller. */
function bodyErrorDetail(type: string | undefined): string | undefined {
  if (type === 'entity.too.large') return 'Request body is larger than the allowed limit.';
  if (type === 'entity.parse.failed') return 'Request body is not valid JSON.';
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return 'Request body encoding is not supported.';
  return undefined;
}

/** Clear sentences for the multipart errors multer raises (Nest's message, then " - <field>" when it names one). */
const MULTIPART_DETAILS: Record<string, (field: string) => string> = {
  'File too large': (f) => `The file${f ? ` "${f}"` : ''} is larger than the upload size limit.`,
  'Too many files': () => 'Too many files in one request.',
  'Unexpected file field': (f) => `The file field "${f}" is not expected here, or holds more files than this route takes.`,
  'Field value too long': (f) => `The form field "${f}" is longer than a form field may be.`,
  'Too many fields': () => 'Too many form fields in one request.',
};

function multipartDetail(message: string): string | undefined {
  const m = /^(.+?)(?: - (.*))?$/.exec(message);
  return m ? MULTIPART_DETAILS[m[1]!]?.(m[2] ?? '') : undefined;
}

function isTerminusBody(body: unknown): boolean {
  return typeof body === 'object' && body !== null && 'status' in body && 'details' in body && 'info' in body;
}

/** Turns every error into RFC 9457 problem+json. 5xx get an error id that is logged and returned, never a stack. */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const ctx = host.switchToHttp();
    this.write(exception, ctx.getRequest<Request>(), ctx.getResponse<Response>());
  }

  /** Writes the problem+json answer for an error (also for plain Express middleware, outside Nest's pipeline). */
  write(exception: unknown, req: Request, res: Response): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    const instance = req.originalUrl?.split('?')[0] ?? req.url;
    let status = 500;
    let code: ErrorCode = 'INTERNAL_ERROR';
    let detail = 'Internal server error';
    let extras: Record<string, unknown> = {};

    if (exception instanceof ProblemException) {
      status = exception.getStatus();
      code = exception.code;
      detail = exception.detail;
      extras = exception.extras;
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const response = exception.getResponse();
      if (status === 503 && isTerminusBody(response)) {
        res.status(503).json(response);
        return;
      }
      code = codeForStatus(status);
      detail = bodyErrorDetail((exception.cause as HttpishError | undefined)?.type) ?? this.detailOf(response, exception.message, status);
    } else if (this.isHttpish(exception)) {
      const e = exception as HttpishError;
      status = e.status ?? e.statusCode ?? 500;
      code = codeForStatus(status);
      detail = bodyErrorDetail(e.type) ?? (e.expose && e.message ? e.message : detail);
    }

    if (status >= 500) {
      const errorId = randomUUID();
      // A deliberate 5xx problem (503 DRIVE_ERROR with the job it saved) keeps its extras; nothing else leaves.
      extras = { ...(exception instanceof ProblemException ? exception.extras : {}), error_id: errorId };
      if (status === 500) detail = `Internal server error. Quote error id ${errorId} when reporting it.`;
      this.logger.error({ err: exception, error_id: errorId, path: instance }, `Unhandled error ${errorId}`);
    }

    if (status === 429 && typeof extras['retry_after'] === 'number') res.setHeader('Retry-After', String(extras['retry_after']));
    const body: ProblemBody = {
      type: problemType(code),
      title: STATUS_CODES[status] ?? 'Error',
      status,
      detail,
      instance,
      code,
      ...extras,
    };
    res.status(status).type('application/problem+json').send(JSON.stringify(body));
  }

  private isHttpish(e: unknown): boolean {
    if (typeof e !== 'object' || e === null) return false;
    const s = (e as HttpishError).status ?? (e as HttpishError).statusCode;
    return typeof s === 'number' && s >= 400 && s < 600;
  }

  private detailOf(response: string | object, fallback: string, status: number): string {
    if (typeof response === 'string') return response;
    const msg = (response as { message?: unknown }).message;
    if (typeof msg === 'string') {
      // Nest's router 404: "Cannot GET /x" -> a clearer sentence.
      const m = /^Cannot (\w+) (.*)$/.exec(msg);
      if (status === 404 && m) return `No route ${m[1]} ${m[2]}.`;
      return multipartDetail(msg) ?? msg;
    }
    if (Array.isArray(msg)) return msg.join('; ');
    return fallback;
  }
}
