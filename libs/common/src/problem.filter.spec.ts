import type { ArgumentsHost } from '@nestjs/common';
import { BadRequestException, NotFoundException, PayloadTooLargeException } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { ProblemDetailsFilter } from './problem.filter.js';
import { ProblemException } from './problem.js';

function capture(exception: unknown): { status: number; type: string; body: Record<string, unknown> } {
  const out = { status: 0, type: '', body: {} as Record<string, unknown> };
  const res = {
    headersSent: false,
    status(s: number) {
      out.status = s;
      return this;
    },
    type(t: string) {
      out.type = t;
      return this;
    },
    send(b: string) {
      out.body = JSON.parse(b);
      return this;
    },
    json(b: Record<string, unknown>) {
      out.body = b;
      return this;
    },
  };
  const host = {
    getType: () => 'http',
    switchToHttp: () => ({ getRequest: () => ({ originalUrl: '/api/v1/x?y=1', url: '/api/v1/x?y=1' }), getResponse: () => res }),
  } as unknown as ArgumentsHost;
  new ProblemDetailsFilter().catch(exception, host);
  return out;
}

describe('ProblemDetailsFilter', () => {
  it('turns an unexpected error into a 500 with an error id and no stack or message leak', () => {
    const r = capture(new Error('secret connection string postgres://u:p@db'));
    expect(r.status).toBe(500);
    expect(r.type).toBe('application/problem+json');
    expect(r.body).toMatchObject({ status: 500, code: 'INTERNAL_ERROR', instance: '/api/v1/x' });
    expect(r.body.error_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(String(r.body.detail)).toContain(String(r.body.error_id));
    expect(JSON.stringify(r.body)).not.toContain('secret');
    expect(JSON.stringify(r.body)).not.toContain('at ');
  });

  it('keeps the extras of a deliberate 5xx problem (503 DRIVE_ERROR with its job) beside the error id', () => {
    const r = capture(new ProblemException(503, 'DRIVE_ERROR', 'Drive refused.', { job_id: 'j1' }));
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ code: 'DRIVE_ERROR', detail: 'Drive refused.', job_id: 'j1' });
    expect(r.body.error_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('keeps the code and detail of a ProblemException, and maps plain HttpExceptions by status', () => {
    expect(capture(new ProblemException(409, 'CONFLICT', 'Taken.', { errors: [{ field: 'a', messages: ['b'] }] })).body).toMatchObject({
      status: 409,
      code: 'CONFLICT',
      detail: 'Taken.',
      errors: [{ field: 'a', messages: ['b'] }],
    });
    expect(capture(new NotFoundException('Cannot GET /nope')).body).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
      detail: 'No route GET /nope.',
    });
  });

  it("rewrites multer's multipart errors as sentences naming the field", () => {
    expect(capture(new PayloadTooLargeException('File too large - image')).body).toMatchObject({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
      detail: 'The file "image" is larger than the upload size limit.',
    });
    expect(capture(new BadRequestException('Unexpected file field - images')).body.detail).toBe(
      'The file field "images" is not expected here, or holds more files than this route takes.',
    );
    expect(capture(new BadRequestException('Field value too long - points')).body.detail).toBe(
      'The form field "points" is longer than a form field may be.',
    );
    expect(capture(new BadRequestException('Too many fields')).body.detail).toBe('Too many form fields in one request.');
    expect(capture(new BadRequestException('Something else - x')).body.detail).toBe('Something else - x');
  });
});
