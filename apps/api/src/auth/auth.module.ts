import { Module } from '@nestjs/common';
import { JwtModule } from '@nestjs/jwt';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';
import type { Redis } from 'ioredis';
import { ApiKeysController } from './api-keys.controller.js';
import { ApiKeysService } from './api-keys.service.js';
import { AuthController } from './auth.controller.js';
import { AuthGuard } from './auth.guard.js';
import { AuthService } from './auth.service.js';
import { BruteForceService } from './brute-force.service.js';
import { GoogleController } from './google.controller.js';
import { GoogleAuthService } from './google.service.js';
import { PrincipalCache } from './principal-cache.js';
import { ApiKeyStrategy } from './strategies/api-key.strategy.js';
import { AppPassport } from './strategies/app-passport.js';
import { GoogleStateStore, GoogleStrategy } from './strategies/google.strategy.js';
import { JwtStrategy } from './strategies/jwt.strategy.js';
import { LocalStrategy } from './strategies/local.strategy.js';
import { StationStrategy } from './strategies/station.strategy.js';

@Module({
  imports: [
    JwtModule.registerAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({
        secret: c.jwt.secret,
        signOptions: { algorithm: 'HS256', issuer: c.jwt.issuer, audience: c.jwt.audience, expiresIn: c.jwt.accessTtlSeconds },
      }),
    }),
  ],
  controllers: [AuthController, ApiKeysController, GoogleController],
  providers: [
    AuthService,
    AuthGuard,
    BruteForceService,
    PrincipalCache,
    GoogleAuthService,
    ApiKeysService,
    AppPassport,
    // Each registers itself with AppPassport; see docs/architecture.md for adding one.
    JwtStrategy,
    ApiKeyStrategy,
    LocalStrategy,
    StationStrategy,
    {
      // Only where Google sign-in is configured (passport-oauth2 needs its endpoints); elsewhere its routes are a 404.
      provide: GoogleStrategy,
      inject: [APP_CONFIG, REDIS, RedisKeys, AppPassport],
      useFactory: (c: AppConfig, redis: Redis, keys: RedisKeys, passports: AppPassport): GoogleStrategy | null =>
        c.google ? new GoogleStrategy(c.google, new GoogleStateStore(redis, keys), passports) : null,
    },
  ],
  exports: [AuthService, AuthGuard, BruteForceService, PrincipalCache],
})
export class AuthModule {}
