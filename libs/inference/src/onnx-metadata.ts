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
// Python literals. Ultralytics writes metadata values with str(v), i.e. Python repr, not JSON. Aperture reads two
// of them: `names` (a dict of int → str, or a list of str) and `imgsz` (a list of ints, or one int). The parser below
// takes exactly what repr() prints for those: ints, quoted strings with repr's escapes, lists/tuples, dicts.

type PyValue = string | number | PyValue[] | Map<PyValue, PyValue>;

/** Why a metadata value is not the Python literal Aperture expects (the message is shown with the model's error). */
export class PythonLiteralError extends Error {
  constructor(message: string, source: string, pos: number) {
    super(`${message} at ${pos} in ${JSON.stringify(source.length > 80 ? source.slice(0, 80) + '…' : source)}`);
    this.name = 'PythonLiteralError';
  }
}

const ESCAPES: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', n: '\n', r: '\r', t: '\t' };
const HEX_DIGITS: Record<string, number> = { x: 2, u: 4, U: 8 };

/** Parses repr() output of ints, strings, lists, tuples and dicts. No expressions, no eval. */
function parsePythonLiteral(s: string): PyValue {
  let pos = 0;
  const fail = (msg: string): never => {
    throw new PythonLiteralError(msg, s, pos);
  };
  const ws = (): void => {
    while (pos < s.length && /\s/.test(s[pos]!)) pos++;
  };
  const str = (): string => {
    const q = s[pos++]!;
    let out = '';
    while (s[pos] !== q) {
      if (pos >= s.length) fail('Unterminated string');
      const c = s[pos++]!;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = s[pos++] ?? fail('Unterminated escape');
      if (ESCAPES[e] !== undefined) out += ESCAPES[e];
      else if (HEX_DIGITS[e] !== undefined) {
        const h = s.slice(pos, pos + HEX_DIGITS[e]);
        if (!new RegExp(`^[0-9a-fA-F]{${HEX_DIGITS[e]}}$`).test(h)) fail('Bad hex escape');
        pos += h.length;
        out += String.fromCodePoint(parseInt(h, 16));
      } else out += '\\' + e; // Python keeps unknown escapes verbatim
    }
    pos++;
    return out;
  };
  /** Items up to `close`, separated by commas (a trailing comma allowed); `item` reads one. */
  const items = (close: string, item: () => void): void => {
    pos++;
    for (ws(); s[pos] !== close; ws()) {
      item();
      ws();
      if (s[pos] === ',') pos++;
      else if (s[pos] !== close) fail(`Expected , or ${close}`);
    }
    pos++;
  };
  const value = (): PyValue => {
    ws();
    const c = s[pos] ?? fail('Unexpected end of input');
    if (c === "'" || c === '"') return str();
    if (c === '[' || c === '(') {
      const out: PyValue[] = [];
      items(c === '[' ? ']' : ')', () => out.push(value()));
      return out;
    }
    if (c === '{') {
      const out = new Map<PyValue, PyValue>();
      items('}', () => {
        const k = value();
        ws();
        if (s[pos++] !== ':') fail('Expected :');
        out.set(k, value());
      });
      return out;
    }
    const m = /^[+-]?\d+/.exec(s.slice(pos)) ?? fail('Expected a value');
    pos += m[0].length;
    return Number(m[0]);
  };
  const v = value();
  ws();
  if (pos !== s.length) fail('Unexpected trailing input');
  return v;
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
  if (!(v instanceof Map)) throw new Error('names is neither a dict nor a list');
  const out: string[] = [];
  for (const [k, name] of v) {
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
