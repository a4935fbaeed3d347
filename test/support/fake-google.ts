import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface FakeGoogleUser {
  sub: string;
  email: string;
  email_verified: boolean;
  name: string;
}

/**
 * A local stand-in for Google's OAuth2/OpenID endpoints that speaks the real protocol: /authorize validates the
 * client, redirect URI, response type, state and S256 PKCE challenge and redirects back with a code; /token checks the
 * code, client secret, redirect URI and code_verifier; /userinfo answers for the issued access token.
 */
export class FakeGoogle {
  private server!: Server;
  private readonly codes = new Map<string, { challenge: string; redirectUri: string; user: FakeGoogleUser }>();
  private readonly tokens = new Map<string, FakeGoogleUser>();
  /** The account the next /authorize "signs in". */
  nextUser: FakeGoogleUser = { sub: 'google-sub-1', email: 'someone@example.com', email_verified: true, name: 'Some One' };
  base = '';
  readonly requests: string[] = [];

  constructor(
    readonly clientId: string,
    readonly clientSecret: string,
  ) {}

  async start(): Promise<void> {
    this.server = createServer(
      (req, res) => void this.handle(req).then(({ status, headers, body }) => res.writeHead(status, headers).end(body)),
    );
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    const addr = this.server.address();
    this.base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    const url = new URL(req.url ?? '/', this.base);
    this.requests.push(`${req.method} ${url.pathname}`);
    const json = (status: number, obj: unknown) => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(obj) });
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const p = url.searchParams;
      if (p.get('client_id') !== this.clientId) return json(400, { error: 'invalid_client' });
      if (p.get('response_type') !== 'code') return json(400, { error: 'unsupported_response_type' });
      if (p.get('code_challenge_method') !== 'S256' || !p.get('code_challenge'))
        return json(400, { error: 'invalid_request', error_description: 'PKCE required' });
      if (!p.get('state')) return json(400, { error: 'invalid_request', error_description: 'state required' });
      if (!(p.get('scope') ?? '').split(' ').includes('email')) return json(400, { error: 'invalid_scope' });
      const redirect = new URL(p.get('redirect_uri')!);
      const code = randomBytes(16).toString('hex');
      this.codes.set(code, { challenge: p.get('code_challenge')!, redirectUri: p.get('redirect_uri')!, user: this.nextUser });
      redirect.searchParams.set('code', code);
      redirect.searchParams.set('state', p.get('state')!);
      return { status: 302, headers: { location: redirect.toString() }, body: '' };
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      let raw = '';
      for await (const chunk of req) raw += String(chunk);
      const f = new URLSearchParams(raw);
      const entry = this.codes.get(f.get('code') ?? '');
      if (f.get('grant_type') !== 'authorization_code' || !entry) return json(400, { error: 'invalid_grant' });
      if (f.get('client_id') !== this.clientId || f.get('client_secret') !== this.clientSecret)
        return json(401, { error: 'invalid_client' });
      if (f.get('redirect_uri') !== entry.redirectUri)
        return json(400, { error: 'invalid_grant', error_description: 'redirect_uri mismatch' });
      const verifier = f.get('code_verifier') ?? '';
      if (createHash('sha256').update(verifier).digest('base64url') !== entry.challenge)
        return json(400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
      this.codes.delete(f.get('code')!);
      const accessToken = randomBytes(16).toString('hex');
      this.tokens.set(accessToken, entry.user);
      return json(200, { access_token: accessToken, token_type: 'Bearer', expires_in: 3599, scope: 'openid email profile' });
    }
    if (req.method === 'GET' && url.pathname === '/userinfo') {
      const user = this.tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      return user ? json(200, user) : json(401, { error: 'invalid_token' });
    }
    return json(404, { error: 'not_found' });
  }
}
