import {
  type CallHandler,
  type ExecutionContext,
  HttpCode,
  HttpStatus,
  Injectable,
  type NestInterceptor,
  type Type,
  UseInterceptors,
  applyDecorators,
} from '@nestjs/common';
import { ApiExtraModels, ApiHeader, ApiResponse, type ReferenceObject, type SchemaObject, getSchemaPath } from '@nestjs/swagger';
import { EntityManager } from '@mikro-orm/core';
import type { Server } from 'node:http';
import type { Request, Response } from 'express';
import { type Observable, from, mergeMap, of } from 'rxjs';
import { Job } from '@aperture/database/entities/job.entity.js';
import { JobWaiter } from '@aperture/queue/job-events.js';
import { JobResultDto } from './jobs.dto.js';

/** The longest `Prefer: wait` honoured, in seconds; a larger value is clamped to it (and the applied value echoed). */
export const MAX_PREFER_WAIT_S = 60;

/**
 * The `wait` preference of RFC 7240 in a Prefer header (one value, or several headers): its delta-seconds, unclamped,
 * or null when there is none or it is malformed. The header is a comma-separated list of preferences, each a token
 * with an optional `=value` (token or quoted-string) and `;parameters`; names are case-insensitive, commas inside
 * quoted strings do not split. As RFC 7240 §2 says, only the first `wait` counts: when it is malformed (no value,
 * not 1*DIGIT), the preference is ignored, not replaced by a later one.
 */
export function parsePreferWait(header: string | readonly string[] | undefined): number | null {
  if (header === undefined) return null;
  const text = typeof header === 'string' ? header : header.join(',');
  for (const pref of splitOutsideQuotes(text, ',')) {
    const head = splitOutsideQuotes(pref, ';')[0]!;
    const eq = head.indexOf('=');
    const name = (eq < 0 ? head : head.slice(0, eq)).trim().toLowerCase();
    if (name !== 'wait') continue;
    if (eq < 0) return null;
    let value = head.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    if (!/^\d+$/.test(value)) return null;
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : MAX_PREFER_WAIT_S; // delta-seconds too large to represent is "very long"
  }
  return null;
}

/** The wait applied for a Prefer header, in seconds (clamped to MAX_PREFER_WAIT_S), or null without a valid one. */
export function appliedPreferWait(header: string | readonly string[] | undefined): number | null {
  const n = parsePreferWait(header);
  return n === null ? null : Math.min(n, MAX_PREFER_WAIT_S);
}

/**
 * `Prefer: wait` holds a request for up to MAX_PREFER_WAIT_S before answering: no socket idle timeout, and a request
 * timeout (the time allowed to receive a request) well above it, whatever a future Node default is.
 */
