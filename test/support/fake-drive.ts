import { generateKeyPairSync, type KeyObject, randomBytes, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';

/** What Google's token endpoint is (the `aud` of every service-account assertion, whatever URL it is posted to). */
const GOOGLE_TOKEN_AUD = 'https://oauth2.googleapis.com/token';
const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
const FOLDER_MIME = 'application/vnd.google-apps.folder';

export interface FakeDriveFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  trashed: boolean;
  content: Buffer;
  /** The service account that created it. */
  owner: string;
}

/** A service-account key as Google's console downloads it, made from a throwaway RSA key pair. */
export interface ServiceAccount {
  json: {
    type: 'service_account';
    project_id: string;
    private_key_id: string;
    private_key: string;
    client_email: string;
    client_id: string;
    token_uri: string;
  };
  publicKey: KeyObject;
}

export function makeServiceAccount(
  email = `uploader-${randomBytes(3).toString('hex')}@aperture-test.iam.gserviceaccount.com`,
): ServiceAccount {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    json: {
      type: 'service_account',
      project_id: 'aperture-test',
      private_key_id: randomBytes(20).toString('hex'),
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: email,
      client_id: String(100000000000 + Math.floor(Math.random() * 1e9)),
      token_uri: GOOGLE_TOKEN_AUD,
    },
    publicKey,
  };
}

type Reply = { status: number; headers: Record<string, string>; body: string };

/**
 * A local stand-in for Google Drive v3 and the OAuth2 token endpoint that speaks the protocol @googleapis/drive uses:
 * POST /token takes the JWT-bearer grant and verifies the assertion's RS256 signature against the registered service
 * account's public key (and its iss, aud, scope and lifetime); GET /drive/v3/files/{id} answers file metadata (404 for
 * unknown ids); POST /upload/drive/v3/files?uploadType=multipart parses the multipart/related body (metadata JSON, then
 * content) and stores the file. Drive routes answer 401 without a valid bearer token, with Google's error bodies.
 */
export class FakeDrive {
  private server!: Server;
  private readonly accounts = new Map<string, KeyObject>();
  private readonly tokens = new Map<string, { email: string; expiresAt: number }>();
  readonly files = new Map<string, FakeDriveFile>();
  readonly requests: string[] = [];
  /** Set to make every Drive and token request answer this status (e.g. 503) until cleared. */
  failWith: number | null = null;
  base = '';

