import { plainToInstance } from 'class-transformer';
import { IsIn, IsNumber, IsOptional, validateSync } from 'class-validator';
import { describe, expect, it } from 'vitest';
import { JsonField } from './json-field.js';

class Point {
  @IsNumber() x!: number;
  @IsNumber() y!: number;
  @IsOptional() @IsIn([0, 1]) label?: 0 | 1;
}

class Form {
  @IsOptional()
  @JsonField(() => Point, { maxLength: 1000, maxItems: 2 })
  points?: Point[];

  @IsOptional()
  @JsonField(() => Point, { maxLength: 1000, maxItems: 2, lists: 3, single: true })
  lists?: Point[][];
}

const check = (plain: Record<string, unknown>): { value: Form; errors: string[] } => {
  const value = plainToInstance(Form, plain);
  const errors = validateSync(value).flatMap((e) => Object.values(e.constraints ?? {}));
  return { value, errors };
};

describe('JsonField', () => {
  it('reads a JSON array of objects into the class, from text or as sent', () => {
    const { value, errors } = check({ points: '[{"x":1,"y":2}]' });
    expect(errors).toEqual([]);
    expect(value.points![0]).toBeInstanceOf(Point);
    expect(check({ points: [{ x: 1, y: 2 }] }).errors).toEqual([]);
  });

  it('names the item and the property of an error', () => {
    expect(check({ points: '[{"x":1,"y":2},{"x":"a","y":2}]' }).errors).toEqual([
      'points[1].x must be a number conforming to the specified constraints',
    ]);
    expect(check({ points: '[{"x":1,' }).errors).toEqual(['points must be valid JSON']);
    expect(check({ points: '[{},{},{}]' }).errors).toEqual(['points must hold at most 2 items']);
  });

  it('lists: one array per item, null for none, one object for a list of one; errors name both indexes', () => {
    const { value, errors } = check({ lists: '[[{"x":1,"y":2}],null,{"x":3,"y":4}]' });
    expect(errors).toEqual([]);
    expect(value.lists!.map((l) => l.length)).toEqual([1, 0, 1]);
    expect(value.lists![2]![0]).toBeInstanceOf(Point);
    expect(check({ lists: [[], [{ x: 1, y: 2, label: 5 }]] }).errors).toEqual([
      'lists[1][0].label must be one of the following values: 0, 1',
    ]);
    expect(check({ lists: '[[],[],[],[]]' }).errors).toEqual(['lists must hold at most 3 lists']);
    expect(check({ lists: '[[],[{},{},{}]]' }).errors).toEqual(['lists[1] must hold at most 2 items']);
    expect(check({ lists: '[[], 7]' }).errors).toEqual(['lists[1] must be a JSON object or an array of them']);
    expect(check({ lists: '{"x":1,"y":2}' }).errors).toEqual(['lists must be a JSON array with one list per item']);
  });
});
