import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalDiskStorage } from './local-disk.storage.js';
import { StorageNotFoundError } from './storage.port.js';

describe('LocalDiskStorage', () => {
  const root = mkdtempSync(join(tmpdir(), 'aperture-storage-'));
  const storage = new LocalDiskStorage(root);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('writes streams and buffers, reads them back as streams, deletes by key and prefix', async () => {
    await storage.put('jobs/abc/one', Buffer.from('hello'));
    await storage.put('jobs/abc/two', Readable.from(['wor', 'ld']));
    expect(await text(await storage.read('jobs/abc/one'))).toBe('hello');
    expect(await text(await storage.read('jobs/abc/two'))).toBe('world');
    expect(await storage.size('jobs/abc/two')).toBe(5);
    await storage.delete('jobs/abc/one');
    expect(await storage.exists('jobs/abc/one')).toBe(false);
    await storage.deletePrefix('jobs/abc');
    expect(await storage.exists('jobs/abc/two')).toBe(false);
    await expect(storage.read('jobs/abc/two')).rejects.toBeInstanceOf(StorageNotFoundError);
  });

  it('moves a local file into place: the file is gone from where it was, its bytes are under the key', async () => {
    const src = join(root, 'upload-1');
    writeFileSync(src, 'moved bytes');
    expect(await storage.moveFile('inputs/m1/image', src)).toEqual({ key: 'inputs/m1/image', sizeBytes: 11 });
    expect(existsSync(src)).toBe(false);
    expect(await text(await storage.read('inputs/m1/image'))).toBe('moved bytes');
    writeFileSync(src, 'x');
    await expect(storage.moveFile('../outside', src)).rejects.toThrow(/Invalid storage key/);
    expect(existsSync(src)).toBe(true);
    await expect(storage.moveFile('inputs/m2/image', join(root, 'no-such-file'))).rejects.toThrow(/ENOENT/);
    expect(await storage.exists('inputs/m2/image')).toBe(false);
  });

  it('makes path traversal impossible: only generated-style keys are accepted', async () => {
    for (const bad of ['../etc/passwd', 'jobs/../../x', '/abs', 'Jobs/Upper', 'a//b', 'jobs/.hidden', 'a b', '']) {
      await expect(storage.put(bad, Buffer.from('x'))).rejects.toThrow(/Invalid storage key/);
    }
  });

  it('leaves no temp file behind when a stream fails', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('boom'));
      },
    });
    await expect(storage.put('jobs/fail/x', failing)).rejects.toThrow('boom');
    expect(readdirSync(join(root, 'jobs/fail'))).toEqual([]);
  });
});
