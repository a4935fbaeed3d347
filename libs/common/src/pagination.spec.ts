import { describe, expect, it } from 'vitest';
import { pageOptions, toPage } from './pagination.js';

describe('pagination', () => {
  it('turns page and page_size into limit and offset', () => {
    expect(pageOptions({ page: 1, page_size: 20 })).toEqual({ limit: 20, offset: 0 });
    expect(pageOptions({ page: 3, page_size: 7 })).toEqual({ limit: 7, offset: 14 });
  });

  it('counts the pages of a total', () => {
    expect(toPage(['a'], 41, { page: 3, page_size: 20 })).toEqual({ items: ['a'], total: 41, page: 3, page_size: 20, total_pages: 3 });
  });
});
