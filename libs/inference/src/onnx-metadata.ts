import { open } from 'node:fs/promises';
import { fields, MODEL_PROTO, readStringEntry, WindowedFile, WIRE_LEN } from './onnx-protobuf.js';

/**
 * ONNX custom metadata (ModelProto.metadata_props, field 14: repeated StringStringEntryProto {key = 1, value = 2}).
 * onnxruntime-node exposes no API for it, so the protobuf wire format is walked (onnx-protobuf.ts): only the top-level
 * fields are visited, every other field (the graph, field 7, included) is skipped by its length, never decoded.
 */

/** Reads metadata_props from a whole serialized ModelProto. Later duplicates of a key win, as in onnx.helper. */
export function readOnnxMetadata(model: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fields(model)) {
    if (f.fn === MODEL_PROTO.metadataProps && f.wt === WIRE_LEN) {
      const [k, v] = readStringEntry(model.subarray(f.start, f.end));
      out[k] = v;
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
    const file = new WindowedFile(fh, (await fh.stat()).size);
    const out: Record<string, string> = {};
    for (let pos = 0; pos < file.size;) {
      const f = await file.field(pos);
      if (f.fn === MODEL_PROTO.metadataProps && f.wt === WIRE_LEN) {
        const [k, v] = readStringEntry(await file.payload(f));
        out[k] = v;
      }
      pos = f.end;
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
