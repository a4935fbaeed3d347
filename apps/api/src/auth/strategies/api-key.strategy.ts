import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-custom';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { AuthService } from '../auth.service.js';
import { AppPassport } from './app-passport.js';

/**
 * `api-key`: the `X-API-Key` header, as its owner with the key's scopes (`AuthService.authenticateApiKey`: unknown,
 * revoked and expired keys and disabled owners are a 401). Without the header it passes to the next strategy; with
 * one, it decides: a bad key is a 401 even next to a good bearer token.
 */
@Injectable()
export class ApiKeyStrategy extends PassportStrategy(Strategy, 'api-key') {
  constructor(
    private readonly auth: AuthService,
    passports: AppPassport,
  ) {
    super();
    passports.use('api-key', this);
  }

  async validate(req: Request): Promise<Principal | false> {
    const key = req.headers['x-api-key'];
    if (typeof key !== 'string' || key === '') return false;
    return this.auth.authenticateApiKey(key);
  }
}