  async start(): Promise<void> {
    this.server = createServer(
      (req, res) =>
        void this.handle(req)
          .catch((e: unknown): Reply => ({ status: 500, headers: { 'content-type': 'text/plain' }, body: String(e) }))
          .then(({ status, headers, body }) => res.writeHead(status, headers).end(body)),
    );
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    const addr = this.server.address();
    this.base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  get rootUrl(): string {
    return `${this.base}/`;
  }

  get tokenUrl(): string {
    return `${this.base}/token`;
  }

  /** Lets this service account sign in (Google knows the public half of every key it issued). */
  addServiceAccount(sa: ServiceAccount): void {
    this.accounts.set(sa.json.client_email, sa.publicKey);
  }

  addFolder(id: string, name = id): void {
    this.files.set(id, { id, name, mimeType: FOLDER_MIME, parents: [], trashed: false, content: Buffer.alloc(0), owner: 'someone' });
  }

  private async handle(req: IncomingMessage): Promise<Reply> {
    const url = new URL(req.url ?? '/', this.base);
    this.requests.push(`${req.method} ${url.pathname}`);
    const json = (status: number, obj: unknown): Reply => ({
      status,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(obj),
    });
    if (this.failWith !== null) return json(this.failWith, apiError(this.failWith, 'backendError', 'Backend Error'));
    const body = await readBody(req);

    if (req.method === 'POST' && url.pathname === '/token') {
      const f = new URLSearchParams(body.toString('utf8'));
      if (f.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
        return json(400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: ' + f.get('grant_type') });
      const verdict = this.verifyAssertion(f.get('assertion') ?? '');
      if ('error' in verdict) return json(400, { error: 'invalid_grant', error_description: verdict.error });
      const accessToken = `ya29.fake-${randomBytes(16).toString('hex')}`;
      this.tokens.set(accessToken, { email: verdict.email, expiresAt: Date.now() + 3599_000 });
      return json(200, { access_token: accessToken, expires_in: 3599, token_type: 'Bearer' });
    }

    const caller = this.bearer(req);
    const files = /^\/drive\/v3\/files\/([^/]+)$/.exec(url.pathname);
    if ((req.method === 'GET' && files) || url.pathname === '/upload/drive/v3/files') {
      if (caller === null) {
        return json(
          401,
          apiError(401, 'authError', 'Request had invalid authentication credentials. Expected OAuth 2 access token.', 'UNAUTHENTICATED'),
        );
      }
    }
    if (req.method === 'GET' && files) {
      const file = this.files.get(decodeURIComponent(files[1]!));
      if (!file) return json(404, apiError(404, 'notFound', `File not found: ${decodeURIComponent(files[1]!)}.`));
      return json(200, pick(file, url.searchParams.get('fields')));
    }
    if (req.method === 'POST' && url.pathname === '/upload/drive/v3/files') {
      if (url.searchParams.get('uploadType') !== 'multipart')
        return json(400, apiError(400, 'badRequest', 'Expected uploadType=multipart.'));
      const boundary = /^multipart\/related;\s*boundary="?([^";]+)"?/i.exec(req.headers['content-type'] ?? '')?.[1];
      if (!boundary) return json(400, apiError(400, 'badContent', 'Expected a multipart/related body.'));
      const parts = parseMultipart(body, boundary);
      if (parts.length !== 2 || !/^application\/json/i.test(parts[0]!.contentType))
        return json(400, apiError(400, 'badContent', 'Expected two parts: the metadata JSON, then the content.'));
      const meta = JSON.parse(parts[0]!.body.toString('utf8')) as { name?: string; parents?: string[]; mimeType?: string };
      const parents = meta.parents ?? [];
      for (const p of parents) {
        const parent = this.files.get(p);
        if (!parent || parent.mimeType !== FOLDER_MIME) return json(404, apiError(404, 'notFound', `File not found: ${p}.`));
      }
      const id = randomBytes(16).toString('base64url');
      const file: FakeDriveFile = {
        id,
        name: meta.name ?? 'Untitled',
        mimeType: meta.mimeType ?? parts[1]!.contentType,
        parents,
        trashed: false,
        content: parts[1]!.body,
        owner: caller!,
      };
      this.files.set(id, file);
      return json(200, pick(file, url.searchParams.get('fields')));
    }
    return json(404, apiError(404, 'notFound', `No route ${req.method} ${url.pathname}`));
  }

  /** The service account's email when the bearer token is one we issued and still valid. */
  private bearer(req: IncomingMessage): string | null {
    const t = this.tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
    return t && t.expiresAt > Date.now() ? t.email : null;
  }

  private verifyAssertion(assertion: string): { email: string } | { error: string } {
    const [h, p, s] = assertion.split('.');
    if (!h || !p || !s) return { error: 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe' };
    let header: { alg?: string };
    let claims: { iss?: string; aud?: string; scope?: string; iat?: number; exp?: number };
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as typeof header;
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return { error: 'Invalid JWT: not a JWT' };
    }
    if (header.alg !== 'RS256') return { error: 'Invalid JWT: alg must be RS256' };
    const key = this.accounts.get(claims.iss ?? '');
    if (!key) return { error: 'Invalid grant: account not found' };
    if (!verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) return { error: 'Invalid JWT Signature.' };
    if (claims.aud !== GOOGLE_TOKEN_AUD) return { error: `Invalid JWT: audience must be ${GOOGLE_TOKEN_AUD}` };
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || claims.exp <= now || claims.exp - claims.iat > 3600)
      return { error: 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.' };
    if (!(claims.scope ?? '').split(' ').includes(DRIVE_SCOPE)) return { error: 'Invalid OAuth scope or ID token audience provided.' };
    return { email: claims.iss! };
  }
}

/** Google's JSON error body. */
function apiError(code: number, reason: string, message: string, status?: string): unknown {
  return { error: { code, message, errors: [{ message, domain: 'global', reason }], ...(status ? { status } : {}) } };
}

/** The fields a request asked for (`fields=id,webViewLink`), as Drive answers only those. */
function pick(file: FakeDriveFile, fields: string | null): Record<string, unknown> {
  const all: Record<string, unknown> = {
    kind: 'drive#file',
    id: file.id,
    name: file.name,
    mimeType: file.mimeType,
    parents: file.parents,
    trashed: file.trashed,
    size: String(file.content.length),
    webViewLink:
      file.mimeType === FOLDER_MIME
        ? `https://drive.google.com/drive/folders/${file.id}`
        : `https://drive.google.com/file/d/${file.id}/view?usp=drivesdk`,
  };
  if (!fields) return { kind: all['kind'], id: file.id, name: file.name, mimeType: file.mimeType };
  return Object.fromEntries(
    fields
      .split(',')
      .map((f) => f.trim())
      .filter((f) => f in all)
      .map((f) => [f, all[f]]),
  );
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Splits a multipart/related body into its parts (headers, then CRLF CRLF, then the bytes up to CRLF--boundary). */
function parseMultipart(body: Buffer, boundary: string): { contentType: string; body: Buffer }[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { contentType: string; body: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next === -1) break;
    const raw = body.subarray(start + 2, next - 2); // after the CRLF that ends the delimiter line, before the CRLF that precedes the next
    const split = raw.indexOf('\r\n\r\n');
    const headers = raw.subarray(0, split).toString('utf8');
    parts.push({
      contentType: /^content-type:\s*(.+)$/im.exec(headers)?.[1]?.trim() ?? 'application/octet-stream',
      body: raw.subarray(split + 4),
    });
    at = next;
  }
  return parts;
}
