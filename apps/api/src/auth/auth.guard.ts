import { createSecretKey } from 'node:crypto';
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

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const exposedBy = this.reflector.get<keyof AppConfig['exposure'] | undefined>(EXPOSED_BY, ctx.getHandler());
    if (exposedBy) {
      await this.assertExposed(req, exposedBy);
      return true;
    }
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    req.principal = await this.principalFor(req);
    try {
      this.assertAllowed(req as Request & { principal: Principal }, targets);
    } catch (err) {
      // A refusal is not a pass: a deferred address check comes first, as it would have without the cache.
      const ip = takeDeferredCredentialCheck(req);
      if (ip !== undefined) await this.bruteForce.assertCredentialsAllowed(ip);
      throw err;
    }
    return true;
  }

  private assertAllowed(req: Request & { principal: Principal }, targets: Parameters<Reflector['getAllAndOverride']>[1]): void {
    const role = this.reflector.getAllAndOverride<UserRole | undefined>(REQUIRED_ROLE, targets);
    if (role === 'admin' && req.principal.role !== 'admin') throw forbidden();
    if (req.principal.role === 'station' && !this.reflector.getAllAndOverride<boolean>(STATION_ALLOWED, targets)) {
      throw forbidden('The station account may only use the booth endpoints.');
    }
    if (req.principal.scopes) {
      const needed =
        this.reflector.getAllAndOverride<ApiKeyScope | undefined>(REQUIRED_SCOPE, targets) ??
        (['GET', 'HEAD', 'OPTIONS'].includes(req.method) ? 'read' : 'write');
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
    let claims: AccessClaims;
    try {
      claims = this.jwt.verify<AccessClaims>(token);
    } catch {
      return undefined;
    }
    return this.auth.cachedAccessToken(claims);
  }

  private async principalOf(req: Request): Promise<Principal> {
    const principal = await this.passports.authenticate(['api-key', 'jwt'], req);
    if (!principal) throw unauthorized();
    return principal;
  }
}
