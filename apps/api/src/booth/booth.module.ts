import { Module } from '@nestjs/common';
import { imageMulter } from '../images/images.module.js';
import { BoothJobsController } from './booth-jobs.controller.js';
import { BoothLeaseService } from './booth-lease.service.js';
import { BoothPageController } from './booth-page.controller.js';
import { BoothReviewService } from './booth-review.service.js';
import { BoothController } from './booth.controller.js';
import { BoothService } from './booth.service.js';

/** The pet X-ray booth: submissions, external workers' leases, the review queue, the carousel and the owner's page. */
@Module({
  imports: [imageMulter()],
  controllers: [BoothController, BoothJobsController, BoothPageController],
  providers: [BoothService, BoothReviewService, BoothLeaseService],
})
export class BoothModule {}
