import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { StorageSweeper } from '@aperture/queue/storage-sweeper.js';

/** Runs the storage sweep every STORAGE_SWEEP_INTERVAL_MS in each worker (one at a time per process). */
@Injectable()
export class StorageSweepService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('StorageSweep');
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly sweeper: StorageSweeper,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.run(), this.config.jobs.storageSweepIntervalMs);
    this.timer.unref();
  }

  run(): Promise<void> {
    this.running ??= this.sweeper
      .sweep()
      .then(() => undefined)
      .catch((e: unknown) => this.logger.warn(`Storage sweep failed: ${(e as Error).message}`))
      .finally(() => (this.running = null));
    return this.running;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
