import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assertValidKey, type StoragePort, StorageNotFoundError, type StoredGroup, type StoredObject } from './storage.port.js';

/** Stores objects as files under one root directory. Writes go to a temp file and are renamed into place. */
export class LocalDiskStorage implements StoragePort {
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    const p = resolve(this.root, key);
    if (!p.startsWith(this.root + sep)) throw new Error(`Invalid storage key "${key}"`);
    return p;
  }

  async put(key: string, data: Readable | Buffer): Promise<StoredObject> {
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    const tmp = join(dirname(target), `.tmp-${randomUUID()}`);
    try {
      await pipeline(Buffer.isBuffer(data) ? Readable.from([data]) : data, createWriteStream(tmp, { flags: 'wx' }));
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { key, sizeBytes: (await stat(target)).size };
  }

  async moveFile(key: string, path: string): Promise<StoredObject> {
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    try {
      await rename(path, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      // Another filesystem: copied to a temporary name beside the target, then renamed into place (atomic as put).
      const tmp = join(dirname(target), `.tmp-${randomUUID()}`);
      try {
        await copyFile(path, tmp);
        await rename(tmp, target);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
      await rm(path, { force: true });
    }
    return { key, sizeBytes: (await stat(target)).size };
  }

  async read(key: string): Promise<Readable> {
    const p = this.pathOf(key);
    try {
      await stat(p);
    } catch {
      throw new StorageNotFoundError(key);
    }
    return createReadStream(p);
  }

  async size(key: string): Promise<number> {
    try {
      return (await stat(this.pathOf(key))).size;
    } catch {
      throw new StorageNotFoundError(key);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await stat(this.pathOf(key));
      return true;
    } catch {
      return false;
    }
  }

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  async deletePrefix(prefix: string): Promise<void> {
    await rm(this.pathOf(prefix), { recursive: true, force: true });
  }

  async listGroups(area: string): Promise<StoredGroup[]> {
    const dir = this.pathOf(area);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const groups: StoredGroup[] = [];
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const st = await stat(join(dir, e.name)).catch(() => null);
      if (st) groups.push({ name: e.name, modifiedAt: st.mtime });
    }
    return groups;
  }
}
