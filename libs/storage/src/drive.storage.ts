import { Readable } from 'node:stream';
import { drive, type drive_v3 } from '@googleapis/drive';
import { JWT } from 'google-auth-library';
import type { DriveConfig } from '@aperture/config/config.js';

/** google-auth-library signs its JWT for, and posts it to, this endpoint; GOOGLE_DRIVE_TOKEN_URL replaces where it is posted. */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
/** Full Drive access: a folder shared with the service account is not one the app created (drive.file would not see it). */
export const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
export const FOLDER_MIME = 'application/vnd.google-apps.folder';

export interface DriveStatus {
  /** GOOGLE_DRIVE_ENABLED. */
  enabled: boolean;
  /** Google accepted the service account's signed token request. */
  authenticated: boolean;
  /** The configured folder exists, is a folder and the service account can see it. */
  folder_access: boolean;
}

export interface DriveUpload {
  file_id: string;
  web_view: string;
}

/** Why a Drive call failed: the API answers each with 503 DRIVE_ERROR and the message as detail. */
export type DriveErrorReason = 'disabled' | 'credentials' | 'folder' | 'unavailable' | 'rejected';

export class DriveError extends Error {
  constructor(
    readonly reason: DriveErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DriveError';
  }
}

/** What a gaxios error (token exchange or Drive API) tells about the failure, read without trusting its shape. */
function failureOf(e: unknown): { status: number | undefined; code: string | undefined; message: string } {
  const err = (typeof e === 'object' && e !== null ? e : {}) as { status?: unknown; code?: unknown; response?: { status?: unknown } };
  const status = typeof err.status === 'number' ? err.status : typeof err.response?.status === 'number' ? err.response.status : undefined;
  const code = typeof err.code === 'string' ? err.code : undefined;
  const message = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
  return { status, code, message };
}

const unreachable = (what: string, e: unknown): DriveError => {
  const f = failureOf(e);
  const why = f.status !== undefined ? `HTTP ${f.status}` : (f.code ?? 'no response');
  return new DriveError('unavailable', `Google Drive is unreachable or failing (${what}: ${why}); try again later.`, { cause: e });
};

/**
 * Google Drive (v3) as a place to put files: a service account (JWT bearer grant) uploads into one folder.
 * The folder must be shared with the account's client_email. Every failure is a DriveError with a clear message.
 */
export class DriveStorage {
  private readonly auth: JWT | null = null;
  private readonly client: drive_v3.Drive | null = null;

  constructor(private readonly config: DriveConfig) {
    if (!config.enabled) return;
    const sa = config.serviceAccount;
    this.auth = new JWT({ email: sa.clientEmail, key: sa.privateKey, keyId: sa.privateKeyId ?? undefined, scopes: [DRIVE_SCOPE] });
    // The library posts to Google's token URL; send that one request to the configured endpoint instead.
    const tokenUrl = config.tokenUrl;
    if (tokenUrl !== GOOGLE_TOKEN_URL) {
      this.auth.transporter.interceptors.request.add({
        resolved: async (opts) => {
          if (opts.url.href === GOOGLE_TOKEN_URL) opts.url = new URL(tokenUrl);
          return opts;
        },
      });
    }
    this.client = drive({ version: 'v3', auth: this.auth, rootUrl: config.rootUrl });
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  /** Whether the credentials work (a fresh token exchange) and the folder is reachable; throws DriveError only when Drive is down. */
  async status(): Promise<DriveStatus> {
    if (!this.config.enabled || !this.auth || !this.client) return { enabled: false, authenticated: false, folder_access: false };
    try {
      await this.auth.authorize();
    } catch (e) {
      const f = failureOf(e);
      if (f.status !== undefined && f.status >= 400 && f.status < 500) return { enabled: true, authenticated: false, folder_access: false };
      throw unreachable('token exchange', e);
    }
    try {
      const res = await this.client.files.get(
        { fileId: this.config.folderId, fields: 'id,mimeType,trashed', supportsAllDrives: true },
        { rootUrl: this.config.rootUrl, timeout: 15_000 },
      );
      return { enabled: true, authenticated: true, folder_access: res.data.mimeType === FOLDER_MIME && res.data.trashed !== true };
    } catch (e) {
      const f = failureOf(e);
      if (f.status === 401) return { enabled: true, authenticated: false, folder_access: false };
      if (f.status !== undefined && f.status >= 400 && f.status < 500) return { enabled: true, authenticated: true, folder_access: false };
      throw unreachable('folder lookup', e);
    }
  }

  /** Uploads one file (multipart: metadata + content) into folderId, by default DRIVE_FOLDER_ID. */
  async upload(name: string, contentType: string, data: Buffer | Readable, folderId?: string): Promise<DriveUpload> {
    if (!this.config.enabled || !this.auth || !this.client) {
      throw new DriveError('disabled', 'Google Drive is not enabled on this server (GOOGLE_DRIVE_ENABLED is false).');
    }
    const folder = folderId ?? this.config.folderId;
    const account = this.config.serviceAccount.clientEmail;
    await this.token(this.auth);
    let res: { data: drive_v3.Schema$File };
    try {
      res = await this.client.files.create(
        {
          requestBody: { name, parents: [folder] },
          media: { mimeType: contentType, body: Buffer.isBuffer(data) ? Readable.from([data]) : data },
          fields: 'id,webViewLink',
          supportsAllDrives: true,
        },
        // A stream cannot be sent twice: no automatic retries of the upload itself.
        { rootUrl: this.config.rootUrl, retry: false },
      );
    } catch (e) {
      const f = failureOf(e);
      if (f.status === 401)
        throw new DriveError('credentials', `Google Drive refused the service account's token (${f.message}).`, { cause: e });
      if (f.status === 403 || f.status === 404) {
        throw new DriveError('folder', `No write access to Drive folder ${folder}: share it with ${account} as an editor (${f.message}).`, {
          cause: e,
        });
      }
      if (f.status !== undefined && f.status >= 400 && f.status < 500) {
        throw new DriveError('rejected', `Google Drive refused the upload (HTTP ${f.status}: ${f.message}).`, { cause: e });
      }
      throw unreachable('upload', e);
    }
    const id = res.data.id;
    if (!id) throw new DriveError('unavailable', 'Google Drive answered the upload without a file id.');
    return { file_id: id, web_view: res.data.webViewLink ?? `https://drive.google.com/file/d/${id}/view` };
  }

  /** A (cached) access token; refused credentials and an unreachable token endpoint become DriveErrors. */
  private async token(auth: JWT): Promise<void> {
    try {
      await auth.getAccessToken();
    } catch (e) {
      const f = failureOf(e);
      if (f.status !== undefined && f.status >= 400 && f.status < 500) {
        throw new DriveError('credentials', `Google refused the service-account credentials (${f.message}).`, { cause: e });
      }
      throw unreachable('token exchange', e);
    }
  }
}
