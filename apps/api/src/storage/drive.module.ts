import { Module } from '@nestjs/common';
import { uploadMulter } from '../uploads/uploads.module.js';
import { DriveController } from './drive.controller.js';

/** Google Drive routes: status for every user, direct uploads for admins. DriveStorage comes from the global StorageModule. */
@Module({
  imports: [
    // Handed to Drive, not kept here: no quota.
    uploadMulter({ files: 1, fields: 5, fieldSize: 1024, quota: false }),
  ],
  controllers: [DriveController],
})
export class DriveModule {}
