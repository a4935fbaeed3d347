import { type ExecutionContext, Inject, Injectable, Logger } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import { SkipThrottle, ThrottlerGuard } from '@nestjs/throttler';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { ProblemException } from '@aperture/common/problem.js';
import { BruteForceService, takeDeferredCredentialCheck } from '../auth/brute-force.service.js';
import { type GateCounter, RedisThrottlerStorage } from './redis-throttler.storage.js';

interface ThrottlerLimitDetail {
  timeToBlockExpire: number;
  limit: number;
  ttl: number;
}

type ThrottlerRequest = Parameters<ThrottlerGuard['handleRequest']>[0];
type ThrottlerOptions = ThrottlerGuard['throttlers'][number];
/** A limit, window or block duration: a number, or a function of the request (as @nestjs/throttler allows). */
type Resolvable = ThrottlerOptions['limit'];

/** The metadata keys of @nestjs/throttler's decorators (`<key><throttler name>`; not exported by the package). */
export const THROTTLER_META = {
  skip: 'THROTTLER:SKIP',
  limit: 'THROTTLER:LIMIT',
  ttl: 'THROTTLER:TTL',
  blockDuration: 'THROTTLER:BLOCK_DURATION',
  tracker: 'THROTTLER:TRACKER',
  keyGenerator: 'THROTTLER:KEY_GENERATOR',
} as const;

/** What one throttler counts on one route, read once from the decorators. */
interface RoutePlan {
  throttler: ThrottlerOptions;
  skip: boolean;
  limit: Resolvable;
  ttl: Resolvable;
  blockDuration: Resolvable | undefined;
  getTracker: ThrottlerRequest['getTracker'];
  generateKey: ThrottlerRequest['generateKey'];
}

/** As the base guard reads a value: a function of the request is called; a numeric string is a number. */
async function resolveNumber(ctx: ExecutionContext, value: Resolvable, option: string, throttler: string): Promise<number> {
  const v: unknown = typeof value === 'function' ? await value(ctx) : value;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || Number.isNaN(n)) {
    throw new Error(`Invalid "${option}" for the "${throttler}" throttler: expected a number, got ${JSON.stringify(v)}.`);
  }
  return n;
}

/** Exempts a route or controller from every rate limit (health probes, docs). */
export const NoRateLimit = (): MethodDecorator & ClassDecorator => SkipThrottle({ minute: true, hour: true });

/**
 * Counts requests per principal: the user when authenticated, else the client IP. 429 carries Retry-After.
 * Every counter of a request (the minute's and the hour's), and the bad-credential check of its client address when the
 * auth guard left it here (a cached principal), are one Redis round trip: what each throttler counts (route overrides
 * and skips included, read once per route rather than by the base guard's ten metadata reads a request) is collected
 * first, then one script counts them all.
 */
@Injectable()
export class PrincipalThrottlerGuard extends ThrottlerGuard {
  private readonly log = new Logger('RateLimit');
  @Inject(BruteForceService) private readonly bruteForce!: BruteForceService;