export function allowLongWaits(server: Server): void {
  server.setTimeout(0);
  const floor = (MAX_PREFER_WAIT_S + 60) * 1000;
  if (server.requestTimeout !== 0 && server.requestTimeout < floor) server.requestTimeout = floor;
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted && c === '\\' && i + 1 < s.length) {
      cur += c + s[++i]!;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * What a job-creating route hands back under @JobCreatingRoute: its usual accepted answer, the jobs it created, and
 * how to read their result (the body of the route's own result endpoint). Without `Prefer: wait` the accepted answer
 * is sent as it is; with it, the result once every job is final within the wait.
 */
export class JobAnswer<A, R> {
  constructor(
    readonly accepted: A,
    /** The jobs to wait for, or how to find them (read only when the client prefers to wait). */
    readonly jobIds: readonly string[] | (() => Promise<readonly string[]>),
    /** Reads the result once the jobs are final, with a fresh EntityManager of its own. */
    readonly result: (em: EntityManager) => Promise<R>,
  ) {}

  /** One job whose result endpoint is GET /jobs/{id}/result. */
  static ofJob<A>(accepted: A, jobId: string): JobAnswer<A, JobResultDto> {
    return new JobAnswer(accepted, [jobId], async (em) => JobResultDto.from(await em.findOneOrFail(Job, { id: jobId })));
  }
}

/**
 * Honours `Prefer: wait=N` for the routes of @JobCreatingRoute: waits (on job events, never by polling) until every
 * job the route created is final, for at most N seconds (at most MAX_PREFER_WAIT_S), and answers 200 with the result;
 * else the route's own answer with its own status. The wait ends at once when the client goes away. Every answer of
 * such a route carries `Vary: Prefer`; one that honoured the preference carries `Preference-Applied: wait=N`.
 */
@Injectable()
export class PreferWaitInterceptor implements NestInterceptor {
  constructor(
    private readonly waiter: JobWaiter,
    private readonly em: EntityManager,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<Request>();
    const res = ctx.switchToHttp().getResponse<Response>();
    res.vary('Prefer');
    const wait = appliedPreferWait(req.headers['prefer']);
    return next
      .handle()
      .pipe(
        mergeMap((out: unknown) => (out instanceof JobAnswer ? from(this.settle(out as JobAnswer<unknown, unknown>, wait, res)) : of(out))),
      );
  }

  private async settle(answer: JobAnswer<unknown, unknown>, wait: number | null, res: Response): Promise<unknown> {
    if (wait === null) return answer.accepted;
    res.setHeader('Preference-Applied', `wait=${wait}`);
    const abort = new AbortController();
    const onClose = (): void => abort.abort();
    // The response's close, not the request's: the request ends once its body is read, the response when the
    // answer is sent or the client goes away.
    res.once('close', onClose);
    try {
      const ids = typeof answer.jobIds === 'function' ? await answer.jobIds() : answer.jobIds;
      const final = await this.waiter.whenAllFinal(ids, wait * 1000, (ids) => this.unfinished(ids), abort.signal);
      if (!final || abort.signal.aborted) return answer.accepted;
      const body = await answer.result(this.em.fork());
      res.status(HttpStatus.OK);
      return body;
    } finally {
      res.off('close', onClose);
    }
  }

  private async unfinished(ids: string[]): Promise<string[]> {
    const rows = await this.em
      .fork()
      .find(Job, { id: { $in: ids }, status: { $in: ['queued', 'running'] } }, { fields: ['id'], disableIdentityMap: true });
    return rows.map((j) => j.id);
  }
}

type Body = Type<unknown> | [Type<unknown>] | { schema: SchemaObject & Partial<ReferenceObject>; models?: Type<unknown>[] };

function content(body: Body): { type?: Type<unknown> | [Type<unknown>]; schema?: SchemaObject & Partial<ReferenceObject> } {
  return typeof body === 'function' || Array.isArray(body) ? { type: body } : { schema: body.schema };
}

const PREFER_DOC =
  'RFC 7240. With wait=N (delta-seconds; more than 60 is taken as 60), the request is held until the job(s) it creates are ' +
  'final (completed, failed or cancelled) or N seconds have passed: then 200 with the result, as the route’s result endpoint ' +
  'gives it (a failed or cancelled job too: its status says so), else the usual answer. Other preferences (respond-async, ' +
  'handling) may be in the same header; a malformed wait is ignored.';

const WAIT_HEADERS = {
  'Preference-Applied': {
    description: 'wait=N, the wait applied (after clamping), when the request carried Prefer: wait',
    schema: { type: 'string' },
  },
  Vary: { description: 'Prefer', schema: { type: 'string' } },
};

/**
 * The contract of a route that creates one or more jobs and answers with where to follow them: its accepted status
 * (202 unless said), the Prefer header and the 200 that `Prefer: wait` can turn it into, with the headers of both.
 * The handler returns a JobAnswer (or, for an answer with nothing queued, its plain DTO).
 */
export function JobCreatingRoute(opts: {
  accepted: Type<unknown>;
  acceptedDescription?: string;
  acceptedStatus?: HttpStatus;
  result: Body;
  resultDescription: string;
}): MethodDecorator {
  const status = opts.acceptedStatus ?? HttpStatus.ACCEPTED;
  const models = typeof opts.result === 'object' && !Array.isArray(opts.result) ? (opts.result.models ?? []) : [];
  return applyDecorators(
    HttpCode(status),
    UseInterceptors(PreferWaitInterceptor),
    ...(models.length ? [ApiExtraModels(...models)] : []),
    ApiHeader({ name: 'Prefer', required: false, description: PREFER_DOC, schema: { type: 'string', example: 'wait=30' } }),
    ApiResponse({
      status,
      type: opts.accepted,
      description: opts.acceptedDescription ?? 'Queued (or not finished within Prefer: wait): follow the job',
      headers: WAIT_HEADERS,
    }),
    ApiResponse({
      status: HttpStatus.OK,
      ...content(opts.result),
      description: `With Prefer: wait, once final within it: ${opts.resultDescription}`,
      headers: WAIT_HEADERS,
    }),
  );
}

/** A schema reference to a DTO, for JobCreatingRoute results made of several bodies. */
export const ref = (t: Type<unknown>): ReferenceObject => ({ $ref: getSchemaPath(t) });

/** The 200 of a route whose result endpoint is GET /jobs/{id}/result, in words. */
export const JOB_RESULT =
  'the job result, as GET /jobs/{id}/result gives it (result null and status failed or cancelled if it did not complete)';
