import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { NextFunction, Request, Response } from 'express';
import { ProblemException } from '@aperture/common/problem.js';
import { ProblemDetailsFilter } from '@aperture/common/problem.filter.js';
import type { StoragePort, StoredObject } from '@aperture/storage/storage.port.js';

/** One multipart file as the routes get it: streamed to a temporary file, removed when the request ends. */
export interface UploadedFile {
  fieldname: string;
  originalname: string;
  mimetype: string;
  /** The temporary file holding the bytes. */
  path: string;
  size: number;
}

/**
 * The file's bytes as a stream (for `StoragePort.put`, Drive): never the whole file in memory. The file is opened on
 * the first read, so a stream a consumer never reads (a call refused before it stores) holds no descriptor.
 */
export function uploadContent(f: Pick<UploadedFile, 'path'>): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    for await (const chunk of createReadStream(f.path)) yield chunk as Buffer;
  }
  const stream = Readable.from(chunks(), { objectMode: false });
  // A consumer that stopped listening (a client gave up, a retry after the request ended) must not turn a late read
  // of a removed temporary file into an uncaught exception; consumers that listen still get the error.
  stream.on('error', () => undefined);
  return stream;
}

/**
 * Stores an upload's temporary file under key: moved into place where the storage can (no copy on the same
 * filesystem; the request's clean-up then finds nothing to remove), else streamed through `put`.
 */
export function storeUpload(storage: StoragePort, key: string, f: Pick<UploadedFile, 'path'>): Promise<StoredObject> {
  return storage.moveFile ? storage.moveFile(key, f.path) : storage.put(key, uploadContent(f));
}

/** The 413s every upload route shares besides IMAGE_MAX_BYTES, for its documentation. */
export const REQUEST_CAP_413 = 'the request is larger than UPLOAD_MAX_REQUEST_MB';
export const UPLOAD_413 = `${REQUEST_CAP_413}, or the upload would take the account past its storage quota (USER_QUOTA_MB)`;

const MB = 1024 * 1024;
const mb = (n: number): string => (n / MB).toFixed(n < 10 * MB ? 1 : 0);

/** The 413 of a request body over UPLOAD_MAX_REQUEST_MB. */
export function requestTooLarge(maxBytes: number, got?: number): ProblemException {
  const size = got === undefined ? 'more than that' : `${mb(got)} MB`;
  return new ProblemException(
    413,
    'PAYLOAD_TOO_LARGE',
    `The request body is ${size}; one upload request may carry at most ${mb(maxBytes)} MB (UPLOAD_MAX_REQUEST_MB).`,
    { max_bytes: maxBytes },
  );
}

/** The 413 of an upload that would take its user past USER_QUOTA_MB. */
export function quotaExceeded(usedBytes: number, quotaBytes: number, incomingBytes: number): ProblemException {
  return new ProblemException(
    413,
    'PAYLOAD_TOO_LARGE',
    `Your account uses ${mb(usedBytes)} MB of its ${mb(quotaBytes)} MB quota; this upload (${mb(incomingBytes)} MB so far) ` +
      'would exceed it. Delete images or jobs to make room.',
    { used_bytes: usedBytes, quota_bytes: quotaBytes },
  );
}

const problems = new ProblemDetailsFilter();

/**
 * Answers a refused upload at once and closes the connection, so that the rest of the body is never read. Nest's
 * multer runner then destroys the request; multer and `TempFileStorage` remove what was already written.
 */
function refuseNow(req: Request, res: Response, e: ProblemException): void {
  if (res.headersSent) return;
  res.setHeader('Connection', 'close');
  problems.write(e, req, res);
}

const isMultipart = (req: Request): boolean => /^multipart\//i.test(String(req.headers['content-type'] ?? ''));

/** Express middleware: a multipart request whose Content-Length is over the cap is refused before anything is read. */
export function requestCapByLength(maxBytes: number) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const length = Number(req.headers['content-length']);
    if (isMultipart(req) && Number.isFinite(length) && length > maxBytes) return refuseNow(req, res, requestTooLarge(maxBytes, length));
    next();
  };
}

