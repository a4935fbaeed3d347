import 'reflect-metadata';
import { SkipThrottle, Throttle } from '@nestjs/throttler';
import { describe, expect, it } from 'vitest';
import { THROTTLER_META } from './principal-throttler.guard.js';

describe("the throttler decorators' metadata keys the guard reads", () => {
  it('are the ones @nestjs/throttler writes', () => {
    class Routes {
      @SkipThrottle({ minute: true })
      skipped(): void {}

      @Throttle({ hour: { limit: 5, ttl: 1000, blockDuration: 2000 } })
      limited(): void {}
    }
    const proto = Routes.prototype;
    expect(Reflect.getMetadata(`${THROTTLER_META.skip}minute`, proto.skipped)).toBe(true);
    expect(Reflect.getMetadata(`${THROTTLER_META.limit}hour`, proto.limited)).toBe(5);
    expect(Reflect.getMetadata(`${THROTTLER_META.ttl}hour`, proto.limited)).toBe(1000);
    expect(Reflect.getMetadata(`${THROTTLER_META.blockDuration}hour`, proto.limited)).toBe(2000);
    expect(Reflect.getMetadataKeys(proto.limited)).toEqual(
      expect.arrayContaining([`${THROTTLER_META.tracker}hour`, `${THROTTLER_META.keyGenerator}hour`]),
    );
  });
});
