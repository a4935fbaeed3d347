import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { expect } from 'vitest';

export type Server = Parameters<typeof request>[0];

export interface LoggedIn {
  username: string;
  password: string;
  userId: string;
  access: string;
  refresh: string;
  auth: { Authorization: string };
}

export const uniqueName = (prefix = 'user'): string => `${prefix}_${randomBytes(4).toString('hex')}`;

/** Registers a fresh user through the API and logs in. */
export async function registerAndLogin(server: Server, prefix = 'user'): Promise<LoggedIn> {
  const username = uniqueName(prefix);
  const password = `pw-${randomBytes(6).toString('hex')}`;
  const reg = await request(server)
    .post('/api/v1/auth/register')
    .send({ username, email: `${username}@example.com`, password });
  expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  return login(server, username, password);
}

export async function login(server: Server, username: string, password: string): Promise<LoggedIn> {
  const res = await request(server).post('/api/v1/auth/login').send({ username, password });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const me = await request(server).get('/api/v1/auth/me').set('Authorization', `Bearer ${res.body.access_token}`);
  return {
    username,
    password,
    userId: me.body.id,
    access: res.body.access_token,
    refresh: res.body.refresh_token,
    auth: { Authorization: `Bearer ${res.body.access_token}` },
  };
}

/** A supertest parser that keeps the body as one Buffer (use with .buffer(true).parse(binary)). */
export const binary = (res: request.Response, cb: (err: Error | null, body: Buffer) => void): void => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
};

/** Asserts an RFC 9457 problem+json answer. */
export function expectProblem(res: request.Response, status: number, code: string, detail?: string | RegExp): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), instance: expect.any(String) });
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.js:\d+/); // never a stack trace
  if (detail !== undefined) {
    if (typeof detail === 'string') expect(res.body.detail).toBe(detail);
    else expect(res.body.detail).toMatch(detail);
  }
}

/** Polls fn until it returns a truthy value (bounded). */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 30000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`waitFor timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
