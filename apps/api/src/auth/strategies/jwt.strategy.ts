import { Inject, Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-jwt';
import type { Principal } from '@aperture/common/auth.decorators.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { type AccessClaims, AuthService } from '../auth.service.js';
import { AppPassport } from './app-passport.js';

/** The token of `Authorization: Bearer <token>`: one token and nothing after it, else none. */
export function bearerToken(req: Request): string | null {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  return m ? m[1]! : null;
}

/**
 * `jwt`: an access token from `Authorization: Bearer`. passport-jwt verifies it (HS256 only, our issuer and audience,
 * not expired); then its user must exist, be enabled and still have the token's version (`AuthService`).
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  constructor(
    private readonly auth: AuthService,
    @Inject(APP_CONFIG) config: AppConfig,
    passports: AppPassport,
  ) {
    super({
      jwtFromRequest: bearerToken,
      secretOrKey: config.jwt.secret,
      algorithms: ['HS256'],
      issuer: config.jwt.issuer,
      audience: config.jwt.audience,
    });
    passports.use('jwt', this);
  }

  validate(claims: AccessClaims): Promise<Principal> {
    return this.auth.principalOfAccessToken(claims);
  }
}
