import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UploadedFile } from '@apps/api/uploads/upload-files.js';

/** An upload as multer hands it to a route: the bytes in a temporary file (for service tests without HTTP). */
export function tempUpload(bytes: Buffer, originalname = 'upload.bin', fieldname = 'image'): UploadedFile {
  const dir = join(tmpdir(), 'aperture-test-uploads');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, randomUUID());
  writeFileSync(path, bytes);
  return { fieldname, originalname, mimetype: 'application/octet-stream', path, size: bytes.length };
}