/** multer's `streamHandler`: feeds busboy, counting the bytes; past the cap (a body sent without Content-Length) the request is refused. */
export function cappedStream(maxBytes: number) {
  return (req: Request, busboy: NodeJS.WritableStream): void => {
    let seen = 0;
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen <= maxBytes) return;
      req.off('data', onData);
      req.unpipe(busboy);
      const res = req.res;
      if (res) refuseNow(req, res, requestTooLarge(maxBytes));
      else req.destroy();
    };
    req.on('data', onData);
    req.pipe(busboy);
  };
}

/** How many more bytes one request's files may take: null = unlimited; a function of the request (its principal). */
export type RoomFor = (req: Request) => Promise<{ room: number; used: number; quota: number } | null>;

interface RequestUploads {
  paths: Set<string>;
  ended: boolean;
  bytes: number;
  room: ReturnType<RoomFor> | null;
}

const UPLOADS = Symbol('aperture.uploads');
type WithUploads = Request & { [UPLOADS]?: RequestUploads };

/** The request's temporary files, removed (all of them, whatever happened) once its response closes. */
function uploadsOf(req: WithUploads): RequestUploads {
  let u = req[UPLOADS];
  if (u) return u;
  const state: RequestUploads = { paths: new Set(), ended: false, bytes: 0, room: null };
  req[UPLOADS] = state;
  const end = (): void => {
    state.ended = true;
    for (const p of state.paths) rmSync(p, { force: true });
    state.paths.clear();
  };
  const res = req.res;
  if (!res || res.closed) state.ended = true;
  else res.once('close', end);
  u = state;
  return u;
}

/** What multer calls a storage engine (its `StorageEngine`, which multer does not type). */
interface IncomingFile {
  fieldname: string;
  originalname: string;
  mimetype: string;
  stream: Readable;
  path?: string;
}

/** A temporary file older than this belongs to no running request (a crash left it): it goes when an API starts. */
export const STALE_UPLOAD_MS = 60 * 60 * 1000;

/** Removes what a crashed process left in the upload folder; younger files may be another process's live uploads. */
export function removeStaleUploads(dir: string, now = Date.now()): number {
  let removed = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      if (now - statSync(path).mtimeMs > STALE_UPLOAD_MS) {
        rmSync(path, { force: true, recursive: true });
        removed++;
      }
    } catch {
      // Gone already (another process swept it, or its request ended).
    }
  }
  return removed;
}

/**
 * A multer storage engine that streams each file to its own temporary file under `dir` (a random name, never the
 * client's), counting the request's file bytes against the user's quota while they arrive. Every file it creates is
 * removed when the request's response closes: answered, refused or disconnected.
 */
export class TempFileStorage {
  constructor(
    private readonly dir: string,
    private readonly roomFor: RoomFor,
  ) {
    mkdirSync(dir, { recursive: true });
    removeStaleUploads(dir);
  }

  _handleFile(req: Request, file: IncomingFile, cb: (err?: unknown, info?: Partial<UploadedFile>) => void): void {
    void this.write(req as WithUploads, file).then(
      (info) => cb(null, info),
      (e: unknown) => cb(e),
    );
  }

  _removeFile(_req: Request, file: { path?: string }, cb: (err: unknown) => void): void {
    if (file.path) rmSync(file.path, { force: true });
    cb(null);
  }

  private async write(req: WithUploads, file: IncomingFile): Promise<Partial<UploadedFile>> {
    const u = uploadsOf(req);
    if (u.ended) throw new Error('The request ended during the upload.');
    const path = join(this.dir, randomUUID());
    u.paths.add(path);
    try {
      u.room ??= this.roomFor(req);
      const room = await u.room;
      if (u.ended) throw new Error('The request ended during the upload.');
      let size = 0;
      const count = new Transform({
        transform(chunk: Buffer, _enc, done): void {
          size += chunk.length;
          u.bytes += chunk.length;
          if (room && u.bytes > room.room) return done(quotaExceeded(room.used, room.quota, u.bytes));
          done(null, chunk);
        },
      });
      await pipeline(file.stream, count, createWriteStream(path, { flags: 'wx' }));
      if (u.ended) throw new Error('The request ended during the upload.');
      return { path, size };
    } catch (e) {
      file.stream.resume();
      rmSync(path, { force: true });
      u.paths.delete(path);
      throw e;
    }
  }
}
