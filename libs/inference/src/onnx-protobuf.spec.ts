import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readOnnxMetadata, readOnnxMetadataFile } from './onnx-metadata.js';
import { fieldAt, fields, OnnxFormatError, WindowedFile } from './onnx-protobuf.js';
import { entry, lenField, lenHeader, str, varint } from '@test/support/protobuf.js';

const tmp = mkdtempSync(join(tmpdir(), 'onnx-protobuf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A deprecated group (field 9) holding a varint and a nested length field. */
const group = [...varint(9 * 8 + 3), ...varint(1 * 8 + 0), 5, ...lenField(2, str('in a group')), ...varint(9 * 8 + 4)];

describe('the ONNX protobuf reader shared by the metadata and graph readers', () => {
  it('skips a deprecated group whole, in memory and in a file', async () => {
    const bytes = Uint8Array.from([...varint(1 * 8 + 0), 8, ...group, ...entry('task', 'detect')]);
    expect([...fields(bytes)].map((f) => [f.fn, f.wt])).toEqual([
      [1, 0],
      [9, 3],
      [14, 2],
    ]);
    expect(readOnnxMetadata(bytes)).toEqual({ task: 'detect' });
    const path = join(tmp, 'group.onnx');
    writeFileSync(path, bytes);
    expect(await readOnnxMetadataFile(path)).toEqual({ task: 'detect' });
    const badEnd = Uint8Array.from([...varint(9 * 8 + 3), ...varint(8 * 8 + 4)]);
    expect(() => fieldAt(badEnd, 0, badEnd.length)).toThrow(/mismatched end-group/);
  });

  it('skips a large field by moving its window: the weights are never read', async () => {
    // A 50 MB length-delimited field (as an initializer) between two metadata entries; the file is sparse.
    const big = 50 * 1024 * 1024;
    const head = [...entry('a', '1'), ...lenHeader(7, big)];
    const path = join(tmp, 'big.onnx');
    const fh = await open(path, 'w+');
    await fh.write(Uint8Array.from(head), 0, head.length, 0);
    await fh.write(Uint8Array.from(entry('b', '2')), 0, entry('b', '2').length, head.length + big);
    await fh.close();
    expect(await readOnnxMetadataFile(path)).toEqual({ a: '1', b: '2' });

    const reads: { pos: number; len: number }[] = [];
    const rh = await open(path, 'r');
    try {
      const counting = {
        read: (b: Buffer, o: number, len: number, pos: number) => {
          reads.push({ pos, len });
          return rh.read(b, o, len, pos);
        },
      } as unknown as FileHandle;
      const file = new WindowedFile(counting, (await rh.stat()).size);
      const seen: number[] = [];
      for (let pos = 0; pos < file.size;) {
        const f = await file.field(pos);
        seen.push(f.fn);
        pos = f.end;
      }
      expect(seen).toEqual([14, 7, 14]);
      expect(reads).toHaveLength(2);
      expect(reads.reduce((a, r) => a + r.len, 0)).toBeLessThanOrEqual(2 * 64 * 1024);
    } finally {
      await rh.close();
    }
  });

  it('refuses a field that runs past the end of the file', async () => {
    const path = join(tmp, 'cut.onnx');
    writeFileSync(path, Uint8Array.from([...entry('a', '1'), ...lenHeader(7, 1000), 1, 2, 3]));
    await expect(readOnnxMetadataFile(path)).rejects.toThrow(OnnxFormatError);
    await expect(readOnnxMetadataFile(path)).rejects.toThrow(/truncated/);
  });
});
