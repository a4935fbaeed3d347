import { Inject, Injectable, Module } from '@nestjs/common';
import { MulterModule } from '@nestjs/platform-express';
import { EntityManager } from '@mikro-orm/core';
import type { Request } from 'express';
import type { Principal } from '@aperture/common/auth.decorators.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { cappedStream, quotaExceeded, type RoomFor, TempFileStorage } from './upload-files.js';

/** A user's storage quota (USER_QUOTA_MB): the bytes of their images, job inputs and job artifacts, as the rows record them. */
@Injectable()
export class UploadQuota {
  constructor(
    private readonly em: EntityManager,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** What the user's stored files take, in bytes. */
  async usedBytes(userId: string): Promise<number> {
    const rows: { used: number | string | null }[] = await this.em
      .getConnection()
      .execute(
        'select (select coalesce(sum(size_bytes), 0) from images where owner_id = ?)' +
          ' + (select coalesce(sum(a.size_bytes), 0) from job_artifacts a join jobs j on j.id = a.job_id where j.owner_id = ?)' +
          ' + (select coalesce(sum(input_bytes), 0) from jobs where owner_id = ?) as used',
        [userId, userId, userId],
      );
    return Number(rows[0]?.used ?? 0);
  }

  /** Refuses (413) bytes that arrived outside multipart (base64 in JSON) and would take the user past the quota. */
  async assertRoom(userId: string, incomingBytes: number): Promise<void> {
    const quota = this.config.uploads.userQuotaBytes;
    if (!quota) return;
    const used = await this.usedBytes(userId);
    if (used + incomingBytes > quota) throw quotaExceeded(used, quota, incomingBytes);
  }

  /** How much more the caller of a request may upload; null without a quota (or without a signed-in caller). */
  readonly roomFor: RoomFor = async (req: Request & { principal?: Principal }) => {
    const quota = this.config.uploads.userQuotaBytes;
    const userId = req.principal?.userId;
    if (!quota || !userId) return null;
    const used = await this.usedBytes(userId);
    return { room: quota - used, used, quota };
  };
}

/** Provides the quota to the multer settings of every upload route. */
@Module({ providers: [UploadQuota], exports: [UploadQuota] })
export class UploadsModule {}

export interface UploadLimits {
  files?: number;
  fields?: number;
  fieldSize?: number;
  /** Whether the files count against the caller's quota (false where nothing is kept, e.g. a hand-off to Drive). */
  quota?: boolean;
  /** The largest file (bytes) when it is not IMAGE_MAX_BYTES (model files). */
  fileSize?: (c: AppConfig) => number;
}

/**
 * Multer settings of every upload route: each file streamed to a temporary file (removed when the request ends),
 * IMAGE_MAX_BYTES per file and UPLOAD_MAX_REQUEST_MB per request, refused while streaming, and the caller's quota.
 * A route that takes more files or longer fields (a batch) passes its own counts.
 */
export const uploadMulter = (limits: UploadLimits = {}) =>
  MulterModule.registerAsync({
    imports: [UploadsModule],
    inject: [APP_CONFIG, UploadQuota],
    useFactory: (c: AppConfig, quota: UploadQuota) => ({
      storage: new TempFileStorage(c.uploads.tmpDir, limits.quota === false ? () => Promise.resolve(null) : quota.roomFor),
      streamHandler: cappedStream(c.uploads.maxRequestBytes),
      limits: {
        fileSize: limits.fileSize?.(c) ?? c.images.maxBytes,
        files: limits.files ?? 1,
        fields: limits.fields ?? 20,
        fieldSize: limits.fieldSize ?? 16 * 1024,
      },
    }),
  });
