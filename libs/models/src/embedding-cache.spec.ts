import { describe, expect, it } from 'vitest';
import { EmbeddingCache, type EmbeddingKey } from './embedding-cache.js';
import type { SamEmbedding } from './sam.pipeline.js';

/** An embedding of `floats` values (real ones have 256×64×64). */
const embedding = (floats: number, model = 'sam'): SamEmbedding => ({
  model,
  frame: { origW: 8, origH: 8, newW: 1024, newH: 1024 },
  data: new Float32Array(floats),
  encodeMs: { preprocessMs: 1, computeMs: 2 },
});
const key = (sha256: string, model = 'sam', generation = 1): EmbeddingKey => ({ sha256, model, version: '1.0.0', generation });
/** What one entry of `floats` values counts against the bound. */
const cost = (floats: number): number => floats * 4 + EmbeddingCache.ENTRY_OVERHEAD_BYTES;

describe('EmbeddingCache', () => {
  it('answers a cached key with the same embedding and counts hits and misses per model', () => {
    const cache = new EmbeddingCache({ maxBytes: 10 * cost(100) });
    const e = embedding(100);
    expect(cache.get(key('a'))).toBeUndefined();
    expect(cache.set(key('a'), e)).toBe(true);
    expect(cache.get(key('a'))).toBe(e);
    expect(cache.get(key('a'))).toBe(e);
    expect(cache.get(key('a', 'other'))).toBeUndefined();
    expect(cache.stats('sam')).toEqual({ hits: 2, misses: 1, evictions: 0, entries: 1, bytes: cost(100) });
    expect(cache.stats('other')).toEqual({ hits: 0, misses: 1, evictions: 0, entries: 0, bytes: 0 });
    expect(cache.stats('never')).toEqual({ hits: 0, misses: 0, evictions: 0, entries: 0, bytes: 0 });
  });

  it('tells keys apart by sha256, model, version and generation', () => {
    const cache = new EmbeddingCache({ maxBytes: 10 * cost(10) });
    cache.set(key('a'), embedding(10));
    expect(cache.has(key('a'))).toBe(true);
    expect(cache.has(key('b'))).toBe(false);
    expect(cache.has(key('a', 'sam', 2))).toBe(false);
    expect(cache.has({ ...key('a'), version: '2.0.0' })).toBe(false);
    expect(cache.has(key('a', 'sam-other'))).toBe(false);
  });

  it('stays within its byte bound, each entry counting its Float32Array plus the overhead', () => {
    const cache = new EmbeddingCache({ maxBytes: 3 * cost(256) + 100 });
    for (const sha of ['a', 'b', 'c']) expect(cache.set(key(sha), embedding(256))).toBe(true);
    expect(cache.bytes).toBe(3 * cost(256));
    expect(cache.set(key('d'), embedding(256))).toBe(true);
    expect(cache.size).toBe(3);
    expect(cache.bytes).toBe(3 * cost(256));
    expect(cache.bytes).toBeLessThanOrEqual(cache.maxBytes);
    // One large entry evicts as many small ones as it needs.
    expect(cache.set(key('big'), embedding(600))).toBe(true);
    expect(cache.bytes).toBe(cost(600) + cost(256));
    expect(cache.stats('sam').evictions).toBe(3);
  });

  it('evicts the least recently used entry: a lookup makes an entry recent', () => {
    const cache = new EmbeddingCache({ maxBytes: 3 * cost(10) });
    cache.set(key('a'), embedding(10));
    cache.set(key('b'), embedding(10));
    cache.set(key('c'), embedding(10));
    expect(cache.get(key('a'))).toBeDefined(); // order now b, c, a
    cache.set(key('d'), embedding(10)); // evicts b
    expect(cache.has(key('b'))).toBe(false);
    expect([key('a'), key('c'), key('d')].every((k) => cache.has(k))).toBe(true);
    cache.set(key('e'), embedding(10)); // evicts c
    expect(cache.has(key('c'))).toBe(false);
    expect(cache.has(key('a'))).toBe(true);
    expect(cache.stats('sam')).toMatchObject({ evictions: 2, entries: 3, bytes: 3 * cost(10) });
  });

  it('counts an eviction against the model whose entry went', () => {
    const cache = new EmbeddingCache({ maxBytes: 2 * cost(10) });
    cache.set(key('a', 'm1'), embedding(10, 'm1'));
    cache.set(key('b', 'm2'), embedding(10, 'm2'));
    cache.set(key('c', 'm2'), embedding(10, 'm2'));
    expect(cache.stats('m1')).toMatchObject({ evictions: 1, entries: 0, bytes: 0 });
    expect(cache.stats('m2')).toMatchObject({ evictions: 0, entries: 2, bytes: 2 * cost(10) });
  });

  it('replacing a key does not count it twice', () => {
    const cache = new EmbeddingCache({ maxBytes: 2 * cost(10) });
    cache.set(key('a'), embedding(10));
    const newer = embedding(10);
    cache.set(key('a'), newer);
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(cost(10));
    expect(cache.stats('sam')).toMatchObject({ evictions: 0, entries: 1 });
    expect(cache.get(key('a'))).toBe(newer);
  });

  it('does not cache an embedding larger than the whole bound, and keeps what it holds', () => {
    const cache = new EmbeddingCache({ maxBytes: cost(100) });
    cache.set(key('a'), embedding(10));
    expect(cache.set(key('huge'), embedding(1000))).toBe(false);
    expect(cache.has(key('a'))).toBe(true);
    expect(cache.stats('sam').evictions).toBe(0);
  });

  it('is disabled at 0 bytes: nothing is cached and every lookup is a miss', () => {
    const cache = new EmbeddingCache({ maxBytes: 0 });
    expect(cache.enabled).toBe(false);
    expect(cache.set(key('a'), embedding(1))).toBe(false);
    expect(cache.get(key('a'))).toBeUndefined();
    expect(cache.get(key('a'))).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.stats('sam')).toEqual({ hits: 0, misses: 2, evictions: 0, entries: 0, bytes: 0 });
  });

  it('refuses a negative bound', () => {
    expect(() => new EmbeddingCache({ maxBytes: -1 })).toThrow(RangeError);
  });

  it('invalidates one model: its entries go, not counted as evictions; other models and the counters stay', () => {
    const cache = new EmbeddingCache({ maxBytes: 10 * cost(10) });
    cache.set(key('a', 'm1'), embedding(10, 'm1'));
    cache.set(key('b', 'm1', 2), embedding(10, 'm1'));
    cache.set(key('a', 'm2'), embedding(10, 'm2'));
    cache.get(key('a', 'm1'));
    expect(cache.invalidate('m1')).toBe(2);
    expect(cache.has(key('a', 'm1'))).toBe(false);
    expect(cache.has(key('a', 'm2'))).toBe(true);
    expect(cache.bytes).toBe(cost(10));
    expect(cache.stats('m1')).toEqual({ hits: 1, misses: 0, evictions: 0, entries: 0, bytes: 0 });
    expect(cache.invalidate('m1')).toBe(0);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
    expect(cache.stats('m2')).toMatchObject({ entries: 0, bytes: 0 });
  });
});
