import { Module } from '@nestjs/common';
import { MulterModule } from '@nestjs/platform-express';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { DriveController } from './drive.controller.js';

/** Google Drive routes: status for every user, direct uploads for admins. DriveStorage comes from the global StorageModule. */
@Module({
  imports: [
    MulterModule.registerAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({ limits: { fileSize: c.images.maxBytes, files: 1, fields: 5, fieldSize: 1024 } }),
    }),
  ],
  controllers: [DriveController],
})
export class DriveModule {}
