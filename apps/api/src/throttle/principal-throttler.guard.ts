import { type ExecutionContext, Inject, Injectable, Logger } from '@nestjs/common';
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

/** Exempts a route or controller from every rate limit (health probes, docs). */
export const NoRateLimit = (): MethodDecorator & ClassDecorator => SkipThrottle({ minute: true, hour: true });

/**
 * Counts requests per principal: the user when authenticated, else the client IP. 429 carries Retry-After.
 * Every counter of a request (the minute's and the hour's), and the bad-credential check of its client address when the
 * auth guard left it here (a cached principal), are one Redis round trip: the base guard's loop only collects what
 * each throttler would count (route overrides and skips included), then one script counts them all.
 */
@Injectable()
export class PrincipalThrottlerGuard extends ThrottlerGuard {
  private readonly log = new Logger('RateLimit');
  /** The counters of the requests being checked, collected by handleRequest during the base guard's loop. */
  private readonly collecting = new WeakMap<object, ThrottlerRequest[]>();
  @Inject(BruteForceService) private readonly bruteForce!: BruteForceService;

  override async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const { req, res } = this.getRequestResponse(ctx);
    const planned: ThrottlerRequest[] = [];
    this.collecting.set(req, planned);
    try {
      await super.canActivate(ctx);
    } finally {
      this.collecting.delete(req);
    }
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

  /** During the base guard's loop: notes what this throttler counts (the counting itself is canActivate's). */
  protected override async handleRequest(props: ThrottlerRequest): Promise<boolean> {
    const { req } = this.getRequestResponse(props.context);
    const planned = this.collecting.get(req);
    if (planned) {
      planned.push(props);
      return true;
    }
    return super.handleRequest(props);
  }

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
