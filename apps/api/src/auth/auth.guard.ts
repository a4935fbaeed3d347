import { createHash, createSecretKey } from 'node:crypto';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { EXPOSED_BY, IS_PUBLIC, type Principal, REQUIRED_ROLE, REQUIRED_SCOPE, STATION_ALLOWED } from '@aperture/common/auth.decorators.js';
import { forbidden, notFound, unauthorized } from '@aperture/common/problem.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { ApiKeyScope, UserRole } from '@aperture/common/roles.js';
import { JwtService } from '@nestjs/jwt';
import { type AccessClaims, AuthService } from './auth.service.js';
import { BruteForceService, deferCredentialCheck, takeDeferredCredentialCheck } from './brute-force.service.js';
import { AppPassport } from './strategies/app-passport.js';
import { bearerToken } from './strategies/jwt.strategy.js';

/** What a route's decorators ask of its callers (see AuthGuard). */
interface RouteRules {
  exposedBy: keyof AppConfig['exposure'] | undefined;
  isPublic: boolean;
  role: UserRole | undefined;
  stationAllowed: boolean;
  scope: ApiKeyScope | undefined;
}

/** Verified bearer tokens remembered by one API process (see AuthGuard.verified). */
const MAX_VERIFIED_TOKENS = 10_000;

