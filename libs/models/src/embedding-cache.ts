import { Injectable, type Provider } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { EmbeddingCacheStats } from './model-status.js';
import type { SamEmbedding } from './sam.pipeline.js';

/** What one embedding was computed from: the image's bytes, the model and the load of the model that ran it. */
export interface EmbeddingKey {
  /** sha256 (hex) of the image file's bytes. */
  readonly sha256: string;
  readonly model: string;
  /** The manifest version of the model. */
  readonly version: string;
  /** The registry's generation of the model's sessions that ran the encoder (ModelRegistry.generation). */
  readonly generation: number;
}

export interface EmbeddingCacheOptions {
  /** The byte bound of all entries together (see EmbeddingCache.sizeOf); 0 disables the cache. */
  maxBytes: number;
}

interface Entry {
  readonly model: string;
  readonly embedding: SamEmbedding;
  readonly bytes: number;
}

const MB = 1024 * 1024;

/**
 * A least-recently-used cache of SAM image embeddings (the encoder's output, about 4 MB per image), shared by every
 * prompt on the same image: a hit costs no encoder run. Bounded by bytes: each entry counts its Float32Array's
 * byteLength plus ENTRY_OVERHEAD_BYTES; inserting past the bound evicts the least recently used entries (of any
 * model), and an embedding larger than the bound is not cached at all.
 *
 * Stale embeddings cannot be served: the key holds the model's manifest version and the registry's generation of its
 * sessions (a new one at every load, reload and unload), and SamPipeline drops a model's entries as soon as the
 * registry reports that its sessions changed (ModelSessionObserver). Hits, misses and evictions are counted per model.
 * Not thread-safe beyond Node's one event loop, which is all it needs.
 */
@Injectable()
export class EmbeddingCache {
  /** Counted per entry on top of the embedding's bytes: the key, the frame and the map's own bookkeeping. */
  static readonly ENTRY_OVERHEAD_BYTES = 512;

  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private readonly perModel = new Map<string, EmbeddingCacheStats>();
  private totalBytes = 0;
  readonly maxBytes: number;

  constructor(options: EmbeddingCacheOptions) {
    if (!Number.isFinite(options.maxBytes) || options.maxBytes < 0) throw new RangeError(`maxBytes must be >= 0, got ${options.maxBytes}`);
    this.maxBytes = Math.floor(options.maxBytes);
  }

  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  /** Bytes held by all entries (the figure the bound applies to). */
  get bytes(): number {
    return this.totalBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  /** What an embedding counts against the bound. */
  static sizeOf(embedding: SamEmbedding): number {
    return embedding.data.byteLength + EmbeddingCache.ENTRY_OVERHEAD_BYTES;
  }

  /** The embedding for a key, made the most recently used; counts a hit or a miss for the key's model. */
  get(key: EmbeddingKey): SamEmbedding | undefined {
    const k = keyOf(key);
    const entry = this.entries.get(k);
    const stats = this.statsOf(key.model);
    if (!entry) {
      stats.misses++;
      return undefined;
    }
    this.entries.delete(k);
    this.entries.set(k, entry);
    stats.hits++;
    return entry.embedding;
  }

  /** Whether the key is cached, without counting a lookup or changing the order. */
  has(key: EmbeddingKey): boolean {
    return this.entries.has(keyOf(key));
  }

  /**
   * Caches an embedding as the most recently used entry, evicting least recently used ones until it fits. Returns
   * false (and caches nothing) when the cache is disabled or the embedding alone is larger than the bound.
   */
  set(key: EmbeddingKey, embedding: SamEmbedding): boolean {
    const bytes = EmbeddingCache.sizeOf(embedding);
    if (!this.enabled || bytes > this.maxBytes) return false;
    const k = keyOf(key);
    const previous = this.entries.get(k);
    if (previous) this.remove(k, previous);
    while (this.totalBytes + bytes > this.maxBytes) {
      const [lruKey, lru] = this.entries.entries().next().value as [string, Entry];
      this.remove(lruKey, lru);
      this.statsOf(lru.model).evictions++;
    }
    this.entries.set(k, { model: key.model, embedding, bytes });
    this.totalBytes += bytes;
    const stats = this.statsOf(key.model);
    stats.entries++;
    stats.bytes += bytes;
    return true;
  }

  /** Drops every entry of a model (its sessions were unloaded or reloaded); returns how many. Not counted as evictions. */
  invalidate(model: string): number {
    let dropped = 0;
    for (const [k, e] of this.entries) {
      if (e.model !== model) continue;
      this.remove(k, e);
      dropped++;
    }
    return dropped;
  }

  /** Drops every entry; the counters stay. */
  clear(): void {
    for (const [k, e] of this.entries) this.remove(k, e);
  }

  /** A copy of one model's counters (zeros for a model never looked up). */
  stats(model: string): EmbeddingCacheStats {
    return { ...(this.perModel.get(model) ?? { hits: 0, misses: 0, evictions: 0, entries: 0, bytes: 0 }) };
  }

  private remove(k: string, e: Entry): void {
    this.entries.delete(k);
    this.totalBytes -= e.bytes;
    const stats = this.statsOf(e.model);
    stats.entries--;
    stats.bytes -= e.bytes;
  }

  private statsOf(model: string): EmbeddingCacheStats {
    let s = this.perModel.get(model);
    if (!s) {
      s = { hits: 0, misses: 0, evictions: 0, entries: 0, bytes: 0 };
      this.perModel.set(model, s);
    }
    return s;
  }
}

/** One string per key; the NUL separator cannot occur in a model name, a version or a hex digest. */
const keyOf = (k: EmbeddingKey): string => `${k.model}\0${k.version}\0${k.generation}\0${k.sha256}`;

/** The worker's cache, sized by SAM_EMBEDDING_CACHE_MB (0 = disabled). */
export const embeddingCacheProvider: Provider = {
  provide: EmbeddingCache,
  inject: [APP_CONFIG],
  useFactory: (c: AppConfig): EmbeddingCache => new EmbeddingCache({ maxBytes: c.models.samEmbeddingCacheMb * MB }),
};
