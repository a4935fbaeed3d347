import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, type SettingRead } from './config.js';

/** One variable as the reference shows it: how the code reads it (development and production) and its description. */
interface Row {
  read: SettingRead;
  production?: SettingRead;
}

/**
 * Every variable the configuration reads, by running it over environments that take each branch: the development
 * defaults, production's, and one with every optional group switched on (so reads behind a condition are seen too).
 */
export function readSettings(): Map<string, Row> {
  const dataDir = mkdtempSync(join(tmpdir(), 'aperture-config-reference-'));
  const rows = new Map<string, Row>();
  // Some defaults depend on whether stdout is a terminal (LOG_FORMAT): the page shows those of a service, not a TTY.
  const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
  Object.defineProperty(process.stdout, 'isTTY', { value: false, configurable: true });
  const run = (env: Record<string, string>, mode: 'development' | 'production'): void => {
    const seen = (s: SettingRead): void => {
      const row = rows.get(s.name);
      if (!row) rows.set(s.name, mode === 'production' ? { read: s, production: s } : { read: s });
      else if (mode === 'production') row.production ??= s;
      else if (row.read.fallback === undefined && s.fallback !== undefined) row.read = s;
    };
    try {
      loadConfig({ DATA_DIR: dataDir, JWT_SECRET: 'x'.repeat(32), ...env }, seen);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e; // the "everything on" run has placeholders some checks refuse
    }
  };
  try {
    const everything = {
      ADMIN_USERNAME: 'admin',
      ADMIN_PASSWORD: 'admin-password',
      GOOGLE_CLIENT_ID: 'id',
      GOOGLE_CLIENT_SECRET: 'secret',
      GOOGLE_DRIVE_ENABLED: 'true',
      DRIVE_FOLDER_ID: 'folder',
      GOOGLE_SERVICE_ACCOUNT_JSON: '{}',
    };
    run({}, 'development');
    run(everything, 'development');
    run({ NODE_ENV: 'production' }, 'production');
    run({ NODE_ENV: 'production', ...everything }, 'production');
  } finally {
    if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
    else delete (process.stdout as { isTTY?: boolean }).isTTY;
    rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
}

/** A group of .env.example: the comment above some variables, and those variables. */
interface Group {
  comment: string[];
  names: string[];
}

/** .env.example's groups, in order: each comment block with the variables right below it (no blank line between). */
export function exampleGroups(example: string): { intro: string[]; groups: Group[] } {
  const intro: string[] = [];
  const groups: Group[] = [];
  let comment: string[] = [];
  let current: Group | null = null;
  for (const line of example.split('\n')) {
    const v = /^([A-Z][A-Z0-9_]*)=/.exec(line);
    if (v) {
      if (comment.length > 0 || !current) {
        current = { comment, names: [] };
        groups.push(current);
        comment = [];
      }
      current.names.push(v[1]!);
    } else if (line.startsWith('#')) {
      comment.push(line.replace(/^# ?/, ''));
    } else if (line.trim() === '') {
      if (groups.length === 0 && comment.length > 0) intro.push(...comment, '');
      else if (comment.length > 0 && current) current.comment.push('', ...comment); // a note below its variables
      comment = [];
      current = null;
    }
  }
  return { intro, groups };
}

const code = (v: string | number | boolean | undefined): string => (v === undefined || v === '' ? '(unset)' : `\`${String(v)}\``);

function defaultCell(row: Row): string {
  const dev = code(row.read.fallback);
  const prod = row.production ? code(row.production.fallback) : dev;
  return prod === dev ? dev : `${dev} (production: ${prod})`;
}

function allowedCell(s: SettingRead): string {
  switch (s.kind) {
    case 'integer':
      return `${s.min ?? ''} – ${s.max ?? ''}`;
    case 'enum':
      return (s.allowed ?? []).map((a) => `\`${a}\``).join(', ');
    case 'url':
      return `a URL (${(s.allowed ?? []).join(' or ')})`;
    case 'boolean':
      return '`true` / `false`';
    default:
      return '';
  }
}

/** Lines of a comment as Markdown: prose joined, example lines (VAR=… after a #) kept as code. */
function prose(lines: string[]): string {
  const out: string[] = [];
  let para: string[] = [];
  const flush = (): void => {
    if (para.length > 0) out.push(para.join(' '));
    para = [];
  };
  for (const l of lines) {
    if (l.trim() === '') flush();
    else if (/^[A-Z][A-Z0-9_]*=/.test(l)) {
      flush();
      out.push(`\`${l}\``);
    } else para.push(l.trim());
  }
  flush();
  return out.join('\n\n');
}

/** docs/configuration.md: every variable the code reads, grouped and described as in .env.example. */
export function configReference(example: string, rows: Map<string, Row> = readSettings()): string {
  const { groups } = exampleGroups(example);
  const missing = [...rows.keys()].filter((n) => !groups.some((g) => g.names.includes(n)));
  if (missing.length > 0) throw new Error(`.env.example does not describe ${missing.join(', ')}`);
  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run docs:config` from the configuration code and .env.example; a test fails when it is',
    '     out of date. Edit .env.example (descriptions) or libs/config/src/config.ts (defaults, bounds), then regenerate. -->',
    '',
    'Every setting is an environment variable; all are optional unless a description says otherwise. The defaults are the',
    'embedded single-machine setup (`./aperture start`): SQLite and local files under `DATA_DIR`, Redis on localhost.',
    'A bad value stops the process at boot with the list of every problem. Where production differs, the default says so',
    '(`NODE_ENV=production`). [`.env.example`](../.env.example) has the same settings as a file to copy.',
    '',
  ];
  for (const g of groups) {
    const text = prose(g.comment);
    out.push(`## ${g.names.join(', ')}`, '');
    if (text) out.push(text, '');
    out.push('| Variable | Type | Default | Allowed |', '|---|---|---|---|');
    for (const name of g.names) {
      const row = rows.get(name);
      if (!row) throw new Error(`.env.example names ${name}, which the configuration does not read`);
      out.push(`| \`${name}\` | ${row.read.kind} | ${defaultCell(row)} | ${allowedCell(row.read)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}
