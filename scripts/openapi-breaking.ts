/**
 * The breaking-change check of the API contract: every commit from the baseline (recorded in .ci/openapi-baseline) up
 * to HEAD that changed openapi.yaml is compared with its parent, and a breaking change (see openapi-diff.ts for the
 * list) fails the check unless that commit's message has a line starting with `BREAKING:`. An uncommitted
 * openapi.yaml is compared with HEAD too, as a warning (its message is not written yet).
 * Skipped, with a message, where there is no git history (an unpacked tarball, a clone without the baseline commit).
 *
 *   node dist/scripts/openapi-breaking.js        (run by `npm run openapi:check`)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { type BreakingChange, breakingChanges } from './openapi-diff.js';

export const SPEC = 'openapi.yaml';
export const BASELINE_FILE = '.ci/openapi-baseline';
/** A commit may break the contract on purpose when its message has a line like this. */
export const BREAKING_LINE = /^BREAKING:\s*\S/m;

/** The differ in use; another one (a maintained package) can be swapped in here with the same signature. */
export type Differ = (before: unknown, after: unknown) => BreakingChange[];

export interface CheckResult {
  status: 'passed' | 'failed' | 'skipped';
  /** What to print, one line each. */
  lines: string[];
}

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

function tryGit(cwd: string, args: string[]): string | null {
  try {
    return git(cwd, args);
  } catch {
    return null;
  }
}

/** The baseline commit: the first line of the file that is neither empty nor a # comment. */
export function readBaseline(cwd: string): string {
  const text = readFileSync(resolve(cwd, BASELINE_FILE), 'utf8');
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (!line || !/^[0-9a-f]{7,40}$/i.test(line)) throw new Error(`${BASELINE_FILE} must name a commit (hex), found ${JSON.stringify(line)}`);
  return line;
}

const describe = (changes: BreakingChange[]): string[] => changes.map((c) => `    - [${c.kind}] ${c.message}`);

/** Runs the check in the git checkout at `cwd`. */
export function checkHistory(cwd: string, differ: Differ = breakingChanges): CheckResult {
  const baseline = readBaseline(cwd);
  let inside: string;
  try {
    inside = git(cwd, ['rev-parse', '--is-inside-work-tree']).trim();
  } catch (e) {
    // No git, no .git, or a checkout git refuses (another owner: safe.directory): say which.
    const why = String((e as { stderr?: unknown }).stderr ?? (e as Error).message)
      .trim()
      .split('\n')[0];
    inside = `false (${why})`;
  }
  if (inside !== 'true') {
    return {
      status: 'skipped',
      lines: [`openapi breaking-change check skipped: ${cwd} is not a git checkout, so there is no history to compare (git: ${inside}).`],
    };
  }
  if (tryGit(cwd, ['cat-file', '-e', `${baseline}^{commit}`]) === null) {
    return {
      status: 'skipped',
      lines: [
        `openapi breaking-change check skipped: the baseline commit ${baseline} (${BASELINE_FILE}) is not in this clone's history` +
          ' (a shallow clone? `git fetch --unshallow` gives the full history).',
      ],
    };
  }
  const commits = git(cwd, ['rev-list', '--reverse', '--full-history', '--no-merges', `${baseline}..HEAD`, '--', SPEC])
    .split('\n')
    .filter(Boolean);
  const lines: string[] = [];
  let failed = false;
  // Parsed documents by blob id: a commit's document is usually the next one's parent's, and parsing is the slow part.
  const parsed = new Map<string, unknown>();
  const specAt = (rev: string): unknown => {
    const blob = tryGit(cwd, ['rev-parse', '--verify', '--quiet', `${rev}:${SPEC}`])?.trim();
    if (!blob) return null;
    if (!parsed.has(blob)) parsed.set(blob, parse(git(cwd, ['cat-file', 'blob', blob])) as unknown);
    return parsed.get(blob);
  };
  for (const commit of commits) {
    const before = specAt(`${commit}^`);
    if (before === null) continue; // the commit that added the file breaks nothing
    const after = specAt(commit) ?? {};
    const changes = differ(before, after);
    const message = git(cwd, ['log', '-1', '--format=%B', commit]);
    const title = `${commit.slice(0, 10)} ${message.split('\n')[0]}`;
    if (changes.length === 0) {
      lines.push(`  ok        ${title}`);
    } else if (BREAKING_LINE.test(message)) {
      lines.push(`  allowed   ${title}: ${changes.length} breaking change(s), declared by its BREAKING: line`, ...describe(changes));
    } else {
      failed = true;
      lines.push(`  BREAKING  ${title}: ${changes.length} breaking change(s)`, ...describe(changes));
    }
  }
  const head = [`openapi breaking-change check: ${commits.length} commit(s) changed ${SPEC} since the baseline ${baseline.slice(0, 10)}.`];
  const working = tryGit(cwd, ['diff', '--quiet', 'HEAD', '--', SPEC]) === null ? readFileSync(resolve(cwd, SPEC), 'utf8') : null;
  if (working !== null) {
    const before = specAt('HEAD');
    const changes = before === null ? [] : differ(before, parse(working) as unknown);
    if (changes.length > 0) {
      lines.push(
        `  warning   the uncommitted ${SPEC} has ${changes.length} breaking change(s); commit it with a BREAKING: line saying why`,
        ...describe(changes),
      );
    }
  }
  if (failed) {
    lines.push(
      `A commit above breaks the API contract. If that is intended, reword it (git rebase -i) with a line in its message:`,
      '  BREAKING: <what changes for clients and what they should do>',
    );
  }
  return { status: failed ? 'failed' : 'passed', lines: [...head, ...lines] };
}

const isMain = process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname);
if (isMain) {
  let result: CheckResult;
  try {
    result = checkHistory(process.cwd());
  } catch (e) {
    console.error(`openapi breaking-change check could not run (run it from the repository root): ${(e as Error).message}`);
    process.exit(2);
  }
  for (const line of result.lines) (result.status === 'failed' ? console.error : console.log)(line);
  if (result.status === 'failed') process.exit(1);
}
