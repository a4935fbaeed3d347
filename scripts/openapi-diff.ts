/**
 * Breaking changes between two OpenAPI 3 documents, as a client of the old one would meet them. Pure: no I/O.
 *
 * What counts as breaking (each finding names one of these kinds):
 * - `path-removed`: a path is gone.
 * - `operation-removed`: a method of a path that is still there is gone.
 * - `parameter-removed`: a parameter is gone (the API refuses unknown query fields, so old calls would fail).
 * - `parameter-required`: a new required parameter, or an optional one made required.
 * - `request-body-required`: a request body became required where it was optional or absent.
 * - `media-type-removed`: a request or response media type is gone (e.g. multipart/form-data no longer accepted).
 * - `request-property-required`: a request body property is new and required, or was optional and is now required.
 * - `request-property-removed`: a request body property is gone (unknown fields are refused).
 * - `response-status-removed`: a success (2xx) status is gone (e.g. 200 became 201).
 * - `response-property-removed`: a response property is gone.
 * - `response-property-optional`: a response property that was always present (required) no longer is.
 * - `type-changed`: a schema's type or format changed: in a request, values the old type accepted are now refused;
 *   in a response, values of a type the old one did not allow (null included) may now come back.
 * - `enum-value-removed`: an enum value is gone, in a request (old clients send it) or a response (typed clients that
 *   compare against it no longer compile).
 * - `variant-removed`: a `oneOf`/`anyOf` alternative is gone (matched by its `$ref`, or by position when inline) and
 *   no new alternative is a compatible successor of it.
 *
 * Not breaking (pass): new paths, operations, optional parameters and optional request properties; new response
 * properties, statuses and media types; new enum values and alternatives; descriptions, examples and ordering; a
 * response schema split into `oneOf`/`anyOf` alternatives that each keep what the old schema promised; an alternative
 * replaced by a compatible successor (e.g. a free-form object by a named object schema).
 * Not judged: security requirements, response headers, and numeric/string constraints (minimum, maxLength, pattern).
 */

export type BreakingKind =
  | 'path-removed'
  | 'operation-removed'
  | 'parameter-removed'
  | 'parameter-required'
  | 'request-body-required'
  | 'media-type-removed'
  | 'request-property-required'
  | 'request-property-removed'
  | 'response-status-removed'
  | 'response-property-removed'
  | 'response-property-optional'
  | 'type-changed'
  | 'enum-value-removed'
  | 'variant-removed';

export interface BreakingChange {
  kind: BreakingKind;
  /** Where, e.g. `GET /api/v1/auth/me response 200 application/json .username`. */
  at: string;
  message: string;
}

type Obj = Record<string, unknown>;
type Direction = 'request' | 'response';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strings = (v: unknown): string[] => list(v).filter((x): x is string => typeof x === 'string');

/** A document with its local `$ref`s resolvable (`#/components/...`). */
class Doc {
  constructor(readonly root: Obj) {}

  /** Follows `$ref` chains (local only); an unresolvable or circular chain gives {}. */
  deref(v: unknown): Obj {
    let cur = obj(v);
    for (let hops = 0; typeof cur['$ref'] === 'string' && hops < 32; hops++) cur = this.pointer(cur['$ref']);
    return typeof cur['$ref'] === 'string' ? {} : cur;
  }

  private pointer(ref: string): Obj {
    if (!ref.startsWith('#/')) return {};
    let cur: unknown = this.root;
    for (const raw of ref.slice(2).split('/')) cur = obj(cur)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
    return obj(cur);
  }

  /** A schema with its `$ref` followed and its `allOf` parts merged (properties and required lists joined). */
  flatten(v: unknown, depth = 0): Obj {
    const s = this.deref(v);
    const parts = list(s['allOf']);
    if (parts.length === 0 || depth > 16) return s;
    const merged: Obj = { ...s };
    delete merged['allOf'];
    const properties: Obj = { ...obj(s['properties']) };
    const required = new Set(strings(s['required']));
    for (const part of parts) {
      const p = this.flatten(part, depth + 1);
      for (const [k, val] of Object.entries(p)) {
        if (k === 'properties') Object.assign(properties, obj(val));
        else if (k === 'required') for (const r of strings(val)) required.add(r);
        else if (!(k in merged)) merged[k] = val;
      }
    }
    if (Object.keys(properties).length > 0) merged['properties'] = properties;
    if (required.size > 0) merged['required'] = [...required];
    return merged;
  }
}

/** The set of JSON types a schema allows (OpenAPI 3.0 `nullable` and 3.1 type arrays both give 'null'); null = any. */
function typesOf(s: Obj): Set<string> | null {
  const t = s['type'];
  const types = typeof t === 'string' ? [t] : strings(t);
  if (types.length === 0) return null;
  const set = new Set(types);
  if (s['nullable'] === true) set.add('null');
  return set;
}

