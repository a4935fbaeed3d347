import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BASELINE_FILE, checkHistory, SPEC } from './openapi-breaking.js';

const ok = { '200': { description: 'OK' } };
/** An API with the given paths, each with one GET. */
const api = (...paths: string[]): string =>
  stringify({
    openapi: '3.0.0',
    info: { title: 't', version: '1' },
    paths: Object.fromEntries(paths.map((p) => [p, { get: { responses: ok } }])),
  });

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A scratch git repository (in the OS temp dir, outside any other checkout). */
function repo(): { dir: string; git: (...args: string[]) => string; commit: (message: string, files: Record<string, string>) => string } {
  const dir = mkdtempSync(join(tmpdir(), 'openapi-breaking-'));
  dirs.push(dir);
  const git = (...args: string[]): string =>
    execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', '-c', 'commit.gpgsign=false', ...args], {
      cwd: dir,
      encoding: 'utf8',
    }).trim();
  git('init', '-q', '-b', 'main');
  const commit = (message: string, files: Record<string, string>): string => {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    git('add', '-A');
    git('commit', '-q', '--allow-empty', '-m', message);
    return git('rev-parse', 'HEAD');
  };
  return { dir, git, commit };
}

/** A repository whose history starts with /a and /b, then records that commit as the baseline. */
function withBaseline(): ReturnType<typeof repo> & { baseline: string } {
  const r = repo();
  r.commit('Drop /old without saying so (before the baseline: not judged)', { [SPEC]: api('/a', '/b', '/old') });
  const baseline = r.commit('API with /a and /b', { [SPEC]: api('/a', '/b') });
  r.commit('Record the baseline', { [BASELINE_FILE]: `# the check starts here\n${baseline}\n` });
  return { ...r, baseline };
}

describe('the openapi.yaml history check', () => {
  it('passes additive commits, and ignores history before the baseline', () => {
    const r = withBaseline();
    r.commit('Add /c', { [SPEC]: api('/a', '/b', '/c') });
    r.commit('Touch the README', { 'README.md': 'hello\n' });
    const result = checkHistory(r.dir);
    expect(result.status).toBe('passed');
    expect(result.lines[0]).toContain('1 commit(s) changed openapi.yaml');
    expect(result.lines.join('\n')).toMatch(/ok .* Add \/c/);
  });

  it('fails on a commit that removes a path without a BREAKING: line, naming the commit and the change', () => {
    const r = withBaseline();
    r.commit('Remove /b', { [SPEC]: api('/a') });
    r.commit('Add /c afterwards', { [SPEC]: api('/a', '/c') });
    const result = checkHistory(r.dir);
    expect(result.status).toBe('failed');
    const text = result.lines.join('\n');
    expect(text).toMatch(/BREAKING {2}\w+ Remove \/b: 1 breaking change\(s\)/);
    expect(text).toContain('[path-removed] /b: path was removed');
    expect(text).toContain('BREAKING: <what changes');
  });

  it('allows the breaking commit whose message says so in a BREAKING: line', () => {
    const r = withBaseline();
    r.commit('Remove /b\n\nIt never worked.\nBREAKING: GET /b is gone; use GET /a.', { [SPEC]: api('/a') });
    const result = checkHistory(r.dir);
    expect(result.status).toBe('passed');
    expect(result.lines.join('\n')).toMatch(/allowed .* Remove \/b: 1 breaking change\(s\), declared by its BREAKING: line/);
  });

  it('judges each commit of a merged branch against its own parent', () => {
    const r = withBaseline();
    r.git('checkout', '-q', '-b', 'feature');
    r.commit('Add /c', { [SPEC]: api('/a', '/b', '/c') });
    r.commit('Remove /a', { [SPEC]: api('/b', '/c') });
    r.git('checkout', '-q', 'main');
    r.commit('Unrelated', { 'NOTES.md': 'x\n' });
    r.git('-c', 'core.editor=true', 'merge', '-q', '--no-ff', '-m', 'Merge feature (BREAKING: on the merge does not count)', 'feature');
    const result = checkHistory(r.dir);
    expect(result.status).toBe('failed');
    expect(result.lines.join('\n')).toMatch(/BREAKING {2}\w+ Remove \/a/);
  });

  it('warns about an uncommitted breaking openapi.yaml without failing', () => {
    const r = withBaseline();
    writeFileSync(join(r.dir, SPEC), api('/a'));
    const result = checkHistory(r.dir);
    expect(result.status).toBe('passed');
    expect(result.lines.join('\n')).toContain('warning   the uncommitted openapi.yaml has 1 breaking change(s)');
  });

  it('is skipped, saying why, without git history or without the baseline commit', () => {
    const r = withBaseline();
    const copy = mkdtempSync(join(tmpdir(), 'openapi-breaking-nogit-'));
    dirs.push(copy);
    mkdirSync(join(copy, '.ci'));
    writeFileSync(join(copy, SPEC), api('/a'));
    writeFileSync(join(copy, BASELINE_FILE), `${r.baseline}\n`);
    const none = checkHistory(copy);
    expect(none.status).toBe('skipped');
    expect(none.lines[0]).toMatch(/skipped: .* is not a git checkout/);

    writeFileSync(join(r.dir, BASELINE_FILE), `${'0'.repeat(40)}\n`);
    r.git('commit', '-q', '-am', 'Point the baseline elsewhere');
    const unknown = checkHistory(r.dir);
    expect(unknown.status).toBe('skipped');
    expect(unknown.lines[0]).toMatch(/baseline commit 0{40} .* is not in this clone's history/);
  });
});
