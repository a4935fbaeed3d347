import { type ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { SkipThrottle, ThrottlerGuard } from '@nestjs/throttler';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { ProblemException } from '@aperture/common/problem.js';

interface ThrottlerLimitDetail {
  timeToBlockExpire: number;
  limit: number;
  ttl: number;
}

/** Exempts a route or controller from every rate limit (health probes, docs). */
export const NoRateLimit = (): MethodDecorator & ClassDecorator => SkipThrottle({ minute: true, hour: true });

/** Counts requests per principal: the user when authenticated, else the client IP. 429 carries Retry-After. */
@Injectable()
export class PrincipalThrottlerGuard extends ThrottlerGuard {
  private readonly log = new Logger('RateLimit');

  /** Fails open: an unreachable Redis must not turn every request into a 500 (readiness reports the outage). */
  protected override async handleRequest(props: Parameters<ThrottlerGuard['handleRequest']>[0]): Promise<boolean> {
    try {
      return await super.handleRequest(props);
    } catch (err) {
      if (err instanceof ProblemException) throw err;
      this.log.warn(`Rate limit not applied (storage error: ${(err as Error).message})`);
      return true;
    }
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
