import { open } from 'node:fs/promises';

/**
 * ONNX custom metadata (ModelProto.metadata_props, field 14: repeated StringStringEntryProto {key = 1, value = 2}).
 * onnxruntime-node exposes no API for it, so we walk the protobuf wire format ourselves: only the top-level
 * fields are visited, every other field (the graph, field 7, included) is skipped by its length, never decoded.
 */

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_SGROUP = 3;
const WIRE_EGROUP = 4;
const WIRE_I32 = 5;
const METADATA_PROPS = 14;

export class OnnxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxFormatError';
  }
}

interface Varint {
  value: number;
  next: number;
}

/** Reads a base-128 varint at pos; values above 2^53 lose precision, which only matters for values we skip anyway. */
function readVarint(buf: Uint8Array, pos: number, end: number): Varint {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new OnnxFormatError('Truncated varint');
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return { value, next: pos };
    mul *= 128;
  }
  throw new OnnxFormatError('Varint longer than 10 bytes');
}

/** Returns the position just after the value of a field of the given wire type that starts at pos. */
function skipField(buf: Uint8Array, pos: number, end: number, wireType: number, fieldNumber: number): number {
  switch (wireType) {
    case WIRE_VARINT:
      return readVarint(buf, pos, end).next;
    case WIRE_I64:
      return checkEnd(pos + 8, end);
    case WIRE_I32:
      return checkEnd(pos + 4, end);
    case WIRE_LEN: {
      const len = readVarint(buf, pos, end);
      return checkEnd(len.next + len.value, end);
    }
    case WIRE_SGROUP: {
      // Deprecated groups: skip nested fields until the matching end-group tag.
      let p = pos;
      for (;;) {
        const tag = readVarint(buf, p, end);
        const wt = tag.value % 8;
        const fn = Math.floor(tag.value / 8);
        if (wt === WIRE_EGROUP) {
          if (fn !== fieldNumber) throw new OnnxFormatError('Mismatched end-group tag');
          return tag.next;
        }
        p = skipField(buf, tag.next, end, wt, fn);
      }
    }
    default:
      throw new OnnxFormatError(`Unsupported wire type ${wireType}`);
  }
}

