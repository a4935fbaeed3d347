import { open } from 'node:fs/promises';
import {
  fields,
  fieldString as str,
  MODEL_PROTO,
  OnnxFormatError,
  readStringEntry,
  WindowedFile,
  WIRE_LEN,
  WIRE_VARINT,
} from '@aperture/inference/onnx-protobuf.js';
import type { ValueMetadata } from '@aperture/inference/session-types.js';

/**
 * What an ONNX file declares without loading it: the graph's inputs and outputs (names, element types, shapes) and
 * metadata_props. Read with positional reads of the protobuf wire format (onnx-protobuf.ts, shared with the metadata
 * reader): ModelProto.graph (7) → GraphProto.input (11) / output (12) ValueInfoProto; ModelProto.metadata_props (14).
 * Nodes and initializers (the weights) are skipped by their lengths, never read, so a 200 MB file costs a few small
 * reads. A file cut short, or one that is not a serialized ModelProto, is an OnnxFormatError. No ONNX Runtime here:
 * the API uses it to check an upload.
 */
export interface OnnxFileInfo {
  irVersion: number;
  inputs: ValueMetadata[];
  outputs: ValueMetadata[];
  metadata: Record<string, string>;
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

/** Inspects an ONNX file (see OnnxFileInfo); OnnxFormatError when it is cut short or no ONNX model. */
export async function inspectOnnxFile(path: string): Promise<OnnxFileInfo> {
  const fh = await open(path, 'r');
  try {
    const file = new WindowedFile(fh, (await fh.stat()).size);
    if (file.size === 0) throw new OnnxFormatError('the file is empty');
    const info: OnnxFileInfo = { irVersion: 0, inputs: [], outputs: [], metadata: {} };
    let graph = false;
    for (let pos = 0; pos < file.size;) {
      const f = await file.field(pos);
      if (f.fn === MODEL_PROTO.irVersion && f.wt === WIRE_VARINT) info.irVersion = f.value;
      else if (f.fn === MODEL_PROTO.metadataProps && f.wt === WIRE_LEN) {
        const [key, value] = readStringEntry(await file.payload(f));
        info.metadata[key] = value;
      } else if (f.fn === MODEL_PROTO.graph && f.wt === WIRE_LEN) {
        graph = true;
        for (let g = f.start; g < f.end;) {
          const gf = await file.field(g, f.end);
          if ((gf.fn === 11 || gf.fn === 12) && gf.wt === WIRE_LEN) {
            (gf.fn === 11 ? info.inputs : info.outputs).push(valueInfo(await file.payload(gf)));
          }
          g = gf.end;
        }
      }
      pos = f.end;
    }
    if (!graph || info.irVersion === 0) throw new OnnxFormatError('not an ONNX model (no ir_version or no graph)');
    return info;
  } finally {
    await fh.close();
  }
}
