import { JwtService } from '@nestjs/jwt';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { AppConfig } from '@aperture/config/config.js';
import { ProblemException } from '@aperture/common/problem.js';
import { RefreshToken } from '@aperture/database/entities/refresh-token.entity.js';
import type { User } from '@aperture/database/entities/user.entity.js';
import { fakeEm, newTestService, problemOf } from '@test/support/new-test-service.js';
import { type AccessClaims, AuthService, sha256 } from './auth.service.js';
import type { BruteForceService } from './brute-force.service.js';
import { hashPassword } from './password.js';
import type { PrincipalCache } from './principal-cache.js';

const jwtConfig = { secret: 'unit-test-secret-unit-test-secret', issuer: 'aperture', audience: 'aperture-api' };
const config = { jwt: { ...jwtConfig, accessTtlSeconds: 900, refreshTtlSeconds: 3600 }, stationPassword: null } as unknown as AppConfig;
const jwt = new JwtService({
  secret: jwtConfig.secret,
  signOptions: { algorithm: 'HS256', issuer: jwtConfig.issuer, audience: jwtConfig.audience, expiresIn: 900 },
});
const IP = '203.0.113.7';

let passwordHash: string;
beforeAll(async () => {
  passwordHash = await hashPassword('correct horse battery');
});

const alice = (over: Partial<User> = {}): User =>
  ({ id: 'u-alice', username: 'alice', role: 'user', disabled: false, tokenVersion: 3, passwordHash, ...over }) as User;

function setup() {
  const em = fakeEm();
  const bruteForce = {
    begin: vi.fn(async () => undefined),
    recordSuccess: vi.fn(async () => undefined),
  } satisfies Partial<BruteForceService>;
  // The cache off, as with PRINCIPAL_CACHE_SECONDS=0: every check here reads the (fake) database.
  const principals = {
    current: 0,
    user: () => undefined,
    key: () => undefined,
    setUser: vi.fn(),
    setKey: vi.fn(),
    invalidate: vi.fn(async () => undefined),
  } satisfies Partial<PrincipalCache>;
  const sut = newTestService(AuthService, em, {}, jwt, bruteForce, principals, config);
  return { sut, em, bruteForce };
}

