import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFrom, multipart } from '../../packages/sdk/src/multipart.js';

/** The SDK's multipart helpers: what a typed body becomes on the wire. */
describe('sdk multipart helpers', () => {
  it('fileFrom: a path (named after the file), bytes, an ArrayBuffer, a Blob', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdk-'));
    writeFileSync(join(dir, 'site-3.jpg'), Buffer.from([1, 2, 3]));
    const fromPath = await fileFrom(join(dir, 'site-3.jpg'));
    expect(fromPath.name).toBe('site-3.jpg');
    expect(new Uint8Array(await fromPath.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));

    const pooled = Buffer.from('abcdef').subarray(2, 4);
    const fromBytes = await fileFrom(pooled, 'x.png', 'image/png');
    expect([fromBytes.name, fromBytes.type, await fromBytes.text()]).toEqual(['x.png', 'image/png', 'cd']);
    expect(await (await fileFrom(new Uint8Array([104, 105]).buffer)).text()).toBe('hi');
    const blob = await fileFrom(new Blob(['hey'], { type: 'text/plain' }), 'b.txt');
    expect([blob.name, blob.type, await blob.text()]).toEqual(['b.txt', 'text/plain', 'hey']);
  });

  it('multipart: files as parts, arrays of files as one part each, scalars as text, objects as JSON, nulls left out', async () => {
    const a = new File(['a'], 'a.jpg');
    const b = new File(['b'], 'b.jpg');
    const form = multipart({
      images: [a, b],
      real_radius: 20,
      multimask_output: false,
      unit: 'mm',
      points: [{ x: 1, y: 2 }],
      box: { x1: 0, y1: 0, x2: 5, y2: 5 },
      image_id: undefined,
      drive_folder_id: null,
    });
    expect([...form.keys()]).toEqual(['images', 'images', 'real_radius', 'multimask_output', 'unit', 'points', 'box']);
    expect(form.getAll('images').map((f) => (f as File).name)).toEqual(['a.jpg', 'b.jpg']);
    expect(form.get('real_radius')).toBe('20');
    expect(form.get('multimask_output')).toBe('false');
    expect(JSON.parse(form.get('points') as string)).toEqual([{ x: 1, y: 2 }]);
    expect(JSON.parse(form.get('box') as string)).toEqual({ x1: 0, y1: 0, x2: 5, y2: 5 });
    expect([...multipart(undefined).keys()]).toEqual([]);
  });
});
