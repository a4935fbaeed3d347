import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';
import request from 'supertest';
import { expect, inject } from 'vitest';
import { fixtures } from './fixtures.js';
import { type Server, waitFor } from './http.js';

export const STATION_PASSWORD = 'booth-station-password-1';

/**
 * A PostgreSQL database of its own for one booth test file, beside the run's: the station principal, the review
 * queue and the carousel are shared by a whole deployment, so test files running at once must not share them.
 */
export async function boothDatabase(name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const run = new URL(inject('databaseUrl'));
  const dbName = `${run.pathname.slice(1)}_${name.replace(/[^a-z0-9]/g, '_')}`.slice(0, 63);
  const admin = new URL(run);
  admin.pathname = '/postgres';
  const sql = async (q: string) => {
    const c = new pg.Client({ connectionString: admin.toString() });
    await c.connect();
    try {
      await c.query(q);
    } finally {
      await c.end();
    }
  };
  await sql(`create database "${dbName}"`);
  const url = new URL(run);
  url.pathname = `/${dbName}`;
  return { url: url.toString(), drop: () => sql(`drop database if exists "${dbName}" with (force)`) };
}

/** Real photos for the booth (PNG fixtures of the SAM set, and the 1920×1080 JPEG of the bench). */
export const photo = (name = 'shapes-00-640x480.png'): Buffer =>
  readFileSync(name.endsWith('.jpg') ? resolve(fixtures, name) : resolve(fixtures, 'sam', name));

export type Auth = Record<string, string>;

/** Signs the station in with its password. */
export async function stationAuth(server: Server): Promise<Auth> {
  const res = await request(server).post('/api/v1/auth/token').type('form').send({ password: STATION_PASSWORD });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { Authorization: `Bearer ${res.body.access_token}` };
}

/** A QR batch of n codes made by the caller, and the codes themselves (read from the database). */
export async function qrCodes(server: Server, auth: Auth, n: number, databaseUrl: string): Promise<string[]> {
  const res = await request(server).post('/api/v1/qr/batches').set(auth).send({ n });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const rows = await db.query('select code from qr_codes where batch_id = $1 order by position', [res.body.id]);
    return rows.rows.map((r: { code: string }) => r.code);
  } finally {
    await db.end();
  }
}

export interface SubmitFields {
  first_name?: string;
  last_name?: string;
  animal_name?: string;
  animal_type?: string;
  broken_bone?: string;
  qr_content?: string;
}

/** POST /booth/submissions with the given fields (defaults for the names) and file. */
export function submit(server: Server, auth: Auth, fields: SubmitFields, file: Buffer | null = photo(), name = 'pet.png'): request.Test {
  const all: SubmitFields = { first_name: 'Alice', last_name: 'Smith', animal_name: 'Buddy', ...fields };
  let req = request(server).post('/api/v1/booth/submissions').set(auth);
  for (const [k, v] of Object.entries(all)) if (v !== undefined) req = req.field(k, v);
  if (file) req = req.attach('file', file, name);
  return req;
}

export type ReviewList = {
  metadata: Record<string, { submission_id: string; first_name: string; last_name: string; animal_name: string; animal_type: string }>;
  results: Record<string, string[]>;
  originals: Record<string, string>;
  results_per_image: number;
  total: number;
};

export async function reviews(server: Server, auth: Auth): Promise<ReviewList> {
  const res = await request(server).get('/api/v1/reviews?page_size=100').set(auth);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as ReviewList;
}

/** Waits until the job is awaiting review, and answers its option URLs. */
export function reviewable(server: Server, auth: Auth, jobId: string, timeoutMs = 60000): Promise<string[]> {
  return waitFor(async () => (await reviews(server, auth)).results[jobId], timeoutMs, 100);
}

/** A binary response body as a Buffer (supertest leaves images and ZIPs unparsed without this). */
export const binary = (res: request.Response): Buffer => res.body as Buffer;
export const asBuffer = (r: request.Test): request.Test =>
  r.buffer(true).parse((res, cb) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => cb(null, Buffer.concat(chunks)));
  });
