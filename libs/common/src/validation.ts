import { ValidationPipe, type ValidationError } from '@nestjs/common';
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

/** The global pipe: strips unknown fields, rejects forbidden ones, converts types, answers problem+json. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
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