  override async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const { req, res } = this.getRequestResponse(ctx);
    const planned = (await this.shouldSkip(ctx)) ? [] : await this.countersOf(ctx);
    const ip = takeDeferredCredentialCheck(req);
    if (!planned.length && ip === undefined) return true;
    const counters: GateCounter[] = [];
    for (const p of planned) {
      const key = p.generateKey(ctx, await p.getTracker(req, ctx), p.throttler.name!);
      counters.push({ key, ttl: p.ttl, limit: p.limit, blockDuration: p.blockDuration, throttlerName: p.throttler.name! });
    }
    const badCredential = ip === undefined ? undefined : this.bruteForce.badCredentialWindow(ip);
    let outcome: Awaited<ReturnType<RedisThrottlerStorage['gate']>>;
    try {
      outcome = await this.gate(counters, badCredential);
    } catch (err) {
      // Fails open: an unreachable Redis must not turn every request into a 500 (readiness reports the outage).
      this.log.warn(`Rate limit not applied (storage error: ${(err as Error).message})`);
      return true;
    }
    if (outcome.badCredentials) throw this.bruteForce.tooManyBadCredentials();
    for (const [i, p] of planned.entries()) {
      const r = outcome.records[i]!;
      const suffix = p.throttler.name === 'default' ? '' : `-${p.throttler.name}`;
      const setHeaders = p.throttler.setHeaders ?? this.commonOptions.setHeaders ?? true;
      if (r.isBlocked) {
        if (setHeaders) this.setResponseHeader(res, `Retry-After${suffix}`, r.timeToBlockExpire);
        await this.throwThrottlingException(ctx, { limit: p.limit, ttl: p.ttl, timeToBlockExpire: r.timeToBlockExpire });
      }
      if (setHeaders) {
        this.setResponseHeader(res, `${this.headerPrefix}-Limit${suffix}`, p.limit);
        this.setResponseHeader(res, `${this.headerPrefix}-Remaining${suffix}`, Math.max(0, p.limit - r.totalHits));
        this.setResponseHeader(res, `${this.headerPrefix}-Reset${suffix}`, r.timeToExpire);
      }
    }
    return true;
  }

  /**
   * What each throttler counts for this request, as the base guard's loop would find it (route and controller
   * overrides, skips, skipIf), without its per-request metadata reads: the decorators are read once per route.
   */
  private async countersOf(ctx: ExecutionContext): Promise<ThrottlerRequest[]> {
    const out: ThrottlerRequest[] = [];
    for (const t of this.routePlan(ctx.getClass(), ctx.getHandler())) {
      const skipIf = t.throttler.skipIf ?? this.commonOptions.skipIf;
      if (t.skip || skipIf?.(ctx)) continue;
      const name = t.throttler.name!;
      // A plain number (the usual case) without a promise each
      const num = async (v: Resolvable, option: string): Promise<number> => resolveNumber(ctx, v, option, name);
      const limit = typeof t.limit === 'number' ? t.limit : await num(t.limit, 'limit');
      const ttl = typeof t.ttl === 'number' ? t.ttl : await num(t.ttl, 'ttl');
      const block = t.blockDuration ?? ttl;
      const blockDuration = typeof block === 'number' ? block : await num(block, 'blockDuration');
      out.push({ context: ctx, limit, ttl, throttler: t.throttler, blockDuration, getTracker: t.getTracker, generateKey: t.generateKey });
    }
    return out;
  }

  private routePlan(controller: object, handler: object): RoutePlan[] {
    let byHandler = this.plans.get(controller);
    if (!byHandler) this.plans.set(controller, (byHandler = new WeakMap()));
    let plan = byHandler.get(handler);
    if (!plan) {
      const targets = [handler, controller] as Parameters<Reflector['getAllAndOverride']>[1];
      plan = this.throttlers.map((throttler) => {
        const meta = <T>(key: string): T | undefined => this.reflector.getAllAndOverride<T | undefined>(key + throttler.name, targets);
        return {
          throttler,
          skip: Boolean(meta<boolean>(THROTTLER_META.skip)),
          limit: meta<Resolvable>(THROTTLER_META.limit) ?? throttler.limit,
          ttl: meta<Resolvable>(THROTTLER_META.ttl) ?? throttler.ttl,
          blockDuration: meta<Resolvable>(THROTTLER_META.blockDuration) ?? throttler.blockDuration,
          getTracker:
            meta<ThrottlerRequest['getTracker']>(THROTTLER_META.tracker) || throttler.getTracker || this.commonOptions.getTracker!,
          generateKey:
            meta<ThrottlerRequest['generateKey']>(THROTTLER_META.keyGenerator) || throttler.generateKey || this.commonOptions.generateKey!,
        };
      });
      byHandler.set(handler, plan);
    }
    return plan;
  }

  private readonly plans = new WeakMap<object, WeakMap<object, RoutePlan[]>>();

  /** One script for the Redis storage; any other storage (none is configured) counts one throttler at a time. */
  private async gate(counters: GateCounter[], badCredential?: { keys: [string, string]; limit: number }) {
    if (this.storageService instanceof RedisThrottlerStorage) return this.storageService.gate(counters, badCredential);
    if (badCredential) throw new Error('The bad-credential check needs the Redis throttler storage');
    const records = [];
    for (const c of counters) records.push(await this.storageService.increment(c.key, c.ttl, c.limit, c.blockDuration, c.throttlerName));
    return { badCredentials: false as const, records };
  }

  protected override async getTracker(req: Record<string, unknown>): Promise<string> {
    const principal = req['principal'] as Principal | undefined;
    if (principal) return `user:${principal.userId}`;
    return `ip:${String(req['ip'] ?? 'unknown')}`;
  }

  /** One bucket per principal for the whole API (the default would count each route separately). */
  protected override generateKey(_ctx: ExecutionContext, tracker: string, throttlerName: string): string {
    return `${throttlerName}:${tracker}`;
  }

  protected override async throwThrottlingException(ctx: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    const res = ctx.switchToHttp().getResponse<{ setHeader(name: string, value: string): void }>();
    const retryAfter = Math.max(1, detail.timeToBlockExpire);
    res.setHeader('Retry-After', String(retryAfter));
    const window = detail.ttl >= 3600000 ? 'hour' : detail.ttl >= 60000 ? 'minute' : `${Math.round(detail.ttl / 1000)} s`;
    throw new ProblemException(
      429,
      'RATE_LIMITED',
      `Rate limit of ${detail.limit} requests per ${window} exceeded; retry after ${retryAfter} s.`,
    );
  }
}
