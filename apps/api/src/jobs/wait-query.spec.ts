import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { createValidationPipe } from '@aperture/common/validation.js';
import { ProblemException } from '@aperture/common/problem.js';
import { WaitQueryDto } from './jobs.dto.js';

/** The full validation of a query, as the global pipe runs it when no fast path answers. */
async function validated(query: Record<string, unknown>): Promise<{ ok: WaitQueryDto } | { status: number }> {
  const pipe = createValidationPipe();
  // Object.create(null): what the query parser hands over has no prototype either
  const value = Object.assign(Object.create(null) as object, query);
  try {
    // Through the parent's transform (the full validation), even for a DTO with a fast path
    const full = Object.getPrototypeOf(Object.getPrototypeOf(pipe)) as { transform: typeof pipe.transform };
    return { ok: (await full.transform.call(pipe, value, { type: 'query', metatype: WaitQueryDto })) as WaitQueryDto };
  } catch (err) {
    return { status: (err as ProblemException).getStatus() };
  }
}

describe('WaitQueryDto.fastParse', () => {
  it('answers exactly what the full validation answers, or leaves the input to it', async () => {
    const inputs: Record<string, unknown>[] = [
      {},
      { wait_ms: '0' },
      { wait_ms: '1' },
      { wait_ms: '2500' },
      { wait_ms: '30000' },
      { wait_ms: '30001' },
      { wait_ms: '99999' },
      { wait_ms: '007' },
      { wait_ms: '' },
      { wait_ms: '-1' },
      { wait_ms: '1.5' },
      { wait_ms: '1e3' },
      { wait_ms: ' 5' },
      { wait_ms: ['1', '2'] },
      { wait_ms: '5', other: '1' },
      { other: '1' },
    ];
    let fast = 0;
    for (const q of inputs) {
      const parsed = WaitQueryDto.fastParse(Object.assign(Object.create(null) as object, q));
      const full = await validated(q);
      if (parsed === undefined) continue;
      fast++;
      expect(full, JSON.stringify(q)).toHaveProperty('ok');
      expect(parsed).toBeInstanceOf(WaitQueryDto);
      expect({ ...parsed }, JSON.stringify(q)).toEqual({ ...(full as { ok: WaitQueryDto }).ok });
    }
    // The fast path does answer the common polls
    expect(fast).toBe(5);
  });

  it('the global pipe answers a poll through it and still refuses what validation refuses', async () => {
    const pipe = createValidationPipe();
    const meta = { type: 'query' as const, metatype: WaitQueryDto };
    expect(await pipe.transform({ wait_ms: '250' }, meta)).toEqual(Object.assign(new WaitQueryDto(), { wait_ms: 250 }));
    for (const bad of [{ wait_ms: '30001' }, { wait_ms: 'soon' }, { wait_ms: '5', other: '1' }]) {
      await expect(pipe.transform(bad, meta)).rejects.toMatchObject({ status: 400 });
    }
  });
});