/** Whether every type in `a` is allowed by `b` (an integer is a number). */
function typesWithin(a: Set<string>, b: Set<string>): boolean {
  return [...a].every((t) => b.has(t) || (t === 'integer' && b.has('number')));
}

const show = (s: Set<string>): string => [...s].sort().join('|');

class Differ {
  readonly found: BreakingChange[] = [];
  /** Schema pairs already compared, by their refs and direction: stops recursion on cyclic schemas. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly a: Doc,
    private readonly b: Doc,
  ) {}

  /** Records a finding; its message is `<at>: <what>`. */
  private add(kind: BreakingKind, at: string, what: string): void {
    this.found.push({ kind, at, message: `${at}: ${what}` });
  }

  run(): BreakingChange[] {
    const oldPaths = obj(this.a.root['paths']);
    const newPaths = obj(this.b.root['paths']);
    for (const [path, rawOld] of Object.entries(oldPaths)) {
      if (!(path in newPaths)) {
        this.add('path-removed', path, 'path was removed');
        continue;
      }
      const oldItem = this.a.deref(rawOld);
      const newItem = this.b.deref(newPaths[path]);
      for (const method of METHODS) {
        if (!isObj(oldItem[method])) continue;
        const at = `${method.toUpperCase()} ${path}`;
        if (!isObj(newItem[method])) {
          this.add('operation-removed', at, 'operation was removed');
          continue;
        }
        this.operation(at, oldItem, newItem, oldItem[method], newItem[method]);
      }
    }
    return this.found;
  }

  private parameters(doc: Doc, item: Obj, op: Obj): Map<string, Obj> {
    const out = new Map<string, Obj>();
    for (const raw of [...list(item['parameters']), ...list(op['parameters'])]) {
      const p = doc.deref(raw);
      if (typeof p['name'] === 'string' && typeof p['in'] === 'string') out.set(`${p['in']} parameter "${p['name']}"`, p);
    }
    return out;
  }

  private operation(at: string, oldItem: Obj, newItem: Obj, oldOp: Obj, newOp: Obj): void {
    const oldParams = this.parameters(this.a, oldItem, oldOp);
    const newParams = this.parameters(this.b, newItem, newOp);
    for (const [key, p] of oldParams) {
      const q = newParams.get(key);
      if (!q) {
        this.add('parameter-removed', `${at} ${key}`, 'parameter was removed');
        continue;
      }
      if (q['required'] === true && p['required'] !== true) this.add('parameter-required', `${at} ${key}`, 'parameter is now required');
      this.schema('request', `${at} ${key}`, p['schema'], q['schema']);
    }
    for (const [key, q] of newParams) {
      if (!oldParams.has(key) && q['required'] === true) this.add('parameter-required', `${at} ${key}`, 'new required parameter');
    }

    const oldBody = this.a.deref(oldOp['requestBody']);
    const newBody = this.b.deref(newOp['requestBody']);
    if (newBody['required'] === true && oldBody['required'] !== true) {
      this.add('request-body-required', `${at} request body`, 'the request body is now required');
    }
    this.content('request', `${at} request body`, oldBody['content'], newBody['content']);

    const oldResponses = obj(oldOp['responses']);
    const newResponses = obj(newOp['responses']);
    for (const [status, rawOld] of Object.entries(oldResponses)) {
      const where = `${at} response ${status}`;
      if (!(status in newResponses)) {
        if (/^2/.test(status)) this.add('response-status-removed', where, 'success status was removed');
        continue;
      }
      this.content('response', where, this.a.deref(rawOld)['content'], this.b.deref(newResponses[status])['content']);
    }
  }

  private content(dir: Direction, at: string, oldContent: unknown, newContent: unknown): void {
    const next = obj(newContent);
    for (const [media, oldMedia] of Object.entries(obj(oldContent))) {
      if (!(media in next)) {
        this.add('media-type-removed', `${at} ${media}`, 'media type was removed');
        continue;
      }
      this.schema(dir, `${at} ${media}`, obj(oldMedia)['schema'], obj(next[media])['schema']);
    }
  }

