import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { EntityManager, UniqueConstraintViolationException } from '@mikro-orm/core';
import { CodeChallengeMethod, OAuth2Client } from 'google-auth-library';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { notFound } from '@aperture/common/problem.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import { AuthService } from './auth.service.js';
import { hashPassword } from './password.js';

interface GoogleUserInfo {
  sub?: string;
  email?: string;
  email_verified?: boolean | string;
  name?: string;
  given_name?: string;
  family_name?: string;
  picture?: string;
}

class GoogleSignInError extends Error {
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
export const OAUTH_COOKIE_PATH = '/api/v1/auth/google';
export const OAUTH_COOKIE_MAX_AGE_MS = STATE_TTL_SECONDS * 1000;

/** What the state remembers: the PKCE verifier, a hash of the browser's cookie, and the user linking (if any). */
interface PendingSignIn {
  verifier: string;
  browser: string;
  linkUserId?: string;
}

/** A sign-in to start: send the browser to `url` with `cookie` set. */
export interface GoogleStart {
  url: string;
  cookie: string;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/**
 * Google sign-in (authorization code flow with state and PKCE) through google-auth-library's OAuth2 client.
 * The provider's endpoints come from the configuration, so tests run against a local fake provider.
 * The callback always ends in a redirect to FRONTEND_URL: `#access_token=…` on success, `#error=…` otherwise.
 */
@Injectable()
export class GoogleAuthService {
  private readonly logger = new Logger('GoogleSignIn');