function checkEnd(pos: number, end: number): number {
  if (pos > end) throw new OnnxFormatError('Field runs past the end of its message');
  return pos;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Decodes one StringStringEntryProto message occupying buf[start, end). */
function readEntry(buf: Uint8Array, start: number, end: number): [string, string] {
  let key = '';
  let value = '';
  let pos = start;
  while (pos < end) {
    const tag = readVarint(buf, pos, end);
    const wt = tag.value % 8;
    const fn = Math.floor(tag.value / 8);
    if (wt === WIRE_LEN && (fn === 1 || fn === 2)) {
      const len = readVarint(buf, tag.next, end);
      const stop = checkEnd(len.next + len.value, end);
      const s = utf8.decode(buf.subarray(len.next, stop));
      if (fn === 1) key = s;
      else value = s;
      pos = stop;
    } else {
      pos = skipField(buf, tag.next, end, wt, fn);
    }
  }
  return [key, value];
}

/** Reads metadata_props from a whole serialized ModelProto. Later duplicates of a key win, as in onnx.helper. */
export function readOnnxMetadata(model: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const end = model.length;
  let pos = 0;
  while (pos < end) {
    const tag = readVarint(model, pos, end);
    const wt = tag.value % 8;
    const fn = Math.floor(tag.value / 8);
    if (fn === 0) throw new OnnxFormatError('Field number 0 is invalid');
    if (fn === METADATA_PROPS && wt === WIRE_LEN) {
      const len = readVarint(model, tag.next, end);
      const stop = checkEnd(len.next + len.value, end);
      const [k, v] = readEntry(model, len.next, stop);
      out[k] = v;
      pos = stop;
    } else {
      pos = skipField(model, tag.next, end, wt, fn);
    }
  }
  return out;
}

/**
 * Reads metadata_props from a model file without reading the whole file: only the top-level tags and the
 * field-14 entries are read; the graph (hundreds of MB for a SAM encoder) is skipped by seeking.
 */
export async function readOnnxMetadataFile(path: string): Promise<Record<string, string>> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(24);
    const out: Record<string, string> = {};
    let pos = 0;
    while (pos < size) {
      const { bytesRead } = await fh.read(head, 0, head.length, pos);
      const avail = head.subarray(0, bytesRead);
      const tag = readVarint(avail, 0, avail.length);
      const wt = tag.value % 8;
      const fn = Math.floor(tag.value / 8);
      if (fn === 0) throw new OnnxFormatError('Field number 0 is invalid');
      if (wt === WIRE_LEN) {
        const len = readVarint(avail, tag.next, avail.length);
        const start = pos + len.next;
        const stop = checkEnd(start + len.value, size);
        if (fn === METADATA_PROPS) {
          const entry = Buffer.alloc(len.value);
          await fh.read(entry, 0, len.value, start);
          const [k, v] = readEntry(entry, 0, entry.length);
          out[k] = v;
        }
        pos = stop;
      } else if (wt === WIRE_VARINT || wt === WIRE_I32 || wt === WIRE_I64) {
        pos += skipField(avail, tag.next, avail.length, wt, fn);
      } else {
        // Groups never occur at the top level of an ONNX model; fall back to the in-memory reader.
        const all = await fh.readFile();
        return readOnnxMetadata(all);
      }
    }
    return out;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Python literals (Ultralytics writes metadata values with str(v), i.e. Python repr, not JSON).

/** A parsed Python dict keeps insertion order and non-string keys. */
export class PyDict {
  constructor(readonly entries: ReadonlyArray<readonly [PyValue, PyValue]>) {}
}

export type PyValue = string | number | boolean | null | PyValue[] | PyDict;

export class PythonLiteralError extends Error {
  constructor(message: string, source: string, pos: number) {
    super(`${message} at ${pos} in ${JSON.stringify(source.length > 80 ? source.slice(0, 80) + '…' : source)}`);
    this.name = 'PythonLiteralError';
  }
}

/**
 * Parses a Python literal as printed by repr(): dicts, lists, tuples, sets (as lists), str (single, double or
 * triple quotes, escapes, r/b/u prefixes), int, float, True/False/None. No expressions, no eval.
 */
export function parsePythonLiteral(source: string): PyValue {
  const p = new PyParser(source);
  const v = p.value();
  p.ws();
  if (p.pos !== source.length) p.fail('Unexpected trailing input');
  return v;
}

class PyParser {
  pos = 0;
  constructor(private readonly s: string) {}

  fail(msg: string): never {
    throw new PythonLiteralError(msg, this.s, this.pos);
  }

  ws(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }

  value(): PyValue {
    this.ws();
    const c = this.s[this.pos];
    if (c === undefined) this.fail('Unexpected end of input');
    if (c === '{') return this.dictOrSet();
    if (c === '[') return this.seq('[', ']');
    if (c === '(') return this.seq('(', ')');
    if (c === "'" || c === '"') return this.str('');
    const prefix = /^([rRbBuU]{1,2})(['"])/.exec(this.s.slice(this.pos, this.pos + 3));
    if (prefix) {
      this.pos += prefix[1]!.length;
      return this.str(prefix[1]!.toLowerCase());
    }
    for (const [word, v] of [
      ['True', true],
      ['False', false],
      ['None', null],
    ] as const) {
      if (this.s.startsWith(word, this.pos) && !/[\w]/.test(this.s[this.pos + word.length] ?? '')) {
        this.pos += word.length;
        return v;
      }
    }
    return this.num();
  }

  private num(): number {
    const m = /^[+-]?(?:inf|nan|0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)/.exec(
      this.s.slice(this.pos),
    );
    if (!m || m[0] === '' || m[0] === '+' || m[0] === '-') this.fail('Expected a value');
    this.pos += m[0].length;
    const t = m[0].replace(/_/g, '');
    const sign = t.startsWith('-') ? -1 : 1;
    const body = t.replace(/^[+-]/, '');
    if (body === 'inf') return sign * Infinity;
    if (body === 'nan') return NaN;
    if (/^0[xX]/.test(body)) return sign * parseInt(body.slice(2), 16);
    if (/^0[oO]/.test(body)) return sign * parseInt(body.slice(2), 8);
    if (/^0[bB]/.test(body)) return sign * parseInt(body.slice(2), 2);
    return sign * Number(body);
  }

  private str(prefix: string): string {
    const raw = prefix.includes('r');
    const q = this.s[this.pos]!;
    const triple = this.s.startsWith(q.repeat(3), this.pos);
    const close = triple ? q.repeat(3) : q;
    this.pos += close.length;
    let out = '';
    for (;;) {
      if (this.pos >= this.s.length) this.fail('Unterminated string');
      if (this.s.startsWith(close, this.pos)) {
        this.pos += close.length;
        break;
      }
      const c = this.s[this.pos++]!;
      if (c !== '\\') {
        if (!triple && c === '\n') this.fail('Newline in string');
        out += c;
        continue;
      }
      const e = this.s[this.pos++];
      if (e === undefined) this.fail('Unterminated escape');
      if (raw) {
        out += '\\' + e;
        continue;
      }
      switch (e) {
        case '\n':
          break;
        case '\\':
        case "'":
        case '"':
          out += e;
          break;
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'a':
          out += '\x07';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7': {
          const m = /^[0-7]{1,3}/.exec(this.s.slice(this.pos - 1))![0];
          this.pos += m.length - 1;
          out += String.fromCodePoint(parseInt(m, 8));
          break;
        }
        case 'x':
          out += this.hex(2);
          break;
        case 'u':
          out += this.hex(4);
          break;
        case 'U':
          out += this.hex(8);
          break;
        default:
          out += '\\' + e; // Python keeps unknown escapes verbatim
      }
    }
    return out;
  }

  private hex(n: number): string {
    const h = this.s.slice(this.pos, this.pos + n);
    if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) this.fail('Bad hex escape');
    this.pos += n;
    return String.fromCodePoint(parseInt(h, 16));
  }

  private seq(open: string, close: string): PyValue[] {
    this.pos += open.length;
    const out: PyValue[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.pos] === close) {
        this.pos++;
        return out;
      }
      out.push(this.value());
      this.ws();
      if (this.s[this.pos] === ',') this.pos++;
      else if (this.s[this.pos] !== close) this.fail(`Expected , or ${close}`);
    }
  }

  private dictOrSet(): PyValue {
    this.pos++;
    const entries: [PyValue, PyValue][] = [];
    const setItems: PyValue[] = [];
    let isSet: boolean | undefined;
    for (;;) {
      this.ws();
      if (this.s[this.pos] === '}') {
        this.pos++;
        return isSet ? setItems : new PyDict(entries);
      }
      const k = this.value();
      this.ws();
      if (this.s[this.pos] === ':') {
        if (isSet === true) this.fail('Mixed set and dict');
        isSet = false;
        this.pos++;
        entries.push([k, this.value()]);
      } else {
        if (isSet === false) this.fail('Expected :');
        isSet = true;
        setItems.push(k);
      }
      this.ws();
      if (this.s[this.pos] === ',') this.pos++;
      else if (this.s[this.pos] !== '}') this.fail('Expected , or }');
    }
  }
}

