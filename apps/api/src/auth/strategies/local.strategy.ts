import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-local';
import type { User } from '@aperture/database/entities/user.entity.js';
import { AuthService } from '../auth.service.js';
import { AppPassport } from './app-passport.js';
import { clientIp } from './client-ip.js';

/**
 * `local`: `username` and `password` from the body (JSON for POST /auth/login, the form for the token endpoint's
 * password grant), checked behind the brute-force protection (`AuthService.verifyLogin`). It runs after the body's
 * validation, so a malformed body is the DTO's 400, never a sign-in attempt.
 */
@Injectable()
export class LocalStrategy extends PassportStrategy(Strategy, 'local') {
  constructor(
    private readonly auth: AuthService,
    passports: AppPassport,
  ) {
    super({ usernameField: 'username', passwordField: 'password', passReqToCallback: true, session: false });
    passports.use('local', this);
  }

  validate(req: Request, username: string, password: string): Promise<User> {
    return this.auth.verifyLogin(username, password, clientIp(req));
  }
}