describe('AuthService', () => {
  describe('verifyLogin (the local strategy) and issue', () => {
    it('returns the user and gives the counted attempt back; issue signs an access token and stores only a hash', async () => {
      const { sut, em, bruteForce } = setup();
      em.findOne.mockResolvedValue(alice());
      const user = await sut.verifyLogin('alice', 'correct horse battery', IP);
      expect(user.id).toBe('u-alice');
      expect(bruteForce.begin).toHaveBeenCalledWith([`user:alice@${IP}`, `ip:${IP}`]);
      expect(bruteForce.recordSuccess).toHaveBeenCalledWith([`user:alice@${IP}`, `ip:${IP}`]);
      const t = await sut.issue(user, 'fam-1');
      const claims = await jwt.verifyAsync<AccessClaims>(t.access_token);
      expect(claims).toMatchObject({ sub: 'u-alice', role: 'user', typ: 'access', ver: 3 });
      expect([t.token_type, t.expires_in]).toEqual(['bearer', 900]);
      expect(em.create).toHaveBeenCalledWith(RefreshToken, expect.objectContaining({ tokenHash: sha256(t.refresh_token) }));
      expect(em.flush).toHaveBeenCalled();
    });

    // Users are built inside the test: the password hash exists only once beforeAll has run.
    it.each<[string, Partial<User> | null, string]>([
      ['a wrong password', {}, 'wrong password!'],
      ['an unknown user', null, 'correct horse battery'],
      ['a disabled user', { disabled: true }, 'correct horse battery'],
      ['the station principal', { role: 'station' }, 'correct horse battery'],
    ])('refuses %s with the same 401; the attempt, counted before, is not given back', async (_what, user, password) => {
      const { sut, em, bruteForce } = setup();
      em.findOne.mockResolvedValue(user && alice(user));
      const e = await problemOf(sut.verifyLogin('Alice', password, IP), 401);
      expect(e.detail).toBe('Incorrect username or password');
      expect(bruteForce.begin).toHaveBeenCalledWith([`user:alice@${IP}`, `ip:${IP}`]);
      expect(bruteForce.recordSuccess).not.toHaveBeenCalled();
    });

    it('counts an attempt that passport-local refused before verifying (an empty field) and answers the same 401', async () => {
      const { sut, em, bruteForce } = setup();
      expect((await problemOf(sut.refuseLogin('Alice', IP), 401)).detail).toBe('Incorrect username or password');
      expect(bruteForce.begin).toHaveBeenCalledWith([`user:alice@${IP}`, `ip:${IP}`]);
      expect(em.findOne).not.toHaveBeenCalled();
    });

    it('refuses a locked-out username or address before looking at the password', async () => {
      const { sut, em, bruteForce } = setup();
      bruteForce.begin.mockRejectedValue(new ProblemException(429, 'RATE_LIMITED', 'Too many failed sign-in attempts'));
      await problemOf(sut.verifyLogin('alice', 'correct horse battery', IP), 429);
      expect(em.findOne).not.toHaveBeenCalled();
      expect(bruteForce.recordSuccess).not.toHaveBeenCalled();
    });
  });

  describe('refresh', () => {
    const row = (over: Partial<RefreshToken> = {}): RefreshToken =>
      ({
        id: 'rt-1',
        user: alice(),
        family: 'fam-1',
        tokenHash: sha256('old-token'),
        expiresAt: new Date(Date.now() + 60_000),
        revokedAt: null,
        replacedBy: null,
        ...over,
      }) as RefreshToken;

    it('rotates: the presented token is revoked and replaced by a new one of the same family, in one guarded update', async () => {
      const { sut, em } = setup();
      em.findOne.mockResolvedValue(row());
      em.nativeUpdate.mockResolvedValue(1);
      const t = await sut.refresh('old-token');
      expect(em.findOne).toHaveBeenCalledWith(RefreshToken, { tokenHash: sha256('old-token') }, { populate: ['user'] });
      const created = em.create.mock.results[0]!.value as { id: string; family: string; tokenHash: string };
      expect([created.family, created.tokenHash]).toEqual(['fam-1', sha256(t.refresh_token)]);
      expect(em.nativeUpdate).toHaveBeenCalledWith(
        RefreshToken,
        { id: 'rt-1', revokedAt: null },
        { revokedAt: expect.any(Date), replacedBy: created.id },
      );
      expect(t.refresh_token).not.toBe('old-token');
    });

    it('treats a lost rotation race as reuse: the family is revoked, nothing issued', async () => {
      const { sut, em } = setup();
      em.findOne.mockResolvedValueOnce(row()).mockResolvedValueOnce(row({ revokedAt: new Date(), replacedBy: 'rt-2' }));
      em.nativeUpdate.mockResolvedValueOnce(0);
      await problemOf(sut.refresh('old-token'), 401);
      expect(em.nativeUpdate).toHaveBeenLastCalledWith(RefreshToken, { family: 'fam-1', revokedAt: null }, { revokedAt: expect.any(Date) });
      expect(em.create).not.toHaveBeenCalled();
    });

    it('revokes the whole family when an already rotated token comes back', async () => {
      const { sut, em } = setup();
      em.findOne.mockResolvedValue(row({ revokedAt: new Date(), replacedBy: 'rt-2' }));
      await problemOf(sut.refresh('old-token'), 401);
      expect(em.nativeUpdate).toHaveBeenCalledWith(RefreshToken, { family: 'fam-1', revokedAt: null }, { revokedAt: expect.any(Date) });
      expect(em.create).not.toHaveBeenCalled();
    });

    it.each<[string, RefreshToken | null]>([
      ['an unknown token', null],
      ['a logged-out token', row({ revokedAt: new Date() })],
      ['an expired token', row({ expiresAt: new Date(Date.now() - 1) })],
      ["a disabled user's token", row({ user: alice({ disabled: true }) })],
    ])('refuses %s without revoking anything else', async (_what, found) => {
      const { sut, em } = setup();
      em.findOne.mockResolvedValue(found);
      const e = await problemOf(sut.refresh('old-token'), 401);
      expect(e.detail).toBe('Invalid or expired refresh token');
      expect(em.nativeUpdate).not.toHaveBeenCalled();
      expect(em.create).not.toHaveBeenCalled();
    });
  });

  describe('principalOfAccessToken (the jwt strategy, after passport-jwt verified the token)', () => {
    const claims = (over: Partial<AccessClaims> = {}): AccessClaims => ({ sub: 'u-alice', role: 'user', typ: 'access', ver: 3, ...over });

    it("answers the token's user as the principal", async () => {
      const { sut, em } = setup();
      em.findOne.mockResolvedValue(alice());
      expect(await sut.principalOfAccessToken(claims())).toEqual({ userId: 'u-alice', username: 'alice', role: 'user' });
    });

    it.each<[string, AccessClaims, Partial<User> | null]>([
      ['a token that is not an access token', claims({ typ: 'refresh' as 'access' }), {}],
      ['a deleted user', claims(), null],
      ['a disabled user', claims(), { disabled: true }],
      ['a token issued before "log out everywhere"', claims({ ver: 2 }), {}],
    ])('refuses %s with the same 401', async (_what, c, user) => {
      const { sut, em } = setup();
      em.findOne.mockResolvedValue(user && alice(user));
      expect((await problemOf(sut.principalOfAccessToken(c), 401)).detail).toBe('Not authenticated');
    });
  });

  it('currentUser answers the 404 "User does not exist." once the user is gone', async () => {
    const { sut, em } = setup();
    em.findOne.mockResolvedValue(null);
    expect((await problemOf(sut.currentUser({ userId: 'u-x', username: 'x', role: 'user' }), 404)).detail).toBe('User does not exist.');
  });
});
