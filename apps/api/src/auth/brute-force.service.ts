import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { ProblemException } from '@aperture/common/problem.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';

// Counts a failure; once the count reaches the limit, locks the key for 2^(count-limit) seconds (capped).
const FAIL = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local limit = tonumber(ARGV[2])
if n >= limit then
  local lock = math.min(2 ^ (n - limit), tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], '1', 'EX', lock)
end
return n`;

/**
 * Brute-force protection for credential endpoints, per username and per client IP, in Redis (so it holds across
 * replicas): after BRUTE_FORCE_MAX_FAILURES failures for a username (BRUTE_FORCE_MAX_FAILURES_PER_IP for an address)
 * in the window, each further try waits longer (429 + Retry-After).
 */
@Injectable()
export class BruteForceService {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  static subjects(username: string | null, ip: string): string[] {
    return [...(username ? [`user:${username.toLowerCase()}`] : []), `ip:${ip}`];
  }

  async assertAllowed(subjects: string[]): Promise<void> {
    let wait = 0;
    for (const s of subjects) wait = Math.max(wait, await this.redis.pttl(this.keys.key('bf', 'lock', s)));
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new ProblemException(429, 'RATE_LIMITED', `Too many failed sign-in attempts; try again in ${seconds} s.`, {
        retry_after: seconds,
      });
    }
  }

  async recordFailure(subjects: string[]): Promise<void> {
    const { maxFailures, maxFailuresPerIp, windowSeconds, maxLockSeconds } = this.config.bruteForce;
    for (const s of subjects) {
      const limit = s.startsWith('ip:') ? maxFailuresPerIp : maxFailures;
      await this.redis.eval(FAIL, 2, this.keys.key('bf', 'fail', s), this.keys.key('bf', 'lock', s), windowSeconds, limit, maxLockSeconds);
    }
  }

  /** A successful sign-in clears the username's counter (not the IP's: one good account must not unlock guessing others). */
  async recordSuccess(username: string): Promise<void> {
    const s = `user:${username.toLowerCase()}`;
    await this.redis.del(this.keys.key('bf', 'fail', s), this.keys.key('bf', 'lock', s));
  }
}
