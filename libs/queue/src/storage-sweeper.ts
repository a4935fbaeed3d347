import { Inject, Injectable, Logger } from '@nestjs/common';
import { EntityManager, type FilterQuery } from '@mikro-orm/core';
import { isUuid } from '@aperture/common/ids.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { BoothSubmission, CarouselEntry } from '@aperture/database/entities/booth.entity.js';
import { Image } from '@aperture/database/entities/image.entity.js';
import { InstalledModel } from '@aperture/database/entities/installed-model.entity.js';
import { Job } from '@aperture/database/entities/job.entity.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { JobLifecycle } from './job-lifecycle.js';

/** Which of these group names still have their row. */
type Owners = (em: EntityManager, names: string[]) => Promise<Set<string>>;
const ids =
  <T extends { id: string }>(entity: new () => T): Owners =>
  async (em, names) => {
    const rows = await em.find(entity, { id: { $in: names } } as unknown as FilterQuery<T>, { fields: ['id'] as never });
    return new Set(rows.map((r) => r.id));
  };

/**
 * Every top-level storage area (see StorageKeys) and what owns a group in it: a group whose row is gone is an orphan.
 * Group names that are not what the area holds (not a UUID, not a sha256) are left alone: nothing here deletes what
 * it does not understand.
 */
const AREAS: { area: string; valid: (name: string) => boolean; owners: Owners }[] = [
  { area: 'images', valid: isUuid, owners: ids(Image) },
  { area: 'jobs', valid: isUuid, owners: ids(Job) },
  { area: 'inputs', valid: isUuid, owners: ids(Job) },
  {
    area: 'embeddings',
    valid: (n) => /^[0-9a-f]{64}$/.test(n),
    owners: async (em, names) => {
      const rows = await em.find(Image, { sha256: { $in: names } }, { fields: ['sha256'] });
      return new Set(rows.map((r) => r.sha256));
    },
  },
  { area: 'booth', valid: isUuid, owners: ids(BoothSubmission) },
  { area: 'carousel', valid: isUuid, owners: ids(CarouselEntry) },
  // An install stores its files before it saves its row; a failed removal leaves the files of a deleted row.
  { area: 'models', valid: isUuid, owners: ids(InstalledModel) },
];

export interface StorageSweepReport {
  /** Orphaned groups removed, per area. */
  removed: Record<string, number>;
  /** Failed or cancelled jobs deleted past FAILED_JOB_RETENTION_DAYS. */
  expiredJobs: number;
}

/**
 * Removes what no row references any more: files a deleted job's attempt wrote after the delete, uploads whose job
 * was never saved, the files of a model install that never saved its row, leftovers of a crash between a row's delete
 * and its files'. Only groups older than STORAGE_ORPHAN_GRACE_MS count (an upload is stored just before its row is
 * saved). Also deletes failed and cancelled jobs past FAILED_JOB_RETENTION_DAYS with their files (booth jobs belong to
 * their submission and stay). Concurrent sweeps by several workers are safe: every step is idempotent.
 */
@Injectable()
export class StorageSweeper {
  private readonly logger = new Logger('StorageSweeper');

  constructor(
    private readonly orm: EntityManager,
    private readonly lifecycle: JobLifecycle,
    @Inject(STORAGE) private readonly storage: StoragePort,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async sweep(now = Date.now()): Promise<StorageSweepReport> {
    const em = this.orm.fork();
    const report: StorageSweepReport = { removed: {}, expiredJobs: 0 };
    const days = this.config.jobs.failedJobRetentionDays;
    if (days > 0) {
      report.expiredJobs = await this.lifecycle.deleteJobs(em, {
        status: { $in: ['failed', 'cancelled'] },
        finishedAt: { $lt: new Date(now - days * 86_400_000) },
        type: { $ne: 'booth.xray' },
      });
    }
    for (const { area, valid, owners } of AREAS) {
      const old = (await this.storage.listGroups(area)).filter(
        (g) => valid(g.name) && now - g.modifiedAt.getTime() >= this.config.jobs.orphanGraceMs,
      );
      let removed = 0;
      for (let i = 0; i < old.length; i += 500) {
        const chunk = old.slice(i, i + 500).map((g) => g.name);
        const alive = await owners(em, chunk);
        for (const name of chunk.filter((n) => !alive.has(n))) {
          await this.storage.deletePrefix(`${area}/${name}`);
          removed++;
        }
      }
      if (removed) report.removed[area] = removed;
    }
    if (report.expiredJobs || Object.keys(report.removed).length) {
      this.logger.log(`Storage sweep: ${JSON.stringify(report)}`);
    }
    return report;
  }
}
