import { applyDecorators } from '@nestjs/common';
import { plainToInstance, Transform } from 'class-transformer';
import { ValidateBy, type ValidationArguments, type ValidationError, validateSync } from 'class-validator';

/** A JSON field that could not be read (the reason, worded after the field's name). */
class Unreadable {
  constructor(readonly why: string) {}
}

export interface JsonFieldOptions {
  /** Most characters of the raw JSON text. */
  maxLength: number;
  /** The field holds a JSON array of the type, of at most this many items (else one JSON object). */
  maxItems?: number;
  /** With maxItems: one JSON object is also accepted, as an array of one. */
  single?: boolean;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A form field (multipart or query) holding JSON: parsed, made into the class (or an array of it, with maxItems)
 * and validated with the class's class-validator rules. Every error names its path from the field, e.g.
 * `points[0].label must be one of the following values: 0, 1`, so the 400 problem says what is wrong and where.
 * A value that is already parsed (a JSON body) is taken as is. Combine with @IsOptional() for an optional field.
 */
export function JsonField<T extends object>(type: () => new () => T, options: JsonFieldOptions): PropertyDecorator {
  const parse = (value: unknown): unknown => {
    let v = value;
    if (typeof v === 'string') {
      if (v.length > options.maxLength) return new Unreadable(`must be at most ${options.maxLength} characters of JSON`);
      try {
        v = JSON.parse(v) as unknown;
      } catch {
        return new Unreadable('must be valid JSON');
      }
    }
    const make = (item: unknown): unknown => (isPlainObject(item) ? plainToInstance(type(), item) : item);
    if (options.maxItems === undefined) return isPlainObject(v) ? make(v) : new Unreadable('must be a JSON object');
    if (options.single && isPlainObject(v)) return [make(v)];
    if (!Array.isArray(v)) return new Unreadable(options.single ? 'must be a JSON object or an array of them' : 'must be a JSON array');
    if (v.length > options.maxItems) return new Unreadable(`must hold at most ${options.maxItems} items`);
    return v.map(make);
  };
  const problems = (value: unknown, field: string): string[] => {
    if (value === undefined || value === null) return [`${field} must be given`];
    if (value instanceof Unreadable) return [`${field} ${value.why}`];
    const cls = type();
    const items = options.maxItems === undefined ? [value] : (value as unknown[]);
    return items.flatMap((item, i) => {
      const path = options.maxItems === undefined ? field : `${field}[${i}]`;
      if (!(item instanceof cls)) return [`${path} must be an object`];
      return messages(validateSync(item, { whitelist: true, forbidUnknownValues: true }), path);
    });
  };
  return applyDecorators(
    Transform(({ value }: { value: unknown }) => (value === undefined ? value : parse(value)), { toClassOnly: true }),
    ValidateBy({
      name: 'jsonField',
      validator: {
        validate: (value: unknown, a?: ValidationArguments) => problems(value, a?.property ?? 'value').length === 0,
        defaultMessage: (a?: ValidationArguments) => problems(a?.value, a?.property ?? 'value').join('; '),
      },
    }),
  );
}

/** class-validator's messages start with the property's name: prefix its path. */
function messages(errors: ValidationError[], parent: string): string[] {
  return errors.flatMap((e) => [
    ...Object.values(e.constraints ?? {}).map((m) => `${parent}.${m}`),
    ...messages(e.children ?? [], `${parent}.${e.property}`),
  ]);
}
