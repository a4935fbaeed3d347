import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsOptional } from 'class-validator';
import { IsInOpenInterval } from './validation.js';

/**
 * An optional detection threshold (a confidence or an NMS IoU threshold): a number strictly between 0 and 1. One rule
 * for every route that takes one (tasks, POST /models/{name}/infer): 0 would keep every candidate box and 1 none.
 */
export function IsThreshold(doc: { description: string; default?: number; example?: number }): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({ ...doc, minimum: 0, maximum: 1, exclusiveMinimum: true, exclusiveMaximum: true }),
    IsOptional(),
    Type(() => Number),
    IsInOpenInterval(0, 1),
  );
}
