import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { type LoggedIn, registerAndLogin } from './support/http.js';

/**
 * Schema fuzzing: every JSON, form and multipart operation of openapi.yaml gets requests built from its own schema
 * with hostile values (wrong types, huge and negative numbers, empty and very long strings, unicode and NUL, nulls,
 * arrays and objects where scalars belong, extra fields) and hostile path parameters. Whatever comes in, the answer is
 * never a 5xx, and every 4xx is a problem+json with a detail. Seeded and bounded (about 600 requests), so a failure
 * replays exactly; new operations are fuzzed the day they land.
 */

interface Schema {
  type?: string;
  format?: string;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  items?: Schema;
  $ref?: string;
  allOf?: Schema[];
  oneOf?: Schema[];
}
interface Operation {
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
}
interface Doc {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const SEED = 20261129;
const TOTAL_REQUESTS = 600;
const doc = parse(readFileSync(resolve(import.meta.dirname, '../openapi.yaml'), 'utf8')) as Doc;

function deref(s: Schema | undefined): Schema {
  if (!s) return {};
  if (s.$ref) return deref(doc.components.schemas[s.$ref.split('/').pop()!]);
  if (s.allOf) return s.allOf.map(deref).reduce((a, b) => ({ ...a, ...b, properties: { ...a.properties, ...b.properties } }), {});
  return s;
}

// (Query strings stay under Node's 16 KB header limit: past it Node itself answers 431 before the app sees anything.)
const queryScalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, '', '0', '-1', 'NaN', '1e400', '10000000000000000000', '99999999999', '2.5', 'true', '[]', '\u0000', '💥'),
  fc.constantFrom('../..', 'x'.repeat(2000), '3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c'),
  fc.integer(),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const hostileScalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, '', ' ', '0', '-1', 'NaN', 'Infinity', 'true', '[]', '{}', '{"x":', 'null', '\u0000', '💥🧨', 'Ω≈ç√∫˜µ≤≥÷'),
  fc.constantFrom(0, -1, 1.5, -1e308, 1e308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, -0.0000001),
  fc.constantFrom(true, false),
  fc.constant('x'.repeat(20_000)),
  fc.constant('../../etc/passwd'),
  fc.constant('3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c'),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double(),
);
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: hostileScalar },
  { weight: 1, arbitrary: fc.array(hostileScalar, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), hostileScalar, { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.constant(Array.from({ length: 300 }, (_, i) => ({ x: i, y: i }))) },
);

/** A value for one property: usually hostile, sometimes a plausible value of its declared type or enum. */
function valueFor(s: Schema): fc.Arbitrary<unknown> {
  const d = deref(s);
  const plausible: fc.Arbitrary<unknown> = d.enum?.length
    ? fc.constantFrom(...d.enum)
    : d.type === 'integer'
      ? fc.integer({ min: -5, max: 2000 })
      : d.type === 'number'
        ? fc.double({ min: -1, max: 2, noNaN: true })
        : d.type === 'boolean'
          ? fc.boolean()
          : d.type === 'array'
            ? fc.array(d.items ? valueFor(d.items) : hostileScalar, { maxLength: 3 })
            : fc.string({ maxLength: 20 });
  return fc.oneof({ weight: 3, arbitrary: hostile }, { weight: 1, arbitrary: plausible });
}

/** A body from the schema: each property present or not, plus an extra field now and then. */
function bodyFor(schema: Schema): fc.Arbitrary<Record<string, unknown>> {
  const props = deref(schema).properties ?? {};
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, p] of Object.entries(props)) model[name] = valueFor(p);
  return fc
    .tuple(fc.record(model, { requiredKeys: [] }), fc.option(fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), hostileScalar)))
    .map(([body, extra]) => (extra ? { ...body, [extra[0]]: extra[1] } : body));
}

