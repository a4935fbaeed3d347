import { describe, expect, it } from 'vitest';
import { StorageKeys } from './storage-keys.js';
import { assertValidKey } from './storage.port.js';

const SHA = 'ab'.repeat(32);

describe('StorageKeys.embedding', () => {
  it('names the data and its description under the file sha256, the model and the version', () => {
    expect(StorageKeys.embedding(SHA, 'sam-tiny', '1.1.0')).toEqual({
      data: `embeddings/${SHA}/sam-tiny/1.1.0/embedding.f32`,
      meta: `embeddings/${SHA}/sam-tiny/1.1.0/meta.json`,
    });
    expect(StorageKeys.embedding(SHA, 'sam-tiny', '1.1.0').data.startsWith(`${StorageKeys.embeddingPrefix(SHA)}/`)).toBe(true);
  });

  it('turns a name that is not a key segment into a digest: always a valid key, different names stay apart', () => {
    const odd = ['SAM ViT-H', '../x', '.hidden', 'ünïcode', 'a/b', ''];
    const keys = odd.map((name) => StorageKeys.embedding(SHA, name, 'V1 beta').data);
    for (const k of keys) expect(() => assertValidKey(k)).not.toThrow();
    expect(new Set(keys).size).toBe(odd.length);
    expect(keys[0]).toMatch(new RegExp(`^embeddings/${SHA}/h-[0-9a-f]{32}/h-[0-9a-f]{32}/embedding\\.f32$`));
  });
});
