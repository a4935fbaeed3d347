import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

/** What a file field accepts: a path on disk, bytes, or a Blob / File. */
export type FileSource = string | Uint8Array | ArrayBuffer | Blob;

/**
 * A File for a multipart field, from a path (read now; the name is the file's), bytes or a Blob. The name is what the
 * server records as the upload's original name.
 */
export async function fileFrom(source: FileSource, name?: string, type?: string): Promise<File> {
  if (typeof source === 'string') {
    const bytes = await readFile(source);
    return new File([bytes], name ?? basename(source), type ? { type } : {});
  }
  if (source instanceof Blob) {
    const fileName = name ?? (source instanceof File ? source.name : 'upload');
    return source instanceof File && !name && !type ? source : new File([source], fileName, { type: type ?? source.type });
  }
  // A copy: the File must own an ArrayBuffer (not a view of a shared or pooled one, as a Node Buffer can be).
  const bytes = source instanceof Uint8Array ? new Uint8Array(source) : new Uint8Array(source.slice(0));
  return new File([bytes], name ?? 'upload', type ? { type } : {});
}

type FieldValue = string | number | boolean | Blob | null | undefined | object;

/**
 * The multipart body serializer for openapi-fetch (`bodySerializer: multipart`): Blobs and Files as file parts, arrays as
 * one part per item (as `images` on an upload), numbers and booleans as text, other objects as JSON text (as `points`
 * and `box` on segmentation), undefined and null left out.
 */
export function multipart(body: unknown): FormData {
  const form = new FormData();
  if (!body || typeof body !== 'object') return form;
  const add = (key: string, value: FieldValue): void => {
    if (value === undefined || value === null) return;
    if (value instanceof Blob) form.append(key, value, value instanceof File ? value.name : 'upload');
    else if (typeof value === 'object') form.append(key, JSON.stringify(value));
    else form.append(key, String(value));
  };
  for (const [key, value] of Object.entries(body as Record<string, FieldValue>)) {
    if (Array.isArray(value) && value.some((v) => v instanceof Blob)) for (const v of value) add(key, v as FieldValue);
    else add(key, value);
  }
  return form;
}
