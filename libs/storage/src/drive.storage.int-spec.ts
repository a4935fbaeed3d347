import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DriveConfig } from '@aperture/config/config.js';
import { FakeDrive, makeServiceAccount, type ServiceAccount } from '@test/support/fake-drive.js';
import { DriveError, DriveStorage } from './drive.storage.js';

const FOLDER = 'folder-results-1';

describe('DriveStorage against a local fake Drive v3', () => {
  const fake = new FakeDrive();
  const account = makeServiceAccount();
  const driveFor = (sa: ServiceAccount, folderId = FOLDER, base = fake): DriveStorage => {
    const config: DriveConfig = {
      enabled: true,
      rootUrl: base.rootUrl,
      tokenUrl: base.tokenUrl,
      folderId,
      serviceAccount: { clientEmail: sa.json.client_email, privateKey: sa.json.private_key, privateKeyId: sa.json.private_key_id },
    };
    return new DriveStorage(config);
  };

  beforeAll(async () => {
    await fake.start();
    fake.addServiceAccount(account);
    fake.addFolder(FOLDER, 'Aperture results');
    fake.addFolder('folder-other');
  });
  afterAll(() => fake.stop());

  it('reports enabled, authenticated and folder access after a real token exchange and folder lookup', async () => {
    expect(await driveFor(account).status()).toEqual({ enabled: true, authenticated: true, folder_access: true });
    expect(fake.requests).toContain('POST /token');
    expect(fake.requests).toContain(`GET /drive/v3/files/${FOLDER}`);
  });

  it('uploads a buffer into the configured folder with its name, type and bytes', async () => {
    const bytes = randomBytes(70_000);
    const up = await driveFor(account).upload('mask 1.png', 'image/png', bytes);
    expect(up.file_id).toMatch(/^[\w-]+$/);
    expect(up.web_view).toBe(`https://drive.google.com/file/d/${up.file_id}/view?usp=drivesdk`);
    const stored = fake.files.get(up.file_id)!;
    expect(stored).toMatchObject({ name: 'mask 1.png', mimeType: 'image/png', parents: [FOLDER], owner: account.json.client_email });
    expect(stored.content.equals(bytes)).toBe(true);
  });

  it('uploads a stream into another folder when asked', async () => {
    const up = await driveFor(account).upload(
      'result.json',
      'application/json',
      Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]),
      'folder-other',
    );
    expect(fake.files.get(up.file_id)).toMatchObject({ name: 'result.json', parents: ['folder-other'] });
    expect(fake.files.get(up.file_id)!.content.toString()).toBe('{"a":1}');
  });

  it('reports authenticated false when the key is not the one Google knows, and refuses uploads with it', async () => {
    const forged = makeServiceAccount(account.json.client_email); // same account, another key
    expect(await driveFor(forged).status()).toEqual({ enabled: true, authenticated: false, folder_access: false });
    const err = await driveFor(forged)
      .upload('x.txt', 'text/plain', Buffer.from('x'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriveError);
    expect(err).toMatchObject({
      reason: 'credentials',
      message: expect.stringMatching(/refused the service-account credentials.*Signature/),
    });
  });

  it('reports folder_access false for an unknown folder, and a clear error when uploading into it', async () => {
    expect(await driveFor(account, 'no-such-folder').status()).toEqual({ enabled: true, authenticated: true, folder_access: false });
    const err = await driveFor(account)
      .upload('x.txt', 'text/plain', Buffer.from('x'), 'no-such-folder')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'DriveError', reason: 'folder' });
    expect((err as Error).message).toMatch(`No write access to Drive folder no-such-folder: share it with ${account.json.client_email}`);
  });

  it('is not a folder: a file id as the folder means no folder access', async () => {
    const up = await driveFor(account).upload('plain.txt', 'text/plain', Buffer.from('hi'));
    expect(await driveFor(account, up.file_id).status()).toMatchObject({ folder_access: false });
  });

  it('turns a failing Drive (5xx) into DriveError unavailable', async () => {
    const drive = driveFor(account);
    await drive.status(); // token cached
    fake.failWith = 503;
    try {
      await expect(drive.status()).rejects.toMatchObject({ name: 'DriveError', reason: 'unavailable' });
      await expect(drive.upload('x.txt', 'text/plain', Buffer.from('x'))).rejects.toMatchObject({
        reason: 'unavailable',
        message: expect.stringMatching(/Google Drive is unreachable or failing \(upload: HTTP 503\)/),
      });
    } finally {
      fake.failWith = null;
    }
  });

  it('turns an unreachable Drive (server down) into DriveError unavailable', async () => {
    const down = new FakeDrive();
    await down.start();
    await down.stop();
    const drive = driveFor(account, FOLDER, down);
    const s = await drive.status().catch((e: unknown) => e);
    expect(s).toBeInstanceOf(DriveError);
    expect(s).toMatchObject({ reason: 'unavailable', message: expect.stringMatching(/unreachable.*token exchange: ECONNREFUSED/) });
    await expect(drive.upload('x.txt', 'text/plain', Buffer.from('x'))).rejects.toMatchObject({ reason: 'unavailable' });
  });

  it('refuses everything with a clear message when disabled', async () => {
    const off = new DriveStorage({ enabled: false, rootUrl: fake.rootUrl, tokenUrl: fake.tokenUrl });
    expect(await off.status()).toEqual({ enabled: false, authenticated: false, folder_access: false });
    await expect(off.upload('x.txt', 'text/plain', Buffer.from('x'))).rejects.toMatchObject({
      reason: 'disabled',
      message: 'Google Drive is not enabled on this server (GOOGLE_DRIVE_ENABLED is false).',
    });
  });
});
