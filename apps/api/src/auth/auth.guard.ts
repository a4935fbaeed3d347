import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { EXPOSED_BY, IS_PUBLIC, type Principal, REQUIRED_ROLE, REQUIRED_SCOPE, STATION_ALLOWED } from '@aperture/common/auth.decorators.js';
import { forbidden, notFound, unauthorized } from '@aperture/common/problem.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { ApiKeyScope, UserRole } from '@aperture/common/roles.js';
import { BruteForceService } from './brute-force.service.js';
import { AppPassport } from './strategies/app-passport.js';

/**
 * Global guard: every route needs a bearer token or an `X-API-Key` unless marked @Public(); who the caller is, passport
 * answers (the `api-key` strategy, then `jwt`: an `X-API-Key` header decides alone, as AuthGuard(['api-key', 'jwt'])
 * would); the rules below are this guard's.
 * @AdminOnly() routes need the admin role; the station principal may only reach @StationAllowed() routes; an
 * @ExposedBy(setting) route is public, admin-only or off (404) as the configuration says. An API key needs the scope
 * of the route: @RequiresScope(…), else `read` for GET and `write` for other methods.
 * Bad credentials (presented, but not valid) count per client address (BAD_CREDENTIALS_PER_MINUTE; 429 past it).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly passports: AppPassport,
    private readonly bruteForce: BruteForceService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

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
    return true;
  }

  /** A route or page whose audience a setting decides: public, an admin's credentials, or 404 when off. */
  async assertExposed(req: Request & { principal?: Principal }, setting: keyof AppConfig['exposure']): Promise<void> {
    const mode = this.config.exposure[setting];
    if (mode === 'off') throw notFound('Not found.');
    if (mode === 'public') return;
    req.principal = await this.principalFor(req);
    if (req.principal.role !== 'admin') throw forbidden();
  }

  /** The caller of a request; bad credentials (presented, but not valid) count per client address, 429 past it. */
  async principalFor(req: Request): Promise<Principal> {
    // Limited before any lookup: the rate limiter runs after this guard.
    const ip = req.ip ?? 'unknown';
    await this.bruteForce.assertCredentialsAllowed(ip);
    try {
      return await this.principalOf(req);
    } catch (err) {
      if (req.headers.authorization !== undefined || req.headers['x-api-key'] !== undefined) await this.bruteForce.recordBadCredential(ip);
      throw err;
    }
  }

  private async principalOf(req: Request): Promise<Principal> {
    const principal = await this.passports.authenticate(['api-key', 'jwt'], req);
    if (!principal) throw unauthorized();
    return principal;
  }
}
