import type { FileHandle } from 'node:fs/promises';

/**
 * The protobuf wire format as far as Aperture reads ONNX files without ONNX Runtime: field headers (tag, then a varint
 * value or a length), in memory or through positional reads of a file. A length-delimited field is skipped by its
 * length, never decoded, so the weights of a model (initializers, hundreds of MB for a SAM encoder) are never read.
 * Used for ModelProto.metadata_props (onnx-metadata.ts) and the graph's inputs and outputs (models' onnx-graph.ts).
 */

/** A serialized message cut short, or bytes that are no protobuf message (the message is shown to the user). */
export class OnnxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxFormatError';
  }
}

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
const WIRE_SGROUP = 3;
const WIRE_EGROUP = 4;
export const WIRE_I32 = 5;

/** ModelProto's fields that Aperture reads. */
export const MODEL_PROTO = { irVersion: 1, graph: 7, metadataProps: 14 } as const;

/** One field of a message. */
export interface Field {
  fn: number;
  wt: number;
  /** Varint value (wire type 0) or length (wire type 2); 0 otherwise. */
  value: number;
  /** Where the value (wire type 2: the payload) starts. */
  start: number;
  /** Just past the field. */
  end: number;
}

/** Reads a base-128 varint at pos; values above 2^53 lose precision, which only matters for values that are skipped. */
export function readVarint(buf: Uint8Array, pos: number, end: number): { value: number; next: number } {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new OnnxFormatError('the file is truncated (a field is cut short)');
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return { value, next: pos };
    mul *= 128;
  }
  throw new OnnxFormatError('not an ONNX model (varint longer than 10 bytes)');
}

function within(pos: number, end: number): number {
  if (pos > end) throw new OnnxFormatError('the file is truncated (a field runs past the end)');
  return pos;
}

function tagAt(buf: Uint8Array, pos: number, end: number): { fn: number; wt: number; next: number } {
  const tag = readVarint(buf, pos, end);
  const fn = Math.floor(tag.value / 8);
  if (fn === 0) throw new OnnxFormatError('not an ONNX model (field number 0)');
  return { fn, wt: tag.value % 8, next: tag.next };
}

/** The field whose tag starts at `pos` of a message in memory ending at `end` (deprecated groups skipped whole). */
export function fieldAt(buf: Uint8Array, pos: number, end: number): Field {
  const { fn, wt, next } = tagAt(buf, pos, end);
  switch (wt) {
    case WIRE_VARINT: {
      const v = readVarint(buf, next, end);
      return { fn, wt, value: v.value, start: next, end: v.next };
    }
    case WIRE_I64:
      return { fn, wt, value: 0, start: next, end: within(next + 8, end) };
    case WIRE_I32:
      return { fn, wt, value: 0, start: next, end: within(next + 4, end) };
    case WIRE_LEN: {
      const len = readVarint(buf, next, end);
      return { fn, wt, value: len.value, start: len.next, end: within(len.next + len.value, end) };
    }
    case WIRE_SGROUP: {
      let p = next;
      for (;;) {
        const t = tagAt(buf, p, end);
        if (t.wt === WIRE_EGROUP) {
          if (t.fn !== fn) throw new OnnxFormatError('not an ONNX model (mismatched end-group tag)');
          return { fn, wt, value: 0, start: next, end: t.next };
        }
        p = fieldAt(buf, p, end).end;
      }
    }
    default:
      throw new OnnxFormatError(`not an ONNX model (wire type ${wt})`);
  }
}

/** The fields of a message in memory, buf[start, end). */
export function* fields(buf: Uint8Array, start = 0, end = buf.length): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const f = fieldAt(buf, pos, end);
    yield f;
    pos = f.end;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** A length-delimited field's payload as a string. */
export const fieldString = (buf: Uint8Array, f: Field): string => utf8.decode(buf.subarray(f.start, f.end));

/** StringStringEntryProto { key = 1, value = 2 } (a metadata_props entry) from its serialized bytes. */
export function readStringEntry(buf: Uint8Array): [string, string] {
  let key = '';
  let value = '';
  for (const f of fields(buf)) {
    if (f.fn === 1 && f.wt === WIRE_LEN) key = fieldString(buf, f);
    if (f.fn === 2 && f.wt === WIRE_LEN) value = fieldString(buf, f);
  }
  return [key, value];
}

const WINDOW = 64 * 1024;
/** A tag and a length are at most 10 bytes each. */
const HEADER_MAX = 20;
/** No metadata entry or value info comes near this; a length past it means the bytes are no ONNX model. */
const PAYLOAD_MAX = 64 * 1024 * 1024;

/**
 * A file read through one 64 KiB window of positional reads: the many small fields of a graph (nodes, value infos)
 * come from one read, a large one (an initializer's weights) is skipped by moving the window past it.
 */
export class WindowedFile {
  private buf = Buffer.alloc(0);
  private start = 0;

  constructor(
    private readonly fh: FileHandle,
    /** The file's size: no field may run past it. */
    readonly size: number,
  ) {}

  /** Bytes [pos, pos + len) of the file (fewer at its end). */
  async bytes(pos: number, len: number): Promise<Buffer> {
    if (pos < this.start || pos + len > this.start + this.buf.length) {
      const b = Buffer.alloc(Math.max(WINDOW, len));
      const { bytesRead } = await this.fh.read(b, 0, b.length, pos);
      this.buf = b.subarray(0, bytesRead);
      this.start = pos;
    }
    return this.buf.subarray(pos - this.start, pos - this.start + len);
  }

  /** The field whose tag starts at `pos` of the file, within a message that ends at `end` (default: the file's end). */
  async field(pos: number, end = this.size): Promise<Field> {
    const head = await this.bytes(pos, Math.min(HEADER_MAX, end - pos));
    const t = tagAt(head, 0, head.length);
    if (t.wt === WIRE_SGROUP) {
      // Deprecated groups (no ONNX message has one): skip the nested fields up to the matching end-group tag.
      let p = pos + t.next;
      for (;;) {
        const h = await this.bytes(p, Math.min(HEADER_MAX, end - p));
        const nt = tagAt(h, 0, h.length);
        if (nt.wt === WIRE_EGROUP) {
          if (nt.fn !== t.fn) throw new OnnxFormatError('not an ONNX model (mismatched end-group tag)');
          return { fn: t.fn, wt: t.wt, value: 0, start: pos + t.next, end: p + nt.next };
        }
        p = (await this.field(p, end)).end;
      }
    }
    const f = fieldAt(head, 0, head.length === HEADER_MAX ? Number.MAX_SAFE_INTEGER : head.length);
    const field = { ...f, start: f.start + pos, end: f.end + pos };
    within(field.end, end);
    return field;
  }

  /** A length-delimited field's payload (a copy). */
  async payload(f: Field): Promise<Buffer> {
    if (f.end - f.start > PAYLOAD_MAX) throw new OnnxFormatError(`field ${f.fn} is implausibly large (${f.end - f.start} bytes)`);
    const b = Buffer.from(await this.bytes(f.start, f.end - f.start));
    if (b.length !== f.end - f.start) throw new OnnxFormatError('the file is truncated');
    return b;
  }
}
