import { applyDecorators, type Type } from '@nestjs/common';
import { ApiExtraModels, ApiOkResponse, ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';
import { Type as TransformType } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

/**
 * The last page a list can be asked for: 100 000 pages of up to 100 items. Past it the offset would overflow the
 * database's integer (page=10000000000000000000 was a 500); it is a 400 instead.
 */
export const MAX_PAGE = 100_000;

export class PageQueryDto {
  @ApiPropertyOptional({ minimum: 1, maximum: MAX_PAGE, default: 1 })
  @IsOptional()
  @TransformType(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_PAGE)
  page: number = 1;

  @ApiPropertyOptional({ minimum: 1, maximum: 100, default: 20 })
  @IsOptional()
  @TransformType(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  page_size: number = 20;
}

export class PageMetaDto {
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() page_size!: number;
  @ApiProperty() total_pages!: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
  total_pages: number;
}

/** The limit and offset of a page query, for find/findAndCount options. */
export function pageOptions(q: Pick<PageQueryDto, 'page' | 'page_size'>): { limit: number; offset: number } {
  return { limit: q.page_size, offset: (q.page - 1) * q.page_size };
}

export function toPage<T>(items: T[], total: number, q: PageQueryDto): Page<T> {
  return { items, total, page: q.page, page_size: q.page_size, total_pages: Math.ceil(total / q.page_size) };
}

/** Documents a `{items, total, page, page_size, total_pages}` response of the given item type. */
export const ApiPageResponse = (item: Type<unknown>): MethodDecorator =>
  applyDecorators(
    ApiExtraModels(PageMetaDto, item),
    ApiOkResponse({
      schema: {
        title: `${item.name.replace(/Dto$/, '')}Page`,
        allOf: [
          { $ref: getSchemaPath(PageMetaDto) },
          { type: 'object', required: ['items'], properties: { items: { type: 'array', items: { $ref: getSchemaPath(item) } } } },
        ],
      },
    }),
  );
