import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ERROR_CODES, type ErrorCode } from './problem.js';

export class FieldErrorDto {
  @ApiProperty({ example: 'n' })
  field!: string;

  @ApiProperty({ type: [String], example: ['n must not be greater than 1000'] })
  messages!: string[];
}

/** RFC 9457 problem details, as every error of the API is answered. */
export class ProblemDto {
  @ApiProperty({ example: 'urn:aperture:problem:not-found' })
  type!: string;

  @ApiProperty({ example: 'Not Found' })
  title!: string;

  @ApiProperty({ example: 404 })
  status!: number;

  @ApiProperty({ example: 'Job with id 7 does not exist.' })
  detail!: string;

  @ApiProperty({ example: '/api/v1/jobs/7' })
  instance!: string;

  @ApiProperty({ enum: ERROR_CODES, enumName: 'ErrorCode' })
  code!: ErrorCode;

  @ApiPropertyOptional({ type: [FieldErrorDto], description: 'Field-level validation errors' })
  errors?: FieldErrorDto[];

  @ApiPropertyOptional({ description: 'Id of a server error, logged with its details' })
  error_id?: string;
}