/**
 * Global guard: every route needs a bearer token or an `X-API-Key` unless marked @Public(); who the caller is, passport
 * answers (the `api-key` strategy, then `jwt`: an `X-API-Key` header decides alone, as AuthGuard(['api-key', 'jwt'])
 * would); the rules below are this guard's.
 * @AdminOnly() routes need the admin role; the station principal may only reach @StationAllowed() routes; an
 * @ExposedBy(setting) route is public, admin-only or off (404) as the configuration says. An API key needs the scope
 * of the route: @RequiresScope(…), else `read` for GET and `write` for other methods.
 * Bad credentials (presented, but not valid) count per client address (BAD_CREDENTIALS_PER_MINUTE; 429 past it).
 * A caller the principal cache knows (a verified bearer token of a cached user, a cached API key) is answered without
 * passport or the database; the address check is then left to the rate limiter, which makes it in its own Redis round
 * trip (one for the whole request).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly passports: AppPassport,
    private readonly bruteForce: BruteForceService,
    private readonly auth: AuthService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    // As passport-jwt verifies a token (jwt.strategy.ts): HS256 only, our issuer and audience, not expired. The secret
    // as a KeyObject made once: given a string, jsonwebtoken first tries it as a public key (an exception) and then
    // builds a secret key, on every verification.
    this.jwt = new JwtService({
      secret: createSecretKey(Buffer.from(config.jwt.secret)),
      verifyOptions: { algorithms: ['HS256'], issuer: config.jwt.issuer, audience: config.jwt.audience },
    });
  }

  private readonly jwt: JwtService;
  /**
   * Bearer tokens this process has verified, by the SHA-256 of the token (a lookup's timing says nothing about a
   * stored token), with their claims: a token seen again is not verified again (HMAC, two JSON parses, the claim
   * checks) while it is unexpired. Whom the claims name is still checked on every request (the principal cache: a
   * logout everywhere, a role change or a disabled user take effect at once).
   */
  private readonly verified = new Map<string, { claims: AccessClaims; exp: number; nbf: number }>();

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const rules = this.rulesOf(ctx.getClass(), ctx.getHandler());
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    if (rules.exposedBy) {
      await this.assertExposed(req, rules.exposedBy);
      return true;
    }
    if (rules.isPublic) return true;
    req.principal = await this.principalFor(req);
    try {
      this.assertAllowed(req as Request & { principal: Principal }, rules);
    } catch (err) {
      // A refusal is not a pass: a deferred address check comes first, as it would have without the cache.
      const ip = takeDeferredCredentialCheck(req);
      if (ip !== undefined) await this.bruteForce.assertCredentialsAllowed(ip);
      throw err;
    }
    return true;
  }

  /**
   * A route's rules, read from its decorators once per (controller, handler): decorators do not change after start,
   * and reading the metadata walks prototype chains on every call.
   */
  private rulesOf(controller: object, handler: object): RouteRules {
    let byHandler = this.rules.get(controller);
    if (!byHandler) this.rules.set(controller, (byHandler = new WeakMap()));
    let rules = byHandler.get(handler);
    if (!rules) {
      const targets = [handler, controller] as Parameters<Reflector['getAllAndOverride']>[1];
      rules = {
        exposedBy: this.reflector.get<keyof AppConfig['exposure'] | undefined>(EXPOSED_BY, handler as () => void),
        isPublic: Boolean(this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, targets)),
        role: this.reflector.getAllAndOverride<UserRole | undefined>(REQUIRED_ROLE, targets),
        stationAllowed: Boolean(this.reflector.getAllAndOverride<boolean | undefined>(STATION_ALLOWED, targets)),
        scope: this.reflector.getAllAndOverride<ApiKeyScope | undefined>(REQUIRED_SCOPE, targets),
      };
      byHandler.set(handler, rules);
    }
    return rules;
  }

  private readonly rules = new WeakMap<object, WeakMap<object, RouteRules>>();

  private assertAllowed(req: Request & { principal: Principal }, rules: RouteRules): void {
    if (rules.role === 'admin' && req.principal.role !== 'admin') throw forbidden();
    if (req.principal.role === 'station' && !rules.stationAllowed) {
      throw forbidden('The station account may only use the booth endpoints.');
    }
    if (req.principal.scopes) {
      const needed = rules.scope ?? (['GET', 'HEAD', 'OPTIONS'].includes(req.method) ? 'read' : 'write');
      if (!req.principal.scopes.includes(needed)) throw forbidden(`This API key does not have the "${needed}" scope.`);
    }
  }

  /** A route or page whose audience a setting decides: public, an admin's credentials, or 404 when off. */
  async assertExposed(req: Request & { principal?: Principal }, setting: keyof AppConfig['exposure']): Promise<void> {
    const mode = this.config.exposure[setting];
    if (mode === 'off') throw notFound('Not found.');
    if (mode === 'public') return;
    req.principal = await this.principalFor(req, false);
    if (req.principal.role !== 'admin') throw forbidden();
  }

  /** The caller of a request; bad credentials (presented, but not valid) count per client address, 429 past it. */
  async principalFor(req: Request, mayDefer = true): Promise<Principal> {
    const ip = req.ip ?? 'unknown';
    if (mayDefer) {
      const cached = this.cachedPrincipal(req);
      if (cached) {
        deferCredentialCheck(req, ip);
        return cached;
      }
    }
    // Limited before any lookup: the rate limiter runs after this guard.
    await this.bruteForce.assertCredentialsAllowed(ip);
    try {
      return await this.principalOf(req);
    } catch (err) {
      if (req.headers.authorization !== undefined || req.headers['x-api-key'] !== undefined) await this.bruteForce.recordBadCredential(ip);
      throw err;
    }
  }

  /**
   * The caller as the principal cache knows them, without passport or the database; undefined whenever the strategies
   * must decide (no credentials, a token that does not verify, an unknown or changed user or key). The same choice of
   * credential as the strategies: a non-empty `X-API-Key` decides alone, else the bearer token.
   */
  private cachedPrincipal(req: Request): Principal | undefined {
    const key = req.headers['x-api-key'];
    if (typeof key === 'string' && key !== '') return this.auth.cachedApiKey(key);
    if (key !== undefined) return undefined;
    const token = bearerToken(req);
    if (!token) return undefined;
    const claims = this.verifiedClaims(token);
    return claims && this.auth.cachedAccessToken(claims);
  }

  /** The claims of a token that verifies now (as passport-jwt would verify it), or undefined. */
  private verifiedClaims(token: string): AccessClaims | undefined {
    const id = createHash('sha256').update(token).digest('base64');
    const now = Math.floor(Date.now() / 1000);
    const seen = this.verified.get(id);
    // As jsonwebtoken decides: expired once now >= exp, not yet valid while nbf > now.
    if (seen && now < seen.exp && seen.nbf <= now) return seen.claims;
    if (seen) this.verified.delete(id);
    let claims: AccessClaims & { exp?: unknown; nbf?: unknown };
    try {
      claims = this.jwt.verify<AccessClaims & { exp?: unknown; nbf?: unknown }>(token);
    } catch {
      return undefined;
    }
    // Only a token that expires is remembered; at most MAX_VERIFIED_TOKENS, the oldest going first.
    if (typeof claims.exp === 'number') {
      if (this.verified.size >= MAX_VERIFIED_TOKENS) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(id, { claims, exp: claims.exp, nbf: typeof claims.nbf === 'number' ? claims.nbf : 0 });
    }
    return claims;
  }

  private async principalOf(req: Request): Promise<Principal> {
    const principal = await this.passports.authenticate(['api-key', 'jwt'], req);
    if (!principal) throw unauthorized();
    return principal;
  }
}