/** Ultralytics `names`: "{0: 'person', 1: \"kid's toy\"}" (or a list) → class names by index. Indices must be 0..n-1. */
export function parseNames(source: string): string[] {
  const v = parsePythonLiteral(source);
  if (Array.isArray(v)) {
    return v.map((x, i) => {
      if (typeof x !== 'string') throw new Error(`names[${i}] is not a string`);
      return x;
    });
  }
  if (!(v instanceof PyDict)) throw new Error('names is neither a dict nor a list');
  const out: string[] = [];
  for (const [k, name] of v.entries) {
    const idx = typeof k === 'number' ? k : typeof k === 'string' && /^\d+$/.test(k) ? Number(k) : NaN;
    if (!Number.isInteger(idx) || idx < 0) throw new Error(`names key ${String(k)} is not a class index`);
    if (typeof name !== 'string') throw new Error(`names[${idx}] is not a string`);
    out[idx] = name;
  }
  for (let i = 0; i < out.length; i++) if (out[i] === undefined) throw new Error(`names has no class ${i}`);
  return out;
}

/** Ultralytics `imgsz`: "[640, 640]" → [h, w]; a single int "640" → [640, 640]. */
export function parseImgsz(source: string): [number, number] {
  const v = parsePythonLiteral(source);
  const arr = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 1 ? [v[0], v[0]] : v;
  if (!Array.isArray(arr) || arr.length !== 2 || !arr.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) {
    throw new Error(`imgsz ${source} is not [h, w]`);
  }
  return [arr[0] as number, arr[1] as number];
}

/** Ultralytics `stride`: "32" → 32 (AutoBackend int()s it). */
export function parseStride(source: string): number {
  const v = parsePythonLiteral(source);
  const n = Array.isArray(v) ? Math.max(...v.map((x) => (typeof x === 'number' ? x : NaN))) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) throw new Error(`stride ${source} is not a number`);
  return Math.trunc(n);
}

export interface UltralyticsMetadata {
  task?: string;
  names?: string[];
  imgsz?: [number, number];
  stride?: number;
  batch?: number;
  /** Every raw metadata_props entry, unparsed. */
  raw: Record<string, string>;
}

/** Parses the keys Ultralytics' exporter writes; absent keys stay undefined, malformed ones throw. */
export function parseUltralyticsMetadata(raw: Record<string, string>): UltralyticsMetadata {
  const out: UltralyticsMetadata = { raw };
  if (raw.task !== undefined) out.task = raw.task;
  if (raw.names !== undefined) out.names = parseNames(raw.names);
  if (raw.imgsz !== undefined) out.imgsz = parseImgsz(raw.imgsz);
  if (raw.stride !== undefined) out.stride = parseStride(raw.stride);
  if (raw.batch !== undefined) out.batch = parseStride(raw.batch);
  return out;
}