  constructor(
    private readonly em: EntityManager,
    private readonly auth: AuthService,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private settings(): NonNullable<AppConfig['google']> {
    if (!this.config.google) throw notFound('Google sign-in is not configured on this server.');
    return this.config.google;
  }

  private client(): OAuth2Client {
    const g = this.settings();
    return new OAuth2Client({
      clientId: g.clientId,
      clientSecret: g.clientSecret,
      redirectUri: g.redirectUri,
      endpoints: { oauth2AuthBaseUrl: g.authUrl, oauth2TokenUrl: g.tokenUrl },
    });
  }

  /**
   * Starts a sign-in (or, with `linkUserId`, the linking of a Google account to a signed-in user): the provider URL,
   * and a random cookie for the browser. The state remembers the PKCE verifier and the cookie's hash, so the callback
   * only completes in the browser that started it (a callback URL opened elsewhere is refused: no login CSRF).
   */
  async start(linkUserId?: string): Promise<GoogleStart> {
    const client = this.client();
    const state = randomBytes(24).toString('base64url');
    const cookie = randomBytes(24).toString('base64url');
    const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
    const pending: PendingSignIn = { verifier: codeVerifier, browser: sha256(cookie), ...(linkUserId ? { linkUserId } : {}) };
    await this.redis.set(this.keys.key('oauth', 'google', state), JSON.stringify(pending), 'EX', STATE_TTL_SECONDS);
    const url = client.generateAuthUrl({
      scope: ['openid', 'email', 'profile'],
      state,
      code_challenge: codeChallenge,
      code_challenge_method: CodeChallengeMethod.S256,
      prompt: 'select_account',
    });
    return { url, cookie };
  }

  /** Handles the provider's redirect (with the browser's cookie); returns where to send the browser next. Never throws. */
  async callback(q: { code?: string; state?: string; error?: string; cookie?: string }): Promise<string> {
    this.settings(); // not configured: a plain 404, there is no sign-in to finish
    try {
      // The provider's (or anyone's) ?error= is never copied into the redirect: a fixed text says what happened.
      if (q.error) {
        this.logger.warn(`Google sign-in not completed: ${q.error.slice(0, 200)}`);
        throw new GoogleSignInError('access_denied', 'Google sign-in was not completed.');
      }
      if (!q.state || !q.code) throw new GoogleSignInError('invalid_request', 'The callback is missing its code or state.');
      const stored = await this.redis.getdel(this.keys.key('oauth', 'google', q.state));
      if (!stored) throw new GoogleSignInError('invalid_state', 'The sign-in request expired or was already used; please start again.');
      const pending = JSON.parse(stored) as PendingSignIn;
      if (!q.cookie || !timingSafeEqual(Buffer.from(sha256(q.cookie)), Buffer.from(pending.browser))) {
        throw new GoogleSignInError('invalid_state', 'The sign-in was started in another browser; please start again here.');
      }
      const verifier = pending.verifier;
      const client = this.client();
      let accessToken: string | null | undefined;
      try {
        const { tokens } = await client.getToken({ code: q.code, codeVerifier: verifier });
        accessToken = tokens.access_token;
      } catch (err) {
        this.logger.warn({ err }, 'Google refused the sign-in code');
        throw new GoogleSignInError('invalid_grant', 'Google did not accept the sign-in code; please start again.');
      }
      if (!accessToken) throw new GoogleSignInError('invalid_grant', 'Google returned no access token.');
      const info = await this.userInfo(accessToken);
      const user = pending.linkUserId ? await this.link(pending.linkUserId, info) : await this.findOrCreate(info);
      const tokens = await this.auth.issue(user, randomUUID());
      return this.frontend({
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: tokens.token_type,
        expires_in: String(tokens.expires_in),
      });
    } catch (err) {
      const e = err instanceof GoogleSignInError ? err : new GoogleSignInError('server_error', 'Google sign-in failed; please try again.');
      if (!(err instanceof GoogleSignInError)) this.logger.error({ err }, 'Google sign-in failed');
      else this.logger.warn(`Google sign-in refused: ${e.code}: ${e.message}`);
      return this.frontend({ error: e.code, error_description: e.message });
    }
  }

  private frontend(params: Record<string, string>): string {
    // Tokens travel in the fragment: browsers never send it to servers or write it into Referer headers.
    const url = new URL(this.config.frontendUrl);
    url.hash = new URLSearchParams(params).toString();
    return url.toString();
  }

  private async userInfo(accessToken: string): Promise<GoogleUserInfo> {
    const res = await fetch(this.settings().userinfoUrl, {
      headers: { Authorization: `Bearer ${accessToken}` },
      signal: AbortSignal.timeout(10000),
    });
    if (!res.ok) throw new GoogleSignInError('invalid_token', `Google's user info answered ${res.status}.`);
    const info = (await res.json()) as GoogleUserInfo;
    if (!info.sub) throw new GoogleSignInError('invalid_token', 'Google returned no account id.');
    return info;
  }

  /**
   * The user linked to this Google account, else a new user. An existing account with the same e-mail is never linked
   * automatically (nobody verified that it owns the address: anyone could have registered it), so that case is
   * refused with the way to link from inside the account.
   */
  private async findOrCreate(info: GoogleUserInfo): Promise<User> {
    const sub = info.sub!;
    const verified = info.email_verified === true || info.email_verified === 'true';
    const email = info.email?.toLowerCase() ?? null;
    let user = await this.em.findOne(User, { googleSub: sub });
    if (!user && email && verified && (await this.em.count(User, { email }))) {
      throw new GoogleSignInError(
        'account_exists',
        'An account with this e-mail already exists. Sign in to it, then link Google from there (POST /api/v1/auth/google/link).',
      );
    }
    if (!user) {
      const base = (email?.split('@')[0] ?? 'google').replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 40) || 'google';
      user = this.em.create(User, {
        username: `${base}_${randomBytes(3).toString('hex')}`,
        email: email && verified ? email : null,
        fullName: info.name ?? null,
        firstName: info.given_name ?? null,
        lastName: info.family_name ?? null,
        pictureUrl: info.picture?.startsWith('https://') ? info.picture : null,
        googleSub: sub,
        // No password: this account signs in with Google (a password can be set later by an admin reset flow).
        passwordHash: await hashPassword(randomBytes(32).toString('hex')),
      });
    }
    return this.save(user);
  }

  /** Links the Google account to the signed-in user who asked for it (POST /auth/google/link). */
  private async link(userId: string, info: GoogleUserInfo): Promise<User> {
    const user = await this.em.findOne(User, { id: userId });
    if (!user) throw new GoogleSignInError('access_denied', 'The account that asked to link Google no longer exists.');
    if (user.googleSub && user.googleSub !== info.sub) {
      throw new GoogleSignInError('conflict', 'This account is already linked to another Google account.');
    }
    user.googleSub = info.sub!;
    return this.save(user);
  }

  private async save(user: User): Promise<User> {
    if (user.disabled) throw new GoogleSignInError('access_denied', 'This account is disabled.');
    try {
      await this.em.flush();
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException)
        throw new GoogleSignInError('conflict', 'This Google account is already linked to another user.');
      throw err;
    }
    return user;
  }
}
