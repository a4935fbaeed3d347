import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  IsBoolean,
  IsEmail,
  IsIn,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MaxLength,
  MinLength,
  registerDecorator,
  ValidateIf,
  type ValidationOptions,
} from 'class-validator';
import { PageQueryDto } from '@aperture/common/pagination.js';

/** A real calendar date (YYYY-MM-DD) strictly before today. */
function IsPastIsoDate(options?: ValidationOptions): PropertyDecorator {
  return (object: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isPastIsoDate',
      target: object.constructor,
      propertyName: String(propertyName),
      options: { message: `${String(propertyName)} must be a past date in the form YYYY-MM-DD`, ...options },
      validator: {
        validate(value: unknown): boolean {
          if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
          const d = new Date(`${value}T00:00:00Z`);
          if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== value) return false; // 2023-02-30 is not a date
          return value < new Date().toISOString().slice(0, 10) && value >= '1900-01-01';
        },
      },
    });
}

const nullable = ValidateIf((_o, v) => v !== null);

/** Fields to change; null clears an optional one. */
export class UpdateProfileDto {
  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 200 })
  @IsOptional()
  @nullable
  @IsString()
  @MaxLength(200)
  full_name?: string | null;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 100 })
  @IsOptional()
  @nullable
  @IsString()
  @MaxLength(100)
  first_name?: string | null;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 100 })
  @IsOptional()
  @nullable
  @IsString()
  @MaxLength(100)
  last_name?: string | null;

  @ApiPropertyOptional({ format: 'email', description: 'Cannot be cleared (null is refused)' })
  @ValidateIf((o: { email?: unknown }) => o.email !== undefined)
  @IsEmail({}, { message: 'email must be a valid e-mail address' })
  @MaxLength(254)
  email?: string;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    example: '+49 151 1234567',
    maxLength: 32,
    description:
      'Digits, spaces, ( ) - and an optional leading +, starting with a digit (so "000" is a phone too). An empty string ' +
      'clears it like null, as older clients send it.',
  })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' && value.trim() === '' ? null : value))
  @nullable
  @Matches(/^\+?[0-9][0-9 ()-]{0,30}$/, { message: 'phone must be a phone number (digits, spaces, ( ) - and an optional leading +)' })
  phone?: string | null;

  @ApiPropertyOptional({ type: String, format: 'date', nullable: true, example: '1990-04-23' })
  @IsOptional()
  @nullable
  @IsPastIsoDate()
  birth_date?: string | null;

  @ApiPropertyOptional({ type: String, format: 'uri', nullable: true })
  @IsOptional()
  @nullable
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true }, { message: 'picture_url must be an http(s) URL' })
  @MaxLength(2048)
  picture_url?: string | null;
}

export class ChangePasswordDto {
  @ApiPropertyOptional({ format: 'password' })
  @IsString()
  @MaxLength(128)
  current_password!: string;

  @ApiPropertyOptional({ format: 'password', minLength: 8 })
  @IsString()
  @MinLength(8, { message: 'new_password must be at least 8 characters long' })
  @MaxLength(128)
  new_password!: string;

  @ApiPropertyOptional({
    default: false,
    description: 'Keep your API keys working. By default a password change revokes them with every other credential.',
  })
  @IsOptional()
  @IsBoolean()
  keep_api_keys?: boolean;
}

export class UserListQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ description: 'Matches username, e-mail or name (case-insensitive substring)' })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  search?: string;
}

export class AdminUpdateUserDto {
  @ApiPropertyOptional({ enum: ['user', 'admin', 'booth-worker'], description: 'booth-worker: may lease booth X-ray jobs' })
  @IsOptional()
  @IsIn(['user', 'admin', 'booth-worker'])
  role?: 'user' | 'admin' | 'booth-worker';

  @ApiPropertyOptional({ description: "A disabled user's tokens and API keys stop working at once" })
  @IsOptional()
  @Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))
  @IsBoolean()
  disabled?: boolean;
}

export class DeleteAccountDto {
  @ApiProperty({ description: 'Your username, to confirm that the account and everything it owns go for good' })
  @IsString()
  @MaxLength(64)
  confirm!: string;
}
