import { applyDecorators } from '@nestjs/common';
import { plainToInstance, Transform } from 'class-transformer';
import { ValidateBy, type ValidationArguments, type ValidationError, validateSync } from 'class-validator';

/** A JSON field that could not be read (the reason, worded after the field's name). */
class Unreadable {
  /** `at`: the index path inside the field (e.g. `[2]`), empty for the field itself. */
  constructor(
    readonly why: string,
    readonly at = '',
  ) {}
}

export interface JsonFieldOptions {
  /** Most characters of the raw JSON text. */
  maxLength: number;
  /** The field holds a JSON array of the type, of at most this many items (else one JSON object). */
  maxItems?: number;
  /** With maxItems: one JSON object is also accepted, as an array of one. */
  single?: boolean;
  /**
   * With maxItems: the field holds one such array per item of a list (e.g. per image of a batch), at most this many:
   * an array of arrays, where null stands for an empty one. Errors name both indexes (`points[2][0].x …`).
   */
  lists?: number;
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
    const list = (x: unknown, at: string, max: number): unknown[] | Unreadable => {
      if (options.single && isPlainObject(x)) return [make(x)];
      const what = options.single ? 'a JSON object or an array of them' : 'a JSON array';
      if (!Array.isArray(x)) return new Unreadable(`must be ${what}`, at);
      if (x.length > max) return new Unreadable(`must hold at most ${max} items`, at);
      return x.map(make);
    };
    if (options.lists === undefined) return list(v, '', options.maxItems);
    if (!Array.isArray(v)) return new Unreadable('must be a JSON array with one list per item');
    if (v.length > options.lists) return new Unreadable(`must hold at most ${options.lists} lists`);
    const lists: unknown[][] = [];
    for (const [i, x] of v.entries()) {
      const l = x === null ? [] : list(x, `[${i}]`, options.maxItems);
      if (l instanceof Unreadable) return l;
      lists.push(l);
    }
    return lists;
  };
  const problems = (value: unknown, field: string): string[] => {
    if (value === undefined || value === null) return [`${field} must be given`];
    if (value instanceof Unreadable) return [`${field}${value.at} ${value.why}`];
    const cls = type();
    const check = (item: unknown, path: string): string[] =>
      item instanceof cls
        ? messages(validateSync(item, { whitelist: true, forbidUnknownValues: true }), path)
        : [`${path} must be an object`];
    if (options.maxItems === undefined) return check(value, field);
    if (options.lists === undefined) return (value as unknown[]).flatMap((item, i) => check(item, `${field}[${i}]`));
    return (value as unknown[][]).flatMap((l, i) => l.flatMap((item, j) => check(item, `${field}[${i}][${j}]`)));
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
