import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { Principal } from '@aperture/common/auth.decorators.js';
import type { UserRole } from '@aperture/common/roles.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { REDIS, RedisKeys } from '@aperture/redis/redis.module.js';

/** What a bearer token is checked against: its user, when enabled (a disabled user is never cached). */
export interface CachedUser {
  userId: string;
  username: string;
  role: UserRole;
  tokenVersion: number;
}

/** An API key's principal and when the key expires (ms since the epoch; null: never). */
export interface CachedKey {
  principal: Principal;
  expiresAt: number | null;
}

interface Entry {
  value: CachedUser | CachedKey;
  userId: string;
  until: number;
}

/** At most this many users and keys in memory; past it the oldest entry goes. */
const MAX_ENTRIES = 10_000;
const CHANNEL = 'principal-invalidate';

/**
 * Verified callers in this API process's memory for PRINCIPAL_CACHE_SECONDS, so a bearer token or API key does not
 * read the database on every request. A user's entries (their bearer-token state and all their API keys) go at once,
 * in every API process, whenever the user changes in a way a credential check depends on (`invalidate`: the token
 * version moved on, the role changed, the user was disabled or deleted, a key was revoked): the change is published
 * on a Redis channel that each process follows with one subscriber connection. A process that loses that connection
 * empties its whole cache when it is back (it may have missed a message), and an entry read from the database while
 * an invalidation arrived is not stored.
 */
@Injectable()
export class PrincipalCache implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('PrincipalCache');
  private readonly entries = new Map<string, Entry>();
  private readonly byUser = new Map<string, Set<string>>();
  private readonly ttlMs: number;
  private readonly channel: string;
  private subscriber: Redis | null = null;
  private wasDisconnected = false;
  /** Moves on with every invalidation: a database read that began before one must not refill the cache. */
  private epoch = 0;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    keys: RedisKeys,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.ttlMs = config.principalCache.ttlSeconds * 1000;
    this.channel = keys.key(CHANNEL);
  }

  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  async onModuleInit(): Promise<void> {
    if (!this.enabled) return;
    const sub = this.redis.duplicate({ connectionName: 'aperture-principals', maxRetriesPerRequest: null, lazyConnect: true });
    this.subscriber = sub;
    sub.on('message', (_channel: string, userId: string) => this.drop(userId));
    sub.on('error', () => undefined); // reconnects by itself; the cache is emptied when it is back
    sub.on('close', () => {
      this.wasDisconnected = true;
      this.clear(); // while it is away, nothing may be served from memory that an invalidation could have ended
    });
    sub.on('ready', () => {
      if (this.wasDisconnected) this.clear();
    });
    try {
      await sub.connect();
      await sub.subscribe(this.channel);
    } catch (err) {
      this.log.warn(`Cannot follow principal invalidations (${(err as Error).message}); the cache stays off until Redis is back`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = null;
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }

  /** The state of an epoch, to hand to `set…` after a database read. */
  get current(): number {
    return this.epoch;
  }

  /** Only while the invalidation channel is followed: without it a change elsewhere could go unnoticed. */
  private get usable(): boolean {
    return this.enabled && this.subscriber?.status === 'ready';
  }

  user(userId: string): CachedUser | undefined {
    return this.get(`u:${userId}`) as CachedUser | undefined;
  }

  key(keyHash: string): CachedKey | undefined {
    return this.get(`k:${keyHash}`) as CachedKey | undefined;
  }

  setUser(value: CachedUser, epoch: number): void {
    this.set(`u:${value.userId}`, value.userId, value, epoch);
  }

  setKey(keyHash: string, value: CachedKey, epoch: number): void {
    this.set(`k:${keyHash}`, value.principal.userId, value, epoch);
  }

  /**
   * The user's credentials changed: their entries go here at once and, through Redis, in every other API process.
   * Call it after the change is committed.
   */
  async invalidate(userId: string): Promise<void> {
    this.drop(userId);
    if (!this.enabled) return;
    try {
      await this.redis.publish(this.channel, userId);
    } catch (err) {
      // The other processes may keep the old state for up to PRINCIPAL_CACHE_SECONDS.
      this.log.error(`Could not publish a principal invalidation for user ${userId}: ${(err as Error).message}`);
    }
  }

  /** Forgets the user's entries in this process. */
  drop(userId: string): void {
    this.epoch++;
    const keys = this.byUser.get(userId);
    if (!keys) return;
    for (const k of keys) this.entries.delete(k);
    this.byUser.delete(userId);
  }

  clear(): void {
    this.epoch++;
    this.entries.clear();
    this.byUser.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private get(k: string): CachedUser | CachedKey | undefined {
    if (!this.usable) return undefined;
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.until <= Date.now()) {
      this.remove(k, e);
      return undefined;
    }
    return e.value;
  }

  private set(k: string, userId: string, value: CachedUser | CachedKey, epoch: number): void {
    if (!this.usable || epoch !== this.epoch) return;
    const old = this.entries.get(k);
    if (old) this.remove(k, old);
    while (this.entries.size >= MAX_ENTRIES) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.remove(oldestKey, oldest);
    }
    this.entries.set(k, { value, userId, until: Date.now() + this.ttlMs });
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(k);
  }

  private remove(k: string, e: Entry): void {
    this.entries.delete(k);
    const set = this.byUser.get(e.userId);
    set?.delete(k);
    if (set?.size === 0) this.byUser.delete(e.userId);
  }
}
