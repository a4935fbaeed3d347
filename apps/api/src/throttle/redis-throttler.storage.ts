import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Redis } from 'ioredis';

interface ThrottlerStorageRecord {
  totalHits: number;
  timeToExpire: number;
  isBlocked: boolean;
  timeToBlockExpire: number;
}

/** One counter of `gate`: its key (as the guard generated it), window and limit in ms, and the throttler's name. */
export interface GateCounter {
  key: string;
  ttl: number;
  limit: number;
  blockDuration: number;
  throttlerName: string;
}

/** What `gate` found: too many bad credentials from the address (nothing counted), or each counter's record. */
export type GateOutcome = { badCredentials: true } | { badCredentials: false; records: ThrottlerStorageRecord[] };

/**
 * Fixed-window counters in Redis, atomic in one script, so limits hold across API replicas. For each (hits, block)
 * key pair, with ARGV window ms, limit, block ms: hits, ms left in the window, and a block (of block ms) once the limit
 * is passed. ARGV[1] > 0 first reads the two bad-credential counters of a client address (KEYS[1], KEYS[2]: this
 * minute's and the last one's, see BruteForceService) against that limit: past it, nothing is counted and -1 is the
 * answer. ARGV[2] is the number of leading keys that are not counter pairs (0 or 2).
 */
const GATE = `
local skip = tonumber(ARGV[2])
if tonumber(ARGV[1]) > 0 then
  local bad = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(redis.call('GET', KEYS[2]) or '0')
  if bad >= tonumber(ARGV[1]) then return -1 end
end
local out = {}
local a = 3
for i = skip + 1, #KEYS, 2 do
  local hits = redis.call('INCR', KEYS[i])
  if hits == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[a]) end
  local ttl = redis.call('PTTL', KEYS[i])
  local blockTtl = redis.call('PTTL', KEYS[i + 1])
  if blockTtl <= 0 and hits > tonumber(ARGV[a + 1]) then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[a + 2])
    blockTtl = tonumber(ARGV[a + 2])
  end
  out[#out + 1] = hits
  out[#out + 1] = ttl
  out[#out + 1] = blockTtl
  a = a + 3
end
return out
`;

type GateCommand = (numKeys: number, ...args: (string | number)[]) => Promise<number | number[]>;

export class RedisThrottlerStorage implements ThrottlerStorage {
  private readonly run: GateCommand;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    // A script defined once per connection: EVALSHA with the script's hash, EVAL only when Redis does not have it yet.
    if (!('apertureGate' in redis)) redis.defineCommand('apertureGate', { lua: GATE });
    const command = (redis as unknown as { apertureGate: GateCommand }).apertureGate;
    this.run = command.bind(redis);
  }

  async increment(key: string, ttl: number, limit: number, blockDuration: number, throttlerName: string): Promise<ThrottlerStorageRecord> {
    const outcome = await this.gate([{ key, ttl, limit, blockDuration, throttlerName }]);
    if (outcome.badCredentials) throw new Error('unreachable: no bad-credential check was asked for');
    return outcome.records[0]!;
  }

  /**
   * Every counter of one request, and optionally an address's bad-credential check first, in one Redis round trip.
   * badCredential: the address's two counters and their limit (BruteForceService.badCredentialWindow).
   */
  async gate(counters: GateCounter[], badCredential?: { keys: [string, string]; limit: number }): Promise<GateOutcome> {
    const keys: string[] = badCredential ? [...badCredential.keys] : [];
    const args: (string | number)[] = [badCredential?.limit ?? 0, keys.length];
    for (const c of counters) {
      const base = `${this.prefix}:throttle:${c.throttlerName}:${c.key}`;
      keys.push(`${base}:hits`, `${base}:block`);
      args.push(c.ttl, c.limit, c.blockDuration || c.ttl);
    }
    const answer = await this.run(keys.length, ...keys, ...args);
    if (answer === -1) return { badCredentials: true };
    const flat = answer as number[];
    const records = counters.map((_, i) => {
      const [hits, ttlMs, blockMs] = [flat[3 * i]!, flat[3 * i + 1]!, flat[3 * i + 2]!];
      const isBlocked = blockMs > 0;
      return {
        totalHits: hits,
        timeToExpire: Math.max(0, Math.ceil(ttlMs / 1000)),
        isBlocked,
        timeToBlockExpire: isBlocked ? Math.ceil(blockMs / 1000) : 0,
      };
    });
    return { badCredentials: false, records };
  }
}
