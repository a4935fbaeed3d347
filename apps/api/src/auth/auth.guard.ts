import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { IS_PUBLIC, type Principal, REQUIRED_ROLE, STATION_ALLOWED } from '@aperture/common/auth.decorators.js';
import { forbidden, unauthorized } from '@aperture/common/problem.js';
import type { UserRole } from '@aperture/common/roles.js';
import { AuthService } from './auth.service.js';
import { BruteForceService } from './brute-force.service.js';

/**
 * Global guard: every route needs a bearer token or an `X-API-Key` unless marked @Public();
 * @AdminOnly() routes need the admin role; the station principal may only reach @StationAllowed() routes.
 * Bad credentials (presented, but not valid) count per client address (BAD_CREDENTIALS_PER_MINUTE; 429 past it).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
    private readonly bruteForce: BruteForceService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    // A client presenting bad tokens or keys is limited before any lookup (the rate limiter runs after this guard).
    const ip = req.ip ?? 'unknown';
    await this.bruteForce.assertCredentialsAllowed(ip);
    try {
      req.principal = await this.principalOf(req);
    } catch (err) {
      if (req.headers.authorization !== undefined || req.headers['x-api-key'] !== undefined) await this.bruteForce.recordBadCredential(ip);
      throw err;
    }
    const role = this.reflector.getAllAndOverride<UserRole | undefined>(REQUIRED_ROLE, targets);
    if (role === 'admin' && req.principal.role !== 'admin') throw forbidden();
    if (req.principal.role === 'station' && !this.reflector.getAllAndOverride<boolean>(STATION_ALLOWED, targets)) {
      throw forbidden('The station account may only use the booth endpoints.');
    }
    return true;
  }

  private principalOf(req: Request): Promise<Principal> {
    const apiKey = req.headers['x-api-key'];
    if (typeof apiKey === 'string' && apiKey !== '') return this.auth.authenticateApiKey(apiKey);
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!m) return Promise.reject(unauthorized());
    return this.auth.authenticate(m[1]!);
  }
}