/** A request of the given method (get, post, put, patch, delete). */
function call(t: TestApp, method: string, url: string): request.Test {
  const agent = request(t.server);
  if (method === 'post') return agent.post(url);
  if (method === 'put') return agent.put(url);
  if (method === 'patch') return agent.patch(url);
  if (method === 'delete') return agent.delete(url);
  return agent.get(url);
}

const pathParam = fc.constantFrom(
  '3f1b7c52-1d2e-4f3a-9b8c-7d6e5f4a3b2c',
  'not-a-uuid',
  '0',
  '-1',
  'x'.repeat(300),
  '%F0%9F%92%A5',
  '..%2F..',
);
const asField = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined'));

interface Case {
  method: string;
  path: string;
  query: string[];
  kind: 'json' | 'form' | 'multipart' | 'none';
  fileFields: string[];
  schema: Schema;
  sync: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const content = op.requestBody?.content ?? {};
      const kind = content['application/json']
        ? 'json'
        : content['multipart/form-data']
          ? 'multipart'
          : content['application/x-www-form-urlencoded']
            ? 'form'
            : 'none';
      // Operations without a body are fuzzed through their path and query parameters only.
      if (kind === 'none' && !path.includes('{') && !(op.parameters ?? []).some((p) => p.in === 'query')) continue;
      const schema = deref(
        content['application/json']?.schema ??
          content['multipart/form-data']?.schema ??
          content['application/x-www-form-urlencoded']?.schema,
      );
      const fileFields = Object.entries(schema.properties ?? {})
        .filter(([, p]) => {
          const d = deref(p);
          return d.format === 'binary' || deref(d.items).format === 'binary';
        })
        .map(([n]) => n);
      // A synchronous job route waits for a worker this app lacks: it gets no real image, so it never queues a job.
      const sync = /\/segment\/(points|box|auto|objects)$/.test(path) || /\/infer$/.test(path) || path === '/api/v1/tasks';
      const query = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      out.push({ method, path, query, kind, fileFields, schema, sync });
    }
  }
  return out;
}

