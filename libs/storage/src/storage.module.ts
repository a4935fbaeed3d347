import { Global, Module } from '@nestjs/common';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { LocalDiskStorage } from './local-disk.storage.js';
import { STORAGE, type StoragePort } from './storage.port.js';

@Global()
@Module({
  providers: [{ provide: STORAGE, inject: [APP_CONFIG], useFactory: (c: AppConfig): StoragePort => new LocalDiskStorage(c.storage.dir) }],
  exports: [STORAGE],
})
export class StorageModule {}
