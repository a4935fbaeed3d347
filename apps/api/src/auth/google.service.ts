import { randomBytes, randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { EntityManager, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Request } from 'express';
import { InternalOAuthError, TokenError } from 'passport-oauth2';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { notFound } from '@aperture/common/problem.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { AuthService } from './auth.service.js';
import { hashPassword } from './password.js';
import { AppPassport } from './strategies/app-passport.js';
import { type GoogleAccount, type GoogleLink, GoogleSignInError } from './strategies/google.strategy.js';

/** passport-oauth2's own error when the token endpoint answers no access token (it has no class of its own). */
const NO_ACCESS_TOKEN = 'Failed to obtain access token';

/** The fixed refusal for what passport-oauth2 raises when the token endpoint refuses the code; null for anything else. */
function providerRefusal(err: unknown): GoogleSignInError | null {
  if (err instanceof TokenError || err instanceof InternalOAuthError)
    return new GoogleSignInError('invalid_grant', 'Google did not accept the sign-in code; please start again.');
  if (err instanceof Error && err.message === NO_ACCESS_TOKEN)
    return new GoogleSignInError('invalid_grant', 'Google returned no access token.');
  return null;
}

/**
 * Google sign-in: the `google` passport strategy (`strategies/google.strategy.ts`) runs the authorization code flow
 * with state and PKCE; this service starts it, and at the callback decides which user the Google account signs in
 * (or links). The provider's endpoints come from the configuration, so tests run against a local fake provider.
 * The callback always ends in a redirect to FRONTEND_URL: `#access_token=…` on success, `#error=…` otherwise.
 */
@Injectable()
export class GoogleAuthService {
  private readonly logger = new Logger('GoogleSignIn');

  constructor(
    private readonly em: EntityManager,
    private readonly auth: AuthService,
    private readonly passports: AppPassport,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private settings(): NonNullable<AppConfig['google']> {
    if (!this.config.google) throw notFound('Google sign-in is not configured on this server.');
    return this.config.google;
  }

  /**
   * Starts a sign-in (or, with `linkUserId`, the linking of a Google account to a signed-in user): answers the provider
   * URL, and the strategy's state store sets the browser cookie on `req.res`. The state remembers the PKCE verifier and
   * the cookie's hash, so the callback only completes in the browser that started it (no login CSRF).
   */
  async start(req: Request, linkUserId?: string): Promise<string> {
    this.settings();
    const link: GoogleLink = linkUserId ? { linkUserId } : {};
    const out = await this.passports.run('google', req, { state: link });
    if (out.kind !== 'redirect') throw new Error(`Google sign-in did not start (the strategy answered ${out.kind})`);
    return out.url;
  }

  /** Handles the provider's redirect (with the browser's cookie); returns where to send the browser next. Never throws. */
  async callback(req: Request): Promise<string> {
    this.settings(); // not configured: a plain 404, there is no sign-in to finish
    try {
      const q = req.query;
      // The provider's (or anyone's) ?error= is never copied into the redirect: a fixed text says what happened.
      if (q.error) {
        this.logger.warn(`Google sign-in not completed: ${JSON.stringify(q.error).slice(0, 200)}`);
        throw new GoogleSignInError('access_denied', 'Google sign-in was not completed.');
      }
      // Without a code the strategy would start a new sign-in instead; a repeated parameter is no code either.
      if (typeof q.state !== 'string' || !q.state || typeof q.code !== 'string' || !q.code)
        throw new GoogleSignInError('invalid_request', 'The callback is missing its code or state.');
      let out;
      try {
        out = await this.passports.run('google', req);
      } catch (err) {
        const refusal = providerRefusal(err);
        if (!refusal) throw err;
        this.logger.warn({ err }, 'Google refused the sign-in code');
        throw refusal;
      }
      if (out.kind === 'fail') {
        if (out.challenge instanceof GoogleSignInError) throw out.challenge;
        throw new GoogleSignInError('invalid_state', 'The sign-in request expired or was already used; please start again.');
      }
      if (out.kind !== 'success') throw new Error(`Google sign-in did not finish (the strategy answered ${out.kind})`);
      const linkUserId = (out.info as { state?: GoogleLink } | undefined)?.state?.linkUserId;
      const user = linkUserId ? await this.link(linkUserId, out.user) : await this.findOrCreate(out.user);
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

  /**
   * The user linked to this Google account, else a new user. An existing account with the same e-mail is never linked
   * automatically (nobody verified that it owns the address: anyone could have registered it), so that case is
   * refused with the way to link from inside the account.
   */
  private async findOrCreate(info: GoogleAccount): Promise<User> {
    const sub = info.sub;
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
  private async link(userId: string, info: GoogleAccount): Promise<User> {
    const user = await this.em.findOne(User, { id: userId });
    if (!user) throw new GoogleSignInError('access_denied', 'The account that asked to link Google no longer exists.');
    if (user.googleSub && user.googleSub !== info.sub) {
      throw new GoogleSignInError('conflict', 'This account is already linked to another Google account.');
    }
    user.googleSub = info.sub;
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