describe('schema fuzzing: hostile requests from every operation schema never get a 5xx', () => {
  let t: TestApp;
  let user: LoggedIn;
  const png = readFileSync(resolve(fixtures, 'sam/shapes-01-480x640.png'));
  beforeAll(async () => {
    t = await createTestApp(testEnv('fuzz', { BAD_CREDENTIALS_PER_MINUTE: '100000' }));
    user = await registerAndLogin(t.server, 'fuzz');
  });
  afterAll(() => t?.close());

  const all = cases();

  it('covers every operation with a body, a path parameter or a query', () => {
    expect(all.length).toBeGreaterThanOrEqual(40);
    expect(all.filter((c) => c.kind !== 'none').length).toBeGreaterThanOrEqual(20);
  });

  it(`answers ${TOTAL_REQUESTS} hostile requests with 2xx/3xx/4xx only, every 4xx a problem+json`, async () => {
    const runsEach = Math.max(2, Math.ceil(TOTAL_REQUESTS / all.length));
    const seen: string[] = [];
    for (const [i, c] of all.entries()) {
      const arb = fc.record({
        params: fc.array(pathParam, { minLength: 4, maxLength: 4 }),
        query: fc.dictionary(fc.constantFrom(...c.query, 'page', 'x'), queryScalar, {
          maxKeys: 4,
        }),
        body: bodyFor(c.schema),
        file: fc.constantFrom<'png' | 'junk' | 'none'>('png', 'junk', 'none'),
      });
      await fc.assert(
        fc.asyncProperty(arb, async ({ params, query, body, file }) => {
          let n = 0;
          const path = c.path.replace(/\{[^}]+\}/g, () => params[n++ % params.length]!);
          const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, asField(v)])).toString();
          let req = call(t, c.method, `${path}${qs ? `?${qs}` : ''}`)
            .set(user.auth)
            .timeout(15_000);
          if (c.kind === 'json') req = req.send(body);
          else if (c.kind === 'form')
            req = req.type('form').send(Object.fromEntries(Object.entries(body).map(([k, v]) => [k, asField(v)])));
          else if (c.kind === 'multipart') {
            for (const [k, v] of Object.entries(body)) if (!c.fileFields.includes(k)) req = req.field(k, asField(v));
            const real = file === 'png' && !c.sync;
            for (const f of c.fileFields)
              if (file !== 'none') req = req.attach(f, real ? png : Buffer.from('not an image at all'), real ? 'a.png' : 'a.png');
          }
          const res = await req;
          seen.push(`${c.method.toUpperCase()} ${c.path} → ${res.status}`);
          expect(
            res.status,
            `${c.method.toUpperCase()} ${path} ${JSON.stringify(body).slice(0, 300)}: ${JSON.stringify(res.body)}`,
          ).toBeLessThan(500);
          if (res.status >= 400) {
            expect(res.headers['content-type'], `${c.method} ${path}`).toMatch(/^application\/problem\+json/);
            expect(typeof (res.body as { detail?: unknown }).detail).toBe('string');
          }
          // A request that ended this session (logout, password change) must not blind the rest: sign in again.
          if (res.status < 300 && /\/(auth|users\/me)/.test(c.path)) user = await registerAndLogin(t.server, 'fuzz');
        }),
        { seed: SEED + i, numRuns: runsEach, endOnFailure: true, includeErrorInReport: true },
      );
    }
    expect(seen.length).toBeGreaterThanOrEqual(TOTAL_REQUESTS * 0.9);
  });
  // Exhaustive sweeps complement the random search: one hostile value at a time, so no other invalid field turns the
  // request into a 400 before the hostile one reaches the service and the database.
  const QUERY_VALUES = [
    '',
    '-1',
    '0',
    '2.5',
    'NaN',
    '1e400',
    '99999999999',
    '10000000000000000000',
    'true',
    '[]',
    '\u0000',
    'x'.repeat(2000),
  ];
  const BODY_VALUES: unknown[] = [
    null,
    '',
    'x'.repeat(20_000),
    -1,
    0,
    1e308,
    2 ** 53 + 1,
    2.5,
    true,
    [],
    {},
    '\u0000',
    '💥',
    [{ x: -1, y: 1e9 }],
  ];

  it('sweeps every query parameter alone through hostile values', async () => {
    let n = 0;
    for (const c of all.filter((x) => x.query.length && !x.path.includes('{'))) {
      for (const q of c.query) {
        for (const v of QUERY_VALUES) {
          const res = await call(t, c.method, `${c.path}?${new URLSearchParams({ [q]: v }).toString()}`)
            .set(user.auth)
            .timeout(15_000);
          n++;
          const what = `${c.method.toUpperCase()} ${c.path}?${q}=${v.slice(0, 40)} → ${res.status}`;
          expect(res.status, `${what}: ${JSON.stringify(res.body).slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400) expect(String(res.headers['content-type']), what).toMatch(/^application\/problem\+json/);
        }
      }
    }
    expect(n).toBeGreaterThan(50);
  });

  it('sweeps every JSON body property alone through hostile values', async () => {
    let n = 0;
    for (const c of all.filter((x) => x.kind === 'json' && !x.path.includes('{'))) {
      for (const prop of Object.keys(c.schema.properties ?? {})) {
        for (const v of BODY_VALUES) {
          const res = await call(t, c.method, c.path)
            .set(user.auth)
            .send({ [prop]: v })
            .timeout(15_000);
          n++;
          const what = `${c.method.toUpperCase()} ${c.path} {${prop}: ${JSON.stringify(v).slice(0, 40)}} → ${res.status}`;
          expect(res.status, `${what}: ${JSON.stringify(res.body).slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400) expect(String(res.headers['content-type']), what).toMatch(/^application\/problem\+json/);
          if (res.status < 300 && /\/(auth|users\/me)/.test(c.path)) user = await registerAndLogin(t.server, 'fuzz');
        }
      }
    }
    expect(n).toBeGreaterThan(50);
  });
});
