import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

const root = resolve(import.meta.dirname, '../../..');

describe('.env.example', () => {
  const example = readFileSync(resolve(root, '.env.example'), 'utf8');
  const documented = new Map(
    example
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );

  it('documents every variable the configuration reads', () => {
    const source = readFileSync(resolve(root, 'libs/config/src/config.ts'), 'utf8');
    const read = new Set([...source.matchAll(/r\s*\.(?:raw|str|int|bool|oneOf|url)\('([A-Z_]+)'/g)].map((m) => m[1]!));
    expect(read.size).toBeGreaterThan(20);
    expect([...read].filter((name) => !documented.has(name))).toEqual([]);
    expect([...documented.keys()].filter((name) => !read.has(name))).toEqual([]);
  });

  it('is itself a valid configuration', () => {
    // (in a temporary DATA_DIR: the example leaves JWT_SECRET empty, so a secret file is made there)
    const dataDir = mkdtempSync(join(tmpdir(), 'aperture-env-'));
    expect(() => loadConfig({ ...Object.fromEntries(documented), DATA_DIR: dataDir })).not.toThrow();
  });
});
