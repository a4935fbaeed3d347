import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configReference, exampleGroups, readSettings } from './config-reference.js';

const root = resolve(import.meta.dirname, '../../..');

describe('configuration reference', () => {
  it('docs/configuration.md is what npm run docs:config makes of the code and .env.example', () => {
    const page = configReference(readFileSync(resolve(root, '.env.example'), 'utf8'));
    expect(readFileSync(resolve(root, 'docs/configuration.md'), 'utf8'), 'run npm run docs:config').toBe(page);
  });

  it('reads conditional settings too, with their bounds and production defaults', () => {
    const rows = readSettings();
    expect(rows.get('GOOGLE_REDIRECT_URI')?.read).toMatchObject({ kind: 'url', fallback: expect.stringContaining('/callback') });
    expect(rows.get('WORKER_CONCURRENCY')?.read).toMatchObject({ kind: 'integer', fallback: 2, min: 1, max: 64 });
    expect(rows.get('API_DOCS')?.read.fallback).toBe('public');
    expect(rows.get('API_DOCS')?.production?.fallback).toBe('admin');
  });

  it('groups variables under the comment right above them', () => {
    const { groups } = exampleGroups('# Intro\n\n# About A and B.\nA=1\nB=2\n# About C.\nC=\n\nD=4\n');
    expect(groups).toEqual([
      { comment: ['About A and B.'], names: ['A', 'B'] },
      { comment: ['About C.'], names: ['C'] },
      { comment: [], names: ['D'] },
    ]);
  });

  it('refuses a variable the code reads but .env.example does not describe', () => {
    const rows = readSettings();
    expect(() => configReference('# Only one.\nPORT=3000\n', rows)).toThrow(/does not describe/);
  });
});
