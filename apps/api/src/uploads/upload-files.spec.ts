import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { quotaExceeded, removeStaleUploads, requestTooLarge, STALE_UPLOAD_MS } from './upload-files.js';

describe('upload files', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('sweeps the temporary files a crash left behind, and only those older than an hour', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uploads-'));
    dirs.push(dir);
    const now = Date.now();
    writeFileSync(join(dir, 'old'), 'x');
    const old = (now - STALE_UPLOAD_MS - 60_000) / 1000;
    utimesSync(join(dir, 'old'), old, old);
    writeFileSync(join(dir, 'live'), 'x');
    expect(removeStaleUploads(dir, now)).toBe(1);
    expect(readdirSync(dir)).toEqual(['live']);
  });

  it('words the 413s with the sizes in MB', () => {
    expect(requestTooLarge(256 * 1024 * 1024, 300 * 1024 * 1024).detail).toBe(
      'The request body is 300 MB; one upload request may carry at most 256 MB (UPLOAD_MAX_REQUEST_MB).',
    );
    const q = quotaExceeded(1.5 * 1024 * 1024, 2 * 1024 * 1024, 1024 * 1024);
    expect([q.getStatus(), q.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect(q.detail).toMatch(/^Your account uses 1\.5 MB of its 2\.0 MB quota; this upload \(1\.0 MB so far\) would exceed it/);
  });
});
