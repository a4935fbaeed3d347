import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { ProblemException } from '@aperture/common/problem.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';

// Counts one sign-in attempt against every subject at once, before the password is checked, so parallel guesses
// cannot slip past the lock. KEYS are (count, lock) pairs; ARGV: window seconds, max lock seconds, one limit per pair.
// A locked subject refuses the attempt (its remaining lock in ms) without counting it; otherwise every count goes up
// and a count at or past its limit locks that subject for 2^(count-limit) seconds (capped) for the attempts after.
const BEGIN = `
local wait = 0
for i = 1, #KEYS, 2 do
  local t = redis.call('PTTL', KEYS[i + 1])
  if t > wait then wait = t end
end
if wait > 0 then return wait end
for i = 1, #KEYS, 2 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  local limit = tonumber(ARGV[2 + (i + 1) / 2])
  if n >= limit then
    redis.call('SET', KEYS[i + 1], '1', 'EX', math.min(2 ^ (n - limit), tonumber(ARGV[2])))
  end
end
return 0`;

// A successful sign-in: the (username, address) pair starts afresh; the address gets its attempt back.
const SUCCEED = `
redis.call('DEL', KEYS[1], KEYS[2])
if tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then redis.call('DECR', KEYS[3]) end
return 0`;

/**
 * Brute-force protection for credential endpoints, in Redis (so it holds across replicas). Two subjects per attempt:
 * the (username, client address) pair, locked after BRUTE_FORCE_MAX_FAILURES tries in the window, and the address
 * alone, locked after BRUTE_FORCE_MAX_FAILURES_PER_IP. A remote address can lock a username only for itself, so
 * nobody can lock the shared booth station (or anyone) out from elsewhere. Each try is counted before the password
 * is checked, so parallel guesses all count; a successful sign-in gives its try back. Locked: 429 + Retry-After.
 */
const DEFERRED_CHECK = Symbol('deferredCredentialCheck');

/**
 * The bad-credential check of a request whose principal was known without a lookup (a cached one) is left to the rate
 * limiter, which reads it in the same Redis round trip as its counters: the client address to check, set here.
 */
export function deferCredentialCheck(req: object, ip: string): void {
  (req as { [DEFERRED_CHECK]?: string })[DEFERRED_CHECK] = ip;
}

/** The address whose bad-credential check was deferred (once: taking it clears it), or undefined. */
export function takeDeferredCredentialCheck(req: object): string | undefined {
  const r = req as { [DEFERRED_CHECK]?: string };
  const ip = r[DEFERRED_CHECK];
  // Cleared, not deleted: a delete turns the request object into a dictionary (an allocation, and slower property
  // reads for the rest of the request).
  if (ip !== undefined) r[DEFERRED_CHECK] = undefined;
  return ip;
}

@Injectable()
export class BruteForceService {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** The subjects of one attempt: the (username, address) pair, then the address. */
  static subjects(username: string, ip: string): [pair: string, ip: string] {
    return [`user:${username.toLowerCase()}@${ip}`, `ip:${ip}`];
  }

  /** Counts an attempt before the credentials are checked; 429 while any subject is locked. */
  async begin(subjects: [string, string]): Promise<void> {
    const { maxFailures, maxFailuresPerIp, windowSeconds, maxLockSeconds } = this.config.bruteForce;
    const keys = subjects.flatMap((s) => [this.keys.key('bf', 'fail', s), this.keys.key('bf', 'lock', s)]);
    const wait = Number(await this.redis.eval(BEGIN, keys.length, ...keys, windowSeconds, maxLockSeconds, maxFailures, maxFailuresPerIp));
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new ProblemException(429, 'RATE_LIMITED', `Too many failed sign-in attempts; try again in ${seconds} s.`, {
        retry_after: seconds,
      });
    }
  }

  /** The credentials were right: the pair's count and lock go, the address's count gets this attempt back. */
  async recordSuccess([pair, ip]: [string, string]): Promise<void> {
    const k = (kind: string, s: string): string => this.keys.key('bf', kind, s);
    await this.redis.eval(SUCCEED, 3, k('fail', pair), k('lock', pair), k('fail', ip));
  }

  /**
   * Bad bearer tokens and API keys, per client address: checked before a credential is looked up, so a flood of
   * made-up ones is refused without touching the database. Counted per minute; the limit applies to this minute and
   * the last one together, so it does not reset all at once on the minute.
   */
  async assertCredentialsAllowed(ip: string): Promise<void> {
    const window = this.badCredentialWindow(ip);
    const [cur, prev] = await this.redis.mget(...window.keys);
    if (Number(cur ?? 0) + Number(prev ?? 0) >= window.limit) throw this.tooManyBadCredentials();
  }

  /**
   * The counters `assertCredentialsAllowed` reads for an address (this minute's, the last one's) and their limit, for a
   * caller that reads them in its own Redis round trip (the rate limiter, for a principal known without a lookup).
   */
  badCredentialWindow(ip: string): { keys: [string, string]; limit: number } {
    const minute = Math.floor(Date.now() / 60_000);
    return {
      keys: [this.badCredentialKey(ip, minute), this.badCredentialKey(ip, minute - 1)],
      limit: this.config.bruteForce.badCredentialsPerMinute,
    };
  }

  /** The 429 of an address past BAD_CREDENTIALS_PER_MINUTE. */
  tooManyBadCredentials(): ProblemException {
    const minute = Math.floor(Date.now() / 60_000);
    const retryAfter = Math.max(1, Math.ceil(((minute + 1) * 60_000 - Date.now()) / 1000));
    return new ProblemException(429, 'RATE_LIMITED', `Too many requests with bad credentials; try again in ${retryAfter} s.`, {
      retry_after: retryAfter,
    });
  }

  async recordBadCredential(ip: string): Promise<void> {
    const key = this.badCredentialKey(ip, Math.floor(Date.now() / 60_000));
    await this.redis.multi().incr(key).expire(key, 180).exec();
  }

  private badCredentialKey(ip: string, minute: number): string {
    return this.keys.key('bf', 'badcred', ip, String(minute));
  }
}
