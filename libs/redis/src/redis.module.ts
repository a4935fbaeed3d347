import { Global, Inject, Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';

export const REDIS = Symbol('REDIS');

/** Builds namespaced keys so several deployments (and test runs) can share one Redis. */
@Injectable()
export class RedisKeys {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}
  key(...parts: string[]): string {
    return [this.config.redis.prefix, ...parts].join(':');
  }
}

@Injectable()
class RedisCloser implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}
  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

export function createRedis(url: string, name: string): Redis {
  return new Redis(url, { connectionName: name, maxRetriesPerRequest: 2, enableReadyCheck: true });
}

@Global()
@Module({
  providers: [
    { provide: REDIS, inject: [APP_CONFIG], useFactory: (c: AppConfig): Redis => createRedis(c.redis.url, 'aperture') },
    RedisKeys,
    RedisCloser,
  ],
  exports: [REDIS, RedisKeys],
})
export class RedisModule {}
