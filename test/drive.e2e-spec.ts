import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { FakeDrive, makeServiceAccount } from './support/fake-drive.js';
import { expectProblem, type LoggedIn, login, registerAndLogin, uniqueName } from './support/http.js';

const FOLDER = 'aperture-results-folder';
const ADMIN_PASSWORD = 'admin-password-1';

describe('Google Drive routes against a local fake Drive', () => {
  let t: TestApp;
  let admin: LoggedIn;
  let user: LoggedIn;
  const fake = new FakeDrive();
  const account = makeServiceAccount();
  const adminName = uniqueName('drive_admin');
  beforeAll(async () => {
    await fake.start();
    fake.addServiceAccount(account);
    fake.addFolder(FOLDER);
    fake.addFolder('second-folder');
    t = await createTestApp(
      testEnv('drive', {
        ADMIN_USERNAME: adminName,
        ADMIN_PASSWORD,
        GOOGLE_DRIVE_ENABLED: 'true',
        GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(account.json),
        DRIVE_FOLDER_ID: FOLDER,
        GOOGLE_DRIVE_ROOT_URL: fake.rootUrl,
        GOOGLE_DRIVE_TOKEN_URL: fake.tokenUrl,
        IMAGE_MAX_BYTES: '65536',
      }),
    );
    admin = await login(t.server, adminName, ADMIN_PASSWORD);
    user = await registerAndLogin(t.server, 'drive_user');
  });
  afterAll(async () => {
    await t?.close();
    await fake.stop();
  });

  const upload = (auth: Record<string, string>) => request(t.server).post('/api/v1/storage/drive/upload').set(auth);

  it('GET status: any signed-in user sees that the credentials and the folder work', async () => {
    const res = await request(t.server).get('/api/v1/storage/drive/status').set(user.auth);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({ enabled: true, authenticated: true, folder_access: true });
    expectProblem(await request(t.server).get('/api/v1/storage/drive/status'), 401, 'UNAUTHORIZED');
  });

  it('POST upload: an admin uploads a file into DRIVE_FOLDER_ID, or into folder_id', async () => {
    const bytes = randomBytes(20_000);
    const res = await upload(admin.auth).attach('file', bytes, { filename: 'mask.png', contentType: 'image/png' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toEqual({ file_id: expect.any(String), web_view: expect.stringContaining(res.body.file_id) });
    const stored = fake.files.get(res.body.file_id)!;
    expect(stored).toMatchObject({ name: 'mask.png', mimeType: 'image/png', parents: [FOLDER] });
    expect(stored.content.equals(bytes)).toBe(true);

    const other = await upload(admin.auth)
      .field('folder_id', 'second-folder')
      .attach('file', Buffer.from('{"ok":true}'), { filename: 'result.json', contentType: 'application/json' });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
    expect(fake.files.get(other.body.file_id)).toMatchObject({ name: 'result.json', parents: ['second-folder'] });
  });

  it('POST upload: refused to non-admins, without a file, with a bad folder_id, or past IMAGE_MAX_BYTES', async () => {
    const file = Buffer.from('x');
    expectProblem(await upload(user.auth).attach('file', file, 'x.txt'), 403, 'FORBIDDEN');
    expectProblem(
      await upload(admin.auth).field('folder_id', FOLDER),
      400,
      'VALIDATION_ERROR',
      'Send the file as the multipart field "file".',
    );
    expectProblem(
      await upload(admin.auth).field('folder_id', '../x').attach('file', file, 'x.txt'),
      400,
      'VALIDATION_ERROR',
      'folder_id must be a Drive id (letters, digits, - and _)',
    );
    expectProblem(await upload(admin.auth).attach('file', randomBytes(70_000), 'big.bin'), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('answers 503 DRIVE_ERROR for a folder the account cannot reach, and while Drive fails', async () => {
    const res = await upload(admin.auth).field('folder_id', 'not-shared').attach('file', Buffer.from('x'), 'x.txt');
    expectProblem(
      res,
      503,
      'DRIVE_ERROR',
      new RegExp(`^No write access to Drive folder not-shared: share it with ${account.json.client_email}`),
    );
    fake.failWith = 500;
    try {
      expectProblem(
        await request(t.server).get('/api/v1/storage/drive/status').set(user.auth),
        503,
        'DRIVE_ERROR',
        /^Google Drive is unreachable or failing/,
      );
      expectProblem(
        await upload(admin.auth).attach('file', Buffer.from('x'), 'x.txt'),
        503,
        'DRIVE_ERROR',
        'Google Drive is unreachable or failing (upload: HTTP 500); try again later.',
      );
    } finally {
      fake.failWith = null;
    }
  });
});

describe('Google Drive routes with Drive disabled', () => {
  let t: TestApp;
  let admin: LoggedIn;
  const adminName = uniqueName('nodrive_admin');
  beforeAll(async () => {
    t = await createTestApp(testEnv('nodrive', { ADMIN_USERNAME: adminName, ADMIN_PASSWORD, GOOGLE_DRIVE_ENABLED: 'false' }));
    admin = await login(t.server, adminName, ADMIN_PASSWORD);
  });
  afterAll(() => t?.close());

  it('reports everything false, and refuses uploads with 503 DRIVE_ERROR problem+json', async () => {
    const status = await request(t.server).get('/api/v1/storage/drive/status').set(admin.auth);
    expect(status.status).toBe(200);
    expect(status.body).toEqual({ enabled: false, authenticated: false, folder_access: false });
    const res = await request(t.server).post('/api/v1/storage/drive/upload').set(admin.auth).attach('file', Buffer.from('x'), 'x.txt');
    expectProblem(res, 503, 'DRIVE_ERROR', 'Google Drive is not enabled on this server (GOOGLE_DRIVE_ENABLED is false).');
    expect(res.body.type).toBe('urn:aperture:problem:drive-error');
  });
});
