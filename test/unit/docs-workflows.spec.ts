import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * The workflow pages in docs/workflows stay honest: every route a curl line or an SDK call names is in openapi.yaml with
 * that method, and the TypeScript snippets compile, strict, against the SDK's source.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const pagesDir = join(root, 'docs/workflows');
const pages = readdirSync(pagesDir)
  .filter((f) => f.endsWith('.md'))
  .sort();

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
const spec = parse(readFileSync(join(root, 'openapi.yaml'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
/** Every operation as "METHOD /path/{template}". */
const operations = new Set(
  Object.entries(spec.paths).flatMap(([path, item]) => METHODS.filter((m) => m in item).map((m) => `${m.toUpperCase()} ${path}`)),
);
const templates = Object.keys(spec.paths).map((p) => p.split('/'));

interface Block {
  lang: string;
  /** 1-based line of the block's first code line in the page. */
  line: number;
  code: string;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    out.push({ lang: open[1]!, line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return out;
}

/**
 * The templates of openapi.yaml a concrete path (with $VARS, <placeholders> or {params}) may stand for: a literal segment
 * meets the same literal or a {param}; a placeholder only a {param} (so /jobs/$ID is never /jobs/lease).
 */
function templatesOf(path: string): string[] {
  const segs = path.replace(/\/+$/, '').split('/');
  const literal = (s: string): boolean => !/[$<{…]/.test(s);
  return templates
    .filter(
      (t) =>
        t.length === segs.length && t.every((part, i) => (part.startsWith('{') ? segs[i] !== '' : literal(segs[i]!) && part === segs[i])),
    )
    .map((t) => t.join('/'));
}

/** Each curl command of a bash block (continuation lines joined) with the line it starts on. */
function curlCommands(block: Block): { line: number; method: string; path: string }[] {
  const out: { line: number; method: string; path: string }[] = [];
  const lines = block.code.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = i;
    let cmd = lines[i]!;
    while (cmd.trimEnd().endsWith('\\') && i + 1 < lines.length) cmd = cmd.trimEnd().slice(0, -1) + ' ' + lines[++i];
    cmd = cmd.replace(/(^|\s)#.*$/, '');
    if (!/\bcurl\b/.test(cmd)) continue;
    const url = /(?:localhost:\d+|\$BASE|\$API)(\/(?:api\/v1|health|metrics)[^\s"'?]*)/.exec(cmd);
    if (!url) continue;
    const explicit = /-X\s*([A-Z]+)/.exec(cmd);
    const sendsBody = /\s(-F|-d|--data-binary|--data)\s/.test(cmd);
    out.push({ line: block.line + first, method: explicit ? explicit[1]! : sendsBody ? 'POST' : 'GET', path: url[1]! });
  }
  return out;
}

const tmpDir = join(root, 'tmp', `docs-snippets-${process.pid}`);
afterAll(() => rmSync(tmpDir, { recursive: true, force: true }));

describe('docs/workflows pages', () => {
  it('has the workflow pages, each with curl and SDK snippets', () => {
    expect(pages.length).toBeGreaterThanOrEqual(10);
    for (const page of pages) {
      const bs = blocks(readFileSync(join(pagesDir, page), 'utf8'));
      expect(
        bs.some((b) => b.lang === 'bash' && /\bcurl\b/.test(b.code)),
        `${page}: a curl block`,
      ).toBe(true);
      expect(
        bs.some((b) => b.lang === 'ts'),
        `${page}: an SDK block`,
      ).toBe(true);
    }
  });

  it.each(pages)('%s: every curl route and SDK call is an operation of openapi.yaml', (page) => {
    const bs = blocks(readFileSync(join(pagesDir, page), 'utf8'));
    const missing: string[] = [];
    let checked = 0;
    for (const b of bs.filter((x) => x.lang === 'bash')) {
      for (const c of curlCommands(b)) {
        checked++;
        if (!templatesOf(c.path).some((t) => operations.has(`${c.method} ${t}`))) missing.push(`${page}:${c.line}: ${c.method} ${c.path}`);
      }
    }
    for (const b of bs.filter((x) => x.lang === 'ts')) {
      const lines = b.code.split('\n');
      lines.forEach((text, i) => {
        for (const m of text.matchAll(/\.(GET|POST|PUT|PATCH|DELETE)\(\s*'([^']+)'/g)) {
          checked++;
          if (!operations.has(`${m[1]} ${m[2]}`)) missing.push(`${page}:${b.line + i}: ${m[1]} ${m[2]}`);
        }
      });
    }
    expect(checked, `${page} names no route`).toBeGreaterThan(0);
    expect(missing).toEqual([]);
  });

  it('every relative link of the index and the workflow pages leads to a file (and its heading, when it names one)', () => {
    const broken: string[] = [];
    const slug = (heading: string): string =>
      heading
        .toLowerCase()
        .replace(/[^a-z0-9 _-]/g, '')
        .replace(/ /g, '-');
    for (const file of ['docs/README.md', ...pages.map((p) => `docs/workflows/${p}`)]) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target) || target.startsWith('#')) continue;
        const [rel, anchor] = target.split('#') as [string, string | undefined];
        const abs = join(dirname(join(root, file)), rel);
        let content: string;
        try {
          content = readFileSync(abs, 'utf8');
        } catch {
          broken.push(`${file}: ${target}`);
          continue;
        }
        if (anchor && !content.split('\n').some((l) => /^#+ /.test(l) && slug(l.replace(/^#+ /, '')) === anchor)) {
          broken.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('the TypeScript snippets compile (strict) against the SDK', () => {
    mkdirSync(tmpDir, { recursive: true });
    /** Per generated file: the page and, per generated line, the page's line. */
    const origin = new Map<string, { page: string; lines: number[] }>();
    for (const page of pages) {
      const ts_ = blocks(readFileSync(join(pagesDir, page), 'utf8')).filter((b) => b.lang === 'ts');
      // One module per page: its blocks are the steps of one program (later steps use what earlier ones made).
      const code: string[] = [];
      const lines: number[] = [];
      for (const b of ts_) {
        b.code.split('\n').forEach((text, i) => {
          code.push(text);
          lines.push(b.line + i);
        });
      }
      const file = join(tmpDir, page.replace(/\.md$/, '.mts'));
      writeFileSync(file, `${code.join('\n')}\nexport {};\n`);
      origin.set(file, { page, lines });
    }
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
      strict: true,
      noUncheckedIndexedAccess: true,
      noUnusedLocals: false,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      typeRoots: [join(root, 'node_modules/@types')],
      paths: { '@aperture/sdk': [join(root, 'packages/sdk/src/index.ts')] },
    };
    const program = ts.createProgram([...origin.keys()], options);
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (!d.file || d.start === undefined) return text;
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const o = origin.get(d.file.fileName);
      if (o) return `docs/workflows/${o.page}:${o.lines[line] ?? '?'}: ${text}`;
      return `${relative(root, d.file.fileName)}:${line + 1}: ${text}`;
    });
    expect(errors).toEqual([]);
  }, 120_000);
});
