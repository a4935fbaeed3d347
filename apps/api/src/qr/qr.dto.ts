import { ApiProperty } from '@nestjs/swagger';
import { IsInt, Max, Min } from 'class-validator';
import { JOB_STATUSES, type JobStatus } from '@aperture/database/entities/job.entity.js';

export class CreateQrBatchDto {
  @ApiProperty({ minimum: 1, maximum: 1000, example: 40, description: 'Number of unique QR codes to generate' })
  @IsInt({ message: 'n must be an integer' })
  @Min(1, { message: 'n must be between 1 and 1000' })
  @Max(1000, { message: 'n must be between 1 and 1000' })
  n!: number;
}

export class QrBatchDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid', description: 'The job that renders the PDF' }) job_id!: string;
  @ApiProperty() n!: number;
  @ApiProperty({ enum: JOB_STATUSES }) status!: JobStatus;
  @ApiProperty({ minimum: 0, maximum: 100, description: 'Percent done, 0-100', example: 72.5 }) progress!: number;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Where to download the PDF once completed' }) pdf_url!: string | null;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) finished_at!: string | null;
}
