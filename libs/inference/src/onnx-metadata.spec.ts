import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PythonLiteralError, parseImgsz, parseNames, readOnnxMetadata, readOnnxMetadataFile } from './onnx-metadata.js';
import { OnnxFormatError } from './onnx-protobuf.js';
import { entry, lenField, str, varint } from '@test/support/protobuf.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../test-fixtures/${name}`, import.meta.url));

describe('readOnnxMetadata (mistake 4: metadata read from field 14, not guessed)', () => {
  const expectedNames = ["kid's toy", 'a', 'say "hi"', 'both \' and "', 'ünïcode ✓', 'x, y: {z}'];

  it('reads an exported model: the graph (field 7, with an initializer) is skipped by length', async () => {
    const raw = readOnnxMetadata(await readFile(fixture('yolo-meta.onnx')));
    expect(raw.task).toBe('obb');
    expect(raw.imgsz).toBe('[640, 640]');
    expect(raw.names).toContain(`"kid's toy"`);
    expect(parseNames(raw.names!)).toEqual(expectedNames);
    expect(parseImgsz(raw.imgsz!)).toEqual([640, 640]);
    expect(raw.stride).toBe('32');
  });

  it('reads the same from the file without loading it whole', async () => {
    const a = await readOnnxMetadataFile(fixture('yolo-meta.onnx'));
    const b = readOnnxMetadata(await readFile(fixture('yolo-meta.onnx')));
    expect(a).toEqual(b);
    expect(Object.keys(a)).toEqual(['description', 'author', 'stride', 'task', 'batch', 'imgsz', 'names', 'args']);
  });

  it('skips varint, fixed32/64 and nested length fields around hand-made entries', () => {
    const bytes = [
      ...varint(1 * 8 + 0),
      ...varint(8), // ir_version = 8
      ...varint(9 * 8 + 1),
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // a fixed64
      ...lenField(7, [...lenField(1, [...lenField(14, str('decoy'))]), ...varint(5 * 8 + 5), 0, 0, 0, 0]), // graph with a nested "14"
      ...entry('names', `{0: "kid's toy", 1: 'a'}`),
      ...varint(3 * 8 + 5),
      9,
      9,
      9,
      9, // a fixed32
      ...entry('stride', '32'),
    ];
    const raw = readOnnxMetadata(Uint8Array.from(bytes));
    expect(raw).toEqual({ names: `{0: "kid's toy", 1: 'a'}`, stride: '32' });
    expect(parseNames(raw.names!)).toEqual(["kid's toy", 'a']);
  });

  it('rejects truncated input', () => {
    const bytes = entry('k', 'value');
    expect(() => readOnnxMetadata(Uint8Array.from(bytes.slice(0, -2)))).toThrow(OnnxFormatError);
  });
});

describe('Python literals in metadata (names, imgsz)', () => {
  it('reads repr() output, not JSON: escapes, tuples, trailing commas; refuses anything else', () => {
    expect(parseNames(`{0: 'a\\'b\\\\c', 1: 'd\\n\\x41\\u00e9', 2: "e\\"f",}`)).toEqual(["a'b\\c", 'd\nAé', 'e"f']);
    expect(parseImgsz('(480, 640)')).toEqual([480, 640]);
    expect(() => parseNames(`{0: 'a'} extra`)).toThrow(PythonLiteralError);
    expect(() => parseNames('__import__("os")')).toThrow(PythonLiteralError);
    expect(() => parseNames(`{0: 'a`)).toThrow(/Unterminated string/);
    expect(() => parseNames(`{0 'a'}`)).toThrow(/Expected :/);
  });

  it('names: quotes and apostrophes, gaps rejected, list form accepted', () => {
    expect(parseNames(`{0: 'person', 1: "kid's toy"}`)).toEqual(['person', "kid's toy"]);
    expect(parseNames(`{1: 'b', 0: 'a'}`)).toEqual(['a', 'b']);
    expect(parseNames(`['a', "b'c"]`)).toEqual(['a', "b'c"]);
    expect(() => parseNames(`{0: 'a', 2: 'c'}`)).toThrow(/no class 1/);
    expect(() => JSON.parse(`{0: 'person'}`)).toThrow(); // why JSON is not an option
  });

  it('imgsz → [h, w]', () => {
    expect(parseImgsz('[480, 640]')).toEqual([480, 640]);
    expect(parseImgsz('320')).toEqual([320, 320]);
    expect(() => parseImgsz('[1, 2, 3]')).toThrow();
    expect(() => parseImgsz('[640.5, 640]')).toThrow();
  });
});
