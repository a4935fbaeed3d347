/**
 * Hand-written protobuf bytes, so the ONNX readers are also tested on files made without the onnx package: varints,
 * length-delimited fields and ONNX metadata_props entries (field 14 of ModelProto, key 1 and value 2).
 */
export function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** The tag and length of a length-delimited field, without its payload. */
export const lenHeader = (field: number, length: number): number[] => [...varint(field * 8 + 2), ...varint(length)];
export const lenField = (field: number, payload: number[]): number[] => [...lenHeader(field, payload.length), ...payload];
export const str = (s: string): number[] => [...Buffer.from(s, 'utf8')];
/** One metadata_props entry of a ModelProto. */
export const entry = (k: string, v: string): number[] => lenField(14, [...lenField(1, str(k)), ...lenField(2, str(v))]);
