import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { EntityManager, MikroORM, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { conflict, notFound, ProblemException, unauthorized } from '@aperture/common/problem.js';
import { DEFAULT_API_KEY_SCOPES } from '@aperture/common/roles.js';
import { ApiKey } from '@aperture/database/entities/api-key.entity.js';
import { RefreshToken } from '@aperture/database/entities/refresh-token.entity.js';
import { byUsername, User } from '@aperture/database/entities/user.entity.js';
import type { RegisterDto, TokenResponseDto } from './auth.dto.js';
import { BruteForceService } from './brute-force.service.js';
import { dummyHash, hashPassword, verifyPassword } from './password.js';
import { PrincipalCache } from './principal-cache.js';

export interface AccessClaims {
  sub: string;
  role: string;
  typ: 'access';
  /** The user's token version when issued; "log out everywhere" bumps it. */
  ver: number;
}

const STATION_USERNAME = 'station';
export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const WRONG_CREDENTIALS = 'Incorrect username or password';

@Injectable()
export class AuthService implements OnApplicationBootstrap {
  private readonly logger = new Logger(AuthService.name);

  constructor(
    private readonly em: EntityManager,
    private readonly orm: MikroORM,
    private readonly jwt: JwtService,
    private readonly bruteForce: BruteForceService,
    private readonly principals: PrincipalCache,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Creates the first admin from ADMIN_USERNAME/ADMIN_PASSWORD when no user of that name exists. */
  async onApplicationBootstrap(): Promise<void> {
    const admin = this.config.admin;
    if (!admin) return;
    const em = this.orm.em.fork();
    if (await em.count(User, byUsername(admin.username))) return;
    try {
      em.create(User, { username: admin.username, email: admin.email, passwordHash: await hashPassword(admin.password), role: 'admin' });
      await em.flush();
      this.logger.log(`Created admin user "${admin.username}"`);
    } catch (err) {
      if (!(err instanceof UniqueConstraintViolationException)) throw err; // another replica created it first
    }
  }

  async register(dto: RegisterDto): Promise<User> {
    if (dto.password.toLowerCase() === dto.username.toLowerCase()) {
      throw new ProblemException(400, 'VALIDATION_ERROR', 'password must not be the same as the username', {
        errors: [{ field: 'password', messages: ['password must not be the same as the username'] }],
      });
    }
    if (dto.username.toLowerCase() === STATION_USERNAME) throw this.duplicate('username');
    const email = dto.email.toLowerCase();
    if (await this.em.count(User, byUsername(dto.username))) throw this.duplicate('username');
    if (await this.em.count(User, { email })) throw this.duplicate('email');
    const user = this.em.create(User, {
      username: dto.username,
      email,
      fullName: dto.full_name ?? null,
      passwordHash: await hashPassword(dto.password),
    });
    try {
      await this.em.flush();
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException) throw this.duplicate(/email/i.test(err.message) ? 'email' : 'username');
      throw err;
    }
    return user;
  }

  duplicate(field: 'username' | 'email'): ProblemException {
    return conflict(`A user with this ${field} already exists.`, { errors: [{ field, messages: [`${field} is already taken`] }] });
  }

  /**
   * The `local` strategy's check: the user whose password this is, behind per-(username, IP) and per-IP brute-force
   * protection (the attempt counts before the password is verified; a right password gives it back).
   */
  async verifyLogin(username: string, password: string, ip: string): Promise<User> {
    const subjects = BruteForceService.subjects(username, ip);
    await this.bruteForce.begin(subjects);
    const user = await this.em.findOne(User, byUsername(username));
    let ok = false;
    if (user && user.role !== 'station') ok = await verifyPassword(user.passwordHash, password);
    else await verifyPassword(await dummyHash(), password); // the same work for unknown users: timing reveals nothing
    if (!user || !ok || user.disabled) throw unauthorized(WRONG_CREDENTIALS);
    await this.bruteForce.recordSuccess(subjects);
    return user;
  }

  /**
   * A sign-in that passport-local refused before verifying (an empty username or password): it still counts as an
   * attempt, as every sign-in does, and gets the same 401.
   */
  async refuseLogin(username: string, ip: string): Promise<never> {
    await this.bruteForce.begin(BruteForceService.subjects(username, ip));
    throw unauthorized(WRONG_CREDENTIALS);
  }

  /**
   * The `station` strategy's check: the booth's built-in station principal, by the password alone (only when
   * STATION_PASSWORD is configured), behind the same brute-force protection as any sign-in.
   */
  async verifyStation(password: string, ip: string): Promise<User> {
    const configured = this.config.stationPassword;
    if (!configured) throw unauthorized(WRONG_CREDENTIALS);
    const subjects = BruteForceService.subjects(STATION_USERNAME, ip);
    await this.bruteForce.begin(subjects);
    const ok = configured.startsWith('$argon2') ? await verifyPassword(configured, password) : constantTimeEqual(configured, password);
    if (!ok) throw unauthorized('Incorrect password');
    await this.bruteForce.recordSuccess(subjects);
    return this.stationUser();
  }

  private async stationUser(): Promise<User> {
    const existing = await this.em.findOne(User, { username: STATION_USERNAME });
    if (existing) return existing;
    try {
      // It never signs in with this hash: the station password is checked against the configuration.
      const user = this.em.create(User, {
        username: STATION_USERNAME,
        role: 'station',
        passwordHash: await hashPassword(randomBytes(32).toString('hex')),
      });
      await this.em.flush();
      return user;
    } catch (err) {
      if (!(err instanceof UniqueConstraintViolationException)) throw err;
      this.em.clear();
      return this.em.findOneOrFail(User, { username: STATION_USERNAME });
    }
  }

  /**
   * Rotates a refresh token. The rotation is one guarded update (`… WHERE revoked_at IS NULL`): of several requests
   * racing with one token exactly one wins; every other presentation of a rotated token is reuse (token theft), and
   * revokes the whole family, the winner's new token included.
   */
  async refresh(token: string): Promise<TokenResponseDto> {
    const row = await this.em.findOne(RefreshToken, { tokenHash: sha256(token) }, { populate: ['user'] });
    const invalid = unauthorized('Invalid or expired refresh token');
    if (!row) throw invalid;
    if (row.revokedAt) {
      if (row.replacedBy) await this.revokeFamily(row);
      throw invalid;
    }
    if (row.expiresAt.getTime() < Date.now() || row.user.disabled) throw invalid;
    const next = randomUUID();
    const rotated = await this.em.nativeUpdate(RefreshToken, { id: row.id, revokedAt: null }, { revokedAt: new Date(), replacedBy: next });
    if (rotated !== 1) {
      // Lost a race: another request rotated this token (reuse) or a logout revoked it.
      const now = await this.em.findOne(RefreshToken, { id: row.id }, { refresh: true });
      if (now?.replacedBy) await this.revokeFamily(row);
      throw invalid;
    }
    return this.issue(row.user, row.family, next);
  }

  private async revokeFamily(row: RefreshToken): Promise<void> {
    await this.em.nativeUpdate(RefreshToken, { family: row.family, revokedAt: null }, { revokedAt: new Date() });
    this.logger.warn(`Refresh token reuse detected for user ${row.user.id}; family ${row.family} revoked`);
  }

  /** The principal's user ("User does not exist." once deleted). */
  async currentUser(p: Principal): Promise<User> {
    const user = await this.em.findOne(User, { id: p.userId });
    if (!user) throw notFound('User does not exist.');
    return user;
  }

  /** Ends every session of the user: their refresh tokens stop working. */
  async revokeRefreshTokens(userId: string): Promise<void> {
    await this.em.nativeUpdate(RefreshToken, { user: userId, revokedAt: null }, { revokedAt: new Date() });
  }

  /**
   * The user's credentials changed (token version, role, disabled, deleted, an API key revoked): every API process
   * forgets what it cached of them, so the next request is checked against the database. Call it once committed.
   */
  principalChanged(userId: string): Promise<void> {
    return this.principals.invalidate(userId);
  }

  async logout(token: string): Promise<void> {
    await this.em.nativeUpdate(RefreshToken, { tokenHash: sha256(token), revokedAt: null }, { revokedAt: new Date() });
  }

  /** Revokes every refresh token of the user and invalidates every access token issued so far. */
  async logoutEverywhere(userId: string): Promise<void> {
    await this.endAllSessions(await this.em.findOneOrFail(User, { id: userId }));
  }

  /**
   * Every credential issued to the user so far stops working: the token version moves on (access tokens) and the
   * refresh tokens are revoked. Pending changes to the user (a new password) are saved with it.
   */
  async endAllSessions(user: User): Promise<void> {
    user.tokenVersion += 1;
    await this.em.flush();
    await this.principalChanged(user.id);
    await this.revokeRefreshTokens(user.id);
  }

  /** Signs an access token and stores a new refresh token of `family` (with the id `id` when a rotation chose it). */
  async issue(user: User, family: string, id: string = randomUUID()): Promise<TokenResponseDto> {
    const claims: AccessClaims = { sub: user.id, role: user.role, typ: 'access', ver: user.tokenVersion };
    const accessToken = await this.jwt.signAsync(claims);
    const refreshToken = randomBytes(32).toString('base64url');
    this.em.create(RefreshToken, {
      id,
      user,
      family,
      tokenHash: sha256(refreshToken),
      expiresAt: new Date(Date.now() + this.config.jwt.refreshTtlSeconds * 1000),
    });
    await this.em.flush();
    return { access_token: accessToken, refresh_token: refreshToken, token_type: 'bearer', expires_in: this.config.jwt.accessTtlSeconds };
  }

  /**
   * The `jwt` strategy's check, once passport-jwt has verified the token (HS256, issuer, audience, expiry): an access
   * token of a user who exists, is enabled and has not logged out everywhere since. Any failure is the same 401.
   */
  async principalOfAccessToken(claims: AccessClaims): Promise<Principal> {
    if (claims.typ !== 'access' || typeof claims.sub !== 'string') throw unauthorized();
    const cached = this.cachedAccessToken(claims);
    if (cached) return cached;
    const epoch = this.principals.current;
    const user = await this.em.findOne(User, { id: claims.sub });
    if (!user || user.disabled) throw unauthorized();
    this.principals.setUser({ userId: user.id, username: user.username, role: user.role, tokenVersion: user.tokenVersion }, epoch);
    if ((claims.ver ?? 0) !== user.tokenVersion) throw unauthorized();
    return { userId: user.id, username: user.username, role: user.role };
  }

  /**
   * The principal of a verified access token from the cache alone (no database), or undefined: not cached, or the
   * token's version is not the cached one (then the database decides: a newer token may have been issued).
   */
  cachedAccessToken(claims: AccessClaims): Principal | undefined {
    if (claims.typ !== 'access' || typeof claims.sub !== 'string') return undefined;
    const u = this.principals.user(claims.sub);
    if (!u || (claims.ver ?? 0) !== u.tokenVersion) return undefined;
    return { userId: u.userId, username: u.username, role: u.role };
  }

  /** The principal of an `X-API-Key` from the cache alone (no database), or undefined. */
  cachedApiKey(key: string): Principal | undefined {
    if (key.length > 200) return undefined;
    const k = this.principals.key(sha256(key));
    if (!k || (k.expiresAt !== null && k.expiresAt <= Date.now())) return undefined;
    return k.principal;
  }

  /** The `api-key` strategy's check: an `X-API-Key` as its owner. Revoked and expired keys and disabled owners are refused. */
  async authenticateApiKey(key: string): Promise<Principal> {
    if (key.length > 200) throw unauthorized();
    const cached = this.cachedApiKey(key);
    if (cached) return cached;
    const epoch = this.principals.current;
    const keyHash = sha256(key);
    const row = await this.em.findOne(ApiKey, { keyHash }, { populate: ['owner'] });
    const now = Date.now();
    if (!row || row.revokedAt || row.owner.disabled || (row.expiresAt && row.expiresAt.getTime() <= now)) throw unauthorized();
    if (!row.lastUsedAt || now - row.lastUsedAt.getTime() > 60_000) {
      await this.em.nativeUpdate(ApiKey, { id: row.id }, { lastUsedAt: new Date(now) });
    }
    const scopes = row.scopes ?? [...DEFAULT_API_KEY_SCOPES];
    // An admin's key acts as an admin only when made with the admin scope; otherwise as a plain user.
    const role = row.owner.role === 'admin' && !scopes.includes('admin') ? 'user' : row.owner.role;
    const principal: Principal = { userId: row.owner.id, username: row.owner.username, role, scopes };
    this.principals.setKey(keyHash, { principal, expiresAt: row.expiresAt?.getTime() ?? null }, epoch);
    return principal;
  }
}

function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
