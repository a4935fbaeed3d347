import { Global, Module } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { DriveStorage } from './drive.storage.js';
import { LocalDiskStorage } from './local-disk.storage.js';
import { STORAGE, type StoragePort } from './storage.port.js';

@Global()
@Module({
  providers: [
    { provide: STORAGE, inject: [APP_CONFIG], useFactory: (c: AppConfig): StoragePort => new LocalDiskStorage(c.storage.dir) },
    // Google Drive, a target for finished results (not a StoragePort: Drive names files by id, not by our keys).
    { provide: DriveStorage, inject: [APP_CONFIG], useFactory: (c: AppConfig): DriveStorage => new DriveStorage(c.drive) },
  ],
  exports: [STORAGE, DriveStorage],
})
export class StorageModule {}
