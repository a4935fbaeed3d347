import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, problemType } from './problem.js';

describe('docs/errors.md', () => {
  const page = readFileSync(resolve(import.meta.dirname, '../../../docs/errors.md'), 'utf8');
  const rows = new Map([...page.matchAll(/^\| `([A-Z_]+)` \| [^|]+ \| `([^`]+)` \|/gm)].map((m) => [m[1]!, m[2]!] as const));

  it('has one row per error code, with its type', () => {
    expect([...rows.keys()].sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES) expect(rows.get(code), code).toBe(problemType(code));
  });
});
