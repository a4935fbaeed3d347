import { type ArgumentMetadata, type PipeTransform, ValidationPipe, type ValidationError } from '@nestjs/common';
import { ValidateBy, type ValidationArguments } from 'class-validator';
import { type FieldError, ProblemException } from './problem.js';

function flatten(errors: ValidationError[], parent = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors) {
    const field = parent ? `${parent}.${e.property}` : e.property;
    if (e.constraints) out.push({ field, messages: Object.values(e.constraints) });
    if (e.children?.length) out.push(...flatten(e.children, field));
  }
  return out;
}

/** The first path (e.g. `points[0].label`) under which a value holds a string with a NUL character, or null. */
function nulPath(v: unknown, path: string, depth = 0): string | null {
  if (typeof v === 'string') return v.includes('\u0000') ? path : null;
  if (depth > 20 || typeof v !== 'object' || v === null || Buffer.isBuffer(v)) return null;
  for (const [k, x] of Object.entries(v)) {
    const found = nulPath(x, Array.isArray(v) ? `${path}[${k}]` : path ? `${path}.${k}` : k, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

/**
 * Runs before validation on every body, query and path parameter: text with a NUL character is refused (400). No
 * field of this API means one, and PostgreSQL cannot store or even compare it (the driver fails the whole query).
 */
export class RejectNulPipe implements PipeTransform {
  transform(value: unknown, meta: ArgumentMetadata): unknown {
    if (meta.type === 'custom') return value;
    const at = nulPath(value, meta.type === 'param' || meta.type === 'query' ? (meta.data ?? '') : '');
    if (at !== null) {
      const field = at || meta.data || meta.type;
      throw new ProblemException(400, 'VALIDATION_ERROR', `${field} must not contain NUL (\\u0000) characters`, {
        errors: [{ field, messages: ['must not contain NUL (\\u0000) characters'] }],
      });
    }
    return value;
  }
}

/**
 * A DTO class may answer its most common input itself (a static `fastParse`, e.g. the empty query of a polled route):
 * the instance the full validation would produce, or undefined to validate as usual. It must never accept what the
 * full validation refuses, nor answer anything else than it would.
 */
export interface FastParsing<T> {
  fastParse(value: unknown): T | undefined;
}

const hasFastParse = (metatype: unknown): metatype is FastParsing<unknown> =>
  typeof metatype === 'function' && typeof (metatype as Partial<FastParsing<unknown>>).fastParse === 'function';

/** ValidationPipe, asking a DTO's fastParse first (class-transformer and class-validator cost ~0.05 ms a call). */
class FastPathValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (hasFastParse(metadata.metatype)) {
      const parsed = metadata.metatype.fastParse(value);
      if (parsed !== undefined) return parsed;
    }
    return super.transform(value, metadata);
  }
}

/** The global pipe: strips unknown fields, rejects forbidden ones, converts types, answers problem+json. */
export function createValidationPipe(): ValidationPipe {
  return new FastPathValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors: ValidationError[]) => {
      const fields = flatten(errors);
      const detail = fields.map((f) => f.messages.join(', ')).join('; ') || 'Request validation failed';
      return new ProblemException(400, 'VALIDATION_ERROR', detail, { errors: fields });
    },
  });
}

/** A number strictly between min and max (e.g. a confidence threshold in (0, 1)). */
export function IsInOpenInterval(min: number, max: number): PropertyDecorator {
  return ValidateBy({
    name: 'isInOpenInterval',
    validator: {
      validate: (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > min && v < max,
      defaultMessage: (a?: ValidationArguments) => `${a?.property ?? 'value'} must be a number strictly between ${min} and ${max}`,
    },
  });
}