  private schema(dir: Direction, at: string, rawOld: unknown, rawNew: unknown): void {
    if (rawOld === undefined || rawNew === undefined) return;
    const refs = `${dir}|${String(obj(rawOld)['$ref'] ?? '')}|${String(obj(rawNew)['$ref'] ?? '')}`;
    if (refs !== `${dir}||`) {
      if (this.seen.has(refs)) return;
      this.seen.add(refs);
    }
    const a = this.a.flatten(rawOld);
    const b = this.b.flatten(rawNew);

    // A response schema split into alternatives (a oneOf by type, say): every value that can come back is one of
    // them, so each alternative must be a compatible successor of the old schema, except that an enum value (the
    // discriminator's, typically) may live on in another alternative.
    const split = list(b['oneOf']).length > 0 ? 'oneOf' : list(b['anyOf']).length > 0 ? 'anyOf' : null;
    if (dir === 'response' && split && list(a['oneOf']).length === 0 && list(a['anyOf']).length === 0 && !isObj(b['properties'])) {
      const per = list(b[split]).map((w, i) => {
        const d = new Differ(this.a, this.b);
        d.schema(dir, '', rawOld, w);
        const n = typeof obj(w)['$ref'] === 'string' ? String(obj(w)['$ref']).replace('#/components/schemas/', '') : `#${i}`;
        return { n, found: d.found };
      });
      const everywhere = (f: BreakingChange): boolean =>
        per.every((p) => p.found.some((g) => g.kind === f.kind && g.message === f.message));
      for (const { n, found } of per) {
        for (const f of found) {
          if (f.kind === 'enum-value-removed' && !everywhere(f)) continue;
          this.add(f.kind, `${at} (${split} ${n})${f.at}`, f.message.slice(f.at.length + 2));
        }
      }
      return;
    }

    const ta = typesOf(a);
    const tb = typesOf(b);
    if (ta && tb) {
      const narrowed = dir === 'request' ? !typesWithin(ta, tb) : !typesWithin(tb, ta);
      if (narrowed) {
        this.add('type-changed', at, `type changed from ${show(ta)} to ${show(tb)}`);
        return;
      }
    }
    if (typeof a['format'] === 'string' && typeof b['format'] === 'string' && a['format'] !== b['format']) {
      this.add('type-changed', at, `format changed from ${a['format']} to ${b['format']}`);
    }

    if (Array.isArray(a['enum']) && Array.isArray(b['enum'])) {
      const kept = new Set(b['enum'].map((v) => JSON.stringify(v)));
      for (const v of a['enum']) {
        if (!kept.has(JSON.stringify(v))) this.add('enum-value-removed', at, `enum value ${JSON.stringify(v)} was removed`);
      }
    }

    for (const key of ['oneOf', 'anyOf'] as const) this.variants(dir, at, key, a[key], b[key]);

    if (a['items'] !== undefined && b['items'] !== undefined) this.schema(dir, `${at}[]`, a['items'], b['items']);
    if (isObj(a['additionalProperties']) && isObj(b['additionalProperties'])) {
      this.schema(dir, `${at}{}`, a['additionalProperties'], b['additionalProperties']);
    }
    this.properties(dir, at, a, b);
  }

  private variants(dir: Direction, at: string, key: 'oneOf' | 'anyOf', rawA: unknown, rawB: unknown): void {
    const va = list(rawA);
    const vb = list(rawB);
    if (va.length === 0 || vb.length === 0) return;
    const name = (v: unknown, i: number): string => (typeof obj(v)['$ref'] === 'string' ? String(obj(v)['$ref']) : `#${i}`);
    const byName = new Map(vb.map((v, i) => [name(v, i), v]));
    va.forEach((v, i) => {
      const n = name(v, i);
      const match = byName.get(n);
      if (match !== undefined) this.schema(dir, `${at} (${key} ${n.replace('#/components/schemas/', '')})`, v, match);
      // Replaced rather than removed: a new alternative that an old client of this one still handles (e.g. "any object"
      // made a named object schema).
      else if (!vb.some((w) => this.fits(dir, v, w))) {
        this.add('variant-removed', at, `${key} alternative ${n.replace('#/components/schemas/', '')} was removed`);
      }
    });
  }

  /** Whether `rawNew` is a compatible successor of `rawOld` (no finding between them), without recording anything. */
  private fits(dir: Direction, rawOld: unknown, rawNew: unknown): boolean {
    const d = new Differ(this.a, this.b);
    d.schema(dir, '', rawOld, rawNew);
    return d.found.length === 0;
  }

  private properties(dir: Direction, at: string, a: Obj, b: Obj): void {
    const pa = obj(a['properties']);
    const pb = obj(b['properties']);
    const ra = new Set(strings(a['required']));
    const rb = new Set(strings(b['required']));
    for (const [prop, sa] of Object.entries(pa)) {
      const where = `${at} .${prop}`;
      if (!(prop in pb)) {
        if (dir === 'response') this.add('response-property-removed', where, 'response property was removed');
        else this.add('request-property-removed', where, 'request property was removed');
        continue;
      }
      if (dir === 'response' && ra.has(prop) && !rb.has(prop)) {
        this.add('response-property-optional', where, 'response property is no longer always present');
      }
      if (dir === 'request' && rb.has(prop) && !ra.has(prop)) {
        this.add('request-property-required', where, 'request property is now required');
      }
      this.schema(dir, where, sa, pb[prop]);
    }
    if (dir === 'request') {
      for (const prop of rb) {
        if (!(prop in pa)) this.add('request-property-required', `${at} .${prop}`, 'new required request property');
      }
    }
  }
}

/** Every breaking change from `before` to `after` (parsed OpenAPI 3 documents); empty when compatible. */
export function breakingChanges(before: unknown, after: unknown): BreakingChange[] {
  return new Differ(new Doc(obj(before)), new Doc(obj(after))).run();
}
