import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-custom';
import type { User } from '@aperture/database/entities/user.entity.js';
import { AuthService } from '../auth.service.js';
import { AppPassport } from './app-passport.js';
import { clientIp } from './client-ip.js';

/**
 * `station`: the booth's station principal, by the `password` field alone (the token form without a username), against
 * STATION_PASSWORD and behind the brute-force protection (`AuthService.verifyStation`).
 */
@Injectable()
export class StationStrategy extends PassportStrategy(Strategy, 'station') {
  constructor(
    private readonly auth: AuthService,
    passports: AppPassport,
  ) {
    super();
    passports.use('station', this);
  }

  async validate(req: Request): Promise<User | false> {
    const password = (req.body as { password?: unknown } | undefined)?.password;
    if (typeof password !== 'string' || password === '') return false;
    return this.auth.verifyStation(password, clientIp(req));
  }
}
