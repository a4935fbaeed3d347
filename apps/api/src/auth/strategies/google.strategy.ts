import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { CookieOptions, Request } from 'express';
import type { Redis } from 'ioredis';
import { type StateStore, Strategy } from 'passport-oauth2';
import type { AppConfig } from '@aperture/config/config.js';
import type { RedisKeys } from '@aperture/redis/redis.module.js';
import type { AppPassport } from './app-passport.js';

/** The Google account behind a finished sign-in (OpenID Connect user info), and who asked to link it, if anyone. */
export interface GoogleAccount {
  sub: string;
  email?: string;
  email_verified?: boolean | string;
  name?: string;
  given_name?: string;
  family_name?: string;
  picture?: string;
}

/** What the state carries besides the PKCE verifier: the signed-in user who asked to link Google (POST /auth/google/link). */
export interface GoogleLink {
  linkUserId?: string;
}

/** A refusal with a fixed code and text for the front-end redirect; nothing a caller sent is ever copied into it. */
export class GoogleSignInError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const STATE_TTL_SECONDS = 600;

/** The cookie that ties a sign-in to the browser that started it (HttpOnly, SameSite=Lax, this path only). */
export const OAUTH_COOKIE = 'aperture_google_oauth';
const OAUTH_COOKIE_PATH = '/api/v1/auth/google';

export const oauthCookieOptions = (req: Request): CookieOptions => ({
  httpOnly: true,
  sameSite: 'lax',
  secure: req.secure,
  path: OAUTH_COOKIE_PATH,
});

/** One cookie's value from the Cookie header (no cookie parser needed for one name). */
function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined; // a malformed escape is no cookie of ours
      }
    }
  }
  return undefined;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** What Redis keeps under a state: the PKCE verifier, a hash of the browser's cookie, and the user linking (if any). */
interface PendingSignIn {
  verifier: string;
  browser: string;
  linkUserId?: string;
}

type Stored = (err: Error | null, handle?: string) => void;
type Loaded = (err: Error | null, verifier?: string | false, state?: GoogleLink | GoogleSignInError) => void;

/**
 * passport-oauth2's state store (the PKCE form: `store` receives the verifier, `verify` answers it) on Redis instead
 * of a session. Starting a sign-in sets a random HttpOnly cookie on the response and keeps only its hash with the
 * verifier under a random state; the callback takes the state once (GETDEL) and completes only with the same cookie,
 * so a callback URL opened in another browser is refused (no login CSRF). A refusal is a `GoogleSignInError`.
 */
export class GoogleStateStore {
  private readonly logger = new Logger('GoogleSignIn');

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private key(handle: string): string {
    return this.keys.key('oauth', 'google', handle);
  }

  store(req: Request, verifier: string, state: GoogleLink | undefined, _meta: unknown, done: Stored): void {
    const res = req.res;
    if (!res) return done(new Error('Google sign-in needs a response to set its cookie on'));
    const handle = randomBytes(24).toString('base64url');
    const cookie = randomBytes(24).toString('base64url');
    const pending: PendingSignIn = { verifier, browser: sha256(cookie), ...(state?.linkUserId ? { linkUserId: state.linkUserId } : {}) };
    this.settle(
      this.redis.set(this.key(handle), JSON.stringify(pending), 'EX', STATE_TTL_SECONDS).then(() => {
        res.cookie(OAUTH_COOKIE, cookie, { ...oauthCookieOptions(req), maxAge: STATE_TTL_SECONDS * 1000 });
        return handle;
      }),
      (handle) => done(null, handle),
      (err) => done(err),
    );
  }

  verify(req: Request, handle: string, _meta: unknown, done: Loaded): void {
    this.settle(
      this.take(req, handle),
      (outcome) => (outcome instanceof GoogleSignInError ? done(null, false, outcome) : done(null, outcome.verifier, outcome.link)),
      (err) => done(err),
    );
  }

  private async take(req: Request, handle: string): Promise<GoogleSignInError | { verifier: string; link: GoogleLink }> {
    const stored = await this.redis.getdel(this.key(handle));
    if (!stored) return new GoogleSignInError('invalid_state', 'The sign-in request expired or was already used; please start again.');
    const pending = JSON.parse(stored) as PendingSignIn;
    const cookie = cookieOf(req, OAUTH_COOKIE);
    if (!cookie || !timingSafeEqual(Buffer.from(sha256(cookie)), Buffer.from(pending.browser))) {
      return new GoogleSignInError('invalid_state', 'The sign-in was started in another browser; please start again here.');
    }
    return { verifier: pending.verifier, link: pending.linkUserId ? { linkUserId: pending.linkUserId } : {} };
  }

  /** Calls back outside the promise, so that a throw further down passport's chain is logged, never unhandled. */
  private settle<T>(p: Promise<T>, ok: (v: T) => void, fail: (err: Error) => void): void {
    p.then(ok, (err: unknown) => fail(err instanceof Error ? err : new Error(String(err)))).catch((err: unknown) =>
      this.logger.error({ err }, 'Google sign-in state store callback threw'),
    );
  }
}

/**
 * `google`: Google sign-in, the authorization code flow through passport-oauth2 with S256 PKCE and the state in
 * Redis bound to the browser (`GoogleStateStore`). Without a code it starts the flow (redirects to the provider);
 * with one it checks the state and cookie, trades the code and verifier for an access token, and its verify fetches
 * the OpenID user info: it answers the Google account, and the store's `GoogleLink` in `info.state`. Which user that
 * account signs in or links is `GoogleAuthService`'s call. Registered only when Google sign-in is configured.
 */
export class GoogleStrategy extends PassportStrategy(Strategy, 'google') {
  constructor(
    private readonly settings: NonNullable<AppConfig['google']>,
    store: GoogleStateStore,
    passports: AppPassport,
  ) {
    super({
      authorizationURL: settings.authUrl,
      tokenURL: settings.tokenUrl,
      clientID: settings.clientId,
      clientSecret: settings.clientSecret,
      callbackURL: settings.redirectUri,
      scope: ['openid', 'email', 'profile'],
      pkce: true,
      state: true,
      // passport-oauth2's types know only the session stores' two- and three-argument forms, not the PKCE one.
      store: store as unknown as StateStore,
      skipUserProfile: true,
    });
    passports.use('google', this);
  }

  override authorizationParams(): object {
    return { prompt: 'select_account' };
  }

  async validate(accessToken: string): Promise<GoogleAccount> {
    const res = await fetch(this.settings.userinfoUrl, {
      headers: { Authorization: `Bearer ${accessToken}` },
      signal: AbortSignal.timeout(10000),
    });
    if (!res.ok) throw new GoogleSignInError('invalid_token', `Google's user info answered ${res.status}.`);
    const info = (await res.json().catch(() => ({}))) as Partial<GoogleAccount>;
    if (typeof info.sub !== 'string' || !info.sub) throw new GoogleSignInError('invalid_token', 'Google returned no account id.');
    return info as GoogleAccount;
  }
}
