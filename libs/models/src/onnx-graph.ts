import { open, type FileHandle } from 'node:fs/promises';
import type { ValueMetadata } from '@aperture/inference/session-types.js';

/**
 * What an ONNX file declares without loading it: the graph's inputs and outputs (names, element types, shapes) and
 * metadata_props. Read with positional reads of the protobuf wire format: ModelProto.graph (7) → GraphProto.input
 * (11) / output (12) ValueInfoProto; ModelProto.metadata_props (14). Nodes and initializers (the weights) are skipped
 * by their lengths, never read, so a 200 MB file costs a few small reads. A file cut short, or one that is not a
 * serialized ModelProto, is an OnnxFileError. No ONNX Runtime here: the API uses it to check an upload.
 */
export interface OnnxFileInfo {
  irVersion: number;
  inputs: ValueMetadata[];
  outputs: ValueMetadata[];
  metadata: Record<string, string>;
}

export class OnnxFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxFileError';
  }
}

const ELEM_TYPES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  16: 'bfloat16',
};

const utf8 = new TextDecoder('utf-8', { fatal: false });

interface Field {
  fn: number;
  wt: number;
  /** Varint value (wire type 0) or length (wire type 2). */
  value: number;
  /** Where the value (wire type 2: the payload) starts. */
  start: number;
  /** Just past the field. */
  end: number;
}

/** Reads one field header at `pos` of an in-memory message ending at `end`. */
function fieldAt(buf: Uint8Array, pos: number, end: number): Field {
  const tag = varint(buf, pos, end);
  const wt = tag.value % 8;
  const fn = Math.floor(tag.value / 8);
  if (fn === 0) throw new OnnxFileError('not an ONNX model (field number 0)');
  switch (wt) {
    case 0: {
      const v = varint(buf, tag.next, end);
      return { fn, wt, value: v.value, start: tag.next, end: v.next };
    }
    case 1:
      return { fn, wt, value: 0, start: tag.next, end: within(tag.next + 8, end) };
    case 5:
      return { fn, wt, value: 0, start: tag.next, end: within(tag.next + 4, end) };
    case 2: {
      const len = varint(buf, tag.next, end);
      return { fn, wt, value: len.value, start: len.next, end: within(len.next + len.value, end) };
    }
    default:
      throw new OnnxFileError(`not an ONNX model (wire type ${wt})`);
  }
}

function varint(buf: Uint8Array, pos: number, end: number): { value: number; next: number } {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new OnnxFileError('the file is truncated (a field is cut short)');
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return { value, next: pos };
    mul *= 128;
  }
  throw new OnnxFileError('not an ONNX model (varint longer than 10 bytes)');
}

function within(pos: number, end: number): number {
  if (pos > end) throw new OnnxFileError('the file is truncated (a field runs past the end)');
  return pos;
}

function* fields(buf: Uint8Array, start = 0, end = buf.length): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const f = fieldAt(buf, pos, end);
    yield f;
    pos = f.end;
  }
}

const str = (buf: Uint8Array, f: Field): string => utf8.decode(buf.subarray(f.start, f.end));

/** ValueInfoProto { name = 1, type = 2: TypeProto { tensor_type = 1: { elem_type = 1, shape = 2: { dim = 1 } } } }. */
function valueInfo(buf: Uint8Array): ValueMetadata {
  const out: ValueMetadata = { name: '', isTensor: false };
  for (const f of fields(buf)) {
    if (f.fn === 1 && f.wt === 2) out.name = str(buf, f);
    if (f.fn !== 2 || f.wt !== 2) continue;
    for (const t of fields(buf, f.start, f.end)) {
      if (t.fn !== 1 || t.wt !== 2) continue;
      out.isTensor = true;
      for (const tt of fields(buf, t.start, t.end)) {
        if (tt.fn === 1 && tt.wt === 0) out.type = ELEM_TYPES[tt.value] ?? `onnx type ${tt.value}`;
        if (tt.fn !== 2 || tt.wt !== 2) continue;
        const shape: (number | string)[] = [];
        for (const d of fields(buf, tt.start, tt.end)) {
          if (d.fn !== 1 || d.wt !== 2) continue;
          let dim: number | string = -1;
          for (const dv of fields(buf, d.start, d.end)) {
            if (dv.fn === 1 && dv.wt === 0) dim = dv.value;
            if (dv.fn === 2 && dv.wt === 2) dim = str(buf, dv);
          }
          shape.push(dim);
        }
        out.shape = shape;
      }
    }
  }
  return out;
}

const WINDOW = 64 * 1024;

/**
 * Positional reads through one 64 KiB window: the many small fields of a graph (nodes, value infos) come from one read,
 * a large one (an initializer's weights) is skipped by moving the window past it.
 */
class WindowedFile {
  private buf = Buffer.alloc(0);
  private start = 0;

  constructor(private readonly fh: FileHandle) {}

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
}

/** Reads the header of the field at `pos` of the file (at most 20 bytes are needed for a tag and a length). */
async function fileField(file: WindowedFile, pos: number, end: number): Promise<Field> {
  const head = await file.bytes(pos, Math.min(20, end - pos));
  const f = fieldAt(head, 0, head.length === 20 ? Number.MAX_SAFE_INTEGER : head.length);
  const field = { ...f, start: f.start + pos, end: f.end + pos };
  if (field.end > end) throw new OnnxFileError('the file is truncated (a field runs past the end)');
  return field;
}

async function readBytes(file: WindowedFile, f: Field): Promise<Buffer> {
  if (f.end - f.start > 64 * 1024 * 1024) throw new OnnxFileError(`field ${f.fn} is implausibly large (${f.end - f.start} bytes)`);
  const b = Buffer.from(await file.bytes(f.start, f.end - f.start));
  if (b.length !== f.end - f.start) throw new OnnxFileError('the file is truncated');
  return b;
}

/** Inspects an ONNX file (see OnnxFileInfo). */
export async function inspectOnnxFile(path: string): Promise<OnnxFileInfo> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size === 0) throw new OnnxFileError('the file is empty');
    const file = new WindowedFile(fh);
    const info: OnnxFileInfo = { irVersion: 0, inputs: [], outputs: [], metadata: {} };
    let graph = false;
    let pos = 0;
    while (pos < size) {
      const f = await fileField(file, pos, size);
      if (f.fn === 1 && f.wt === 0) info.irVersion = f.value;
      else if (f.fn === 14 && f.wt === 2) {
        const entry = await readBytes(file, f);
        let key = '';
        let value = '';
        for (const e of fields(entry)) {
          if (e.fn === 1 && e.wt === 2) key = str(entry, e);
          if (e.fn === 2 && e.wt === 2) value = str(entry, e);
        }
        info.metadata[key] = value;
      } else if (f.fn === 7 && f.wt === 2) {
        graph = true;
        let g = f.start;
        while (g < f.end) {
          const gf = await fileField(file, g, f.end);
          if ((gf.fn === 11 || gf.fn === 12) && gf.wt === 2) {
            (gf.fn === 11 ? info.inputs : info.outputs).push(valueInfo(await readBytes(file, gf)));
          }
          g = gf.end;
        }
      }
      pos = f.end;
    }
    if (!graph || info.irVersion === 0) throw new OnnxFileError('not an ONNX model (no ir_version or no graph)');
    return info;
  } finally {
    await fh.close();
  }
}
