import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsEmail, IsIn, IsOptional, IsString, Length, Matches, MaxLength, MinLength } from 'class-validator';
import type { User } from '@aperture/database/entities/user.entity.js';
import { USER_ROLES, type UserRole } from '@aperture/common/roles.js';

export class RegisterDto {
  @ApiProperty({ minLength: 3, maxLength: 64, pattern: '^[A-Za-z0-9_.@-]+$', example: 'alice' })
  @IsString()
  @Length(3, 64)
  @Matches(/^[A-Za-z0-9_.@-]+$/, { message: 'username may contain letters, digits and _ . @ - only' })
  username!: string;

  @ApiProperty({ format: 'email', example: 'alice@example.com' })
  @IsEmail({}, { message: 'email must be a valid e-mail address' })
  @MaxLength(254)
  email!: string;

  @ApiProperty({ minLength: 8, maxLength: 128, format: 'password', example: 'correct horse battery' })
  @IsString()
  @MinLength(8, { message: 'password must be at least 8 characters long' })
  @MaxLength(128)
  password!: string;

  @ApiPropertyOptional({ maxLength: 200, example: 'Alice Liddell' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  full_name?: string;
}

export class LoginDto {
  @ApiProperty({ example: 'alice' })
  @IsString()
  @MaxLength(254)
  username!: string;

  @ApiProperty({ format: 'password', example: 'correct horse battery' })
  @IsString()
  @MaxLength(128)
  password!: string;
}

export class RefreshDto {
  @ApiProperty({ description: 'The refresh token from login or the last refresh' })
  @IsString()
  @MaxLength(200)
  refresh_token!: string;
}

export class TokenResponseDto {
  @ApiProperty({ description: 'JWT for the Authorization: Bearer header' })
  access_token!: string;

  @ApiProperty({ description: 'Opaque token for POST /auth/refresh; rotates on every use' })
  refresh_token!: string;

  @ApiProperty({ enum: ['bearer'] })
  token_type!: 'bearer';

  @ApiProperty({ description: 'Lifetime of the access token in seconds', example: 900 })
  expires_in!: number;
}

export class UserDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() username!: string;
  @ApiProperty({ type: String, nullable: true }) email!: string | null;
  @ApiProperty({ type: String, nullable: true }) full_name!: string | null;
  @ApiProperty({ type: String, nullable: true }) first_name!: string | null;
  @ApiProperty({ type: String, nullable: true }) last_name!: string | null;
  @ApiProperty({ type: String, nullable: true, example: '+4915112345678' }) phone!: string | null;
  @ApiProperty({ type: String, format: 'date', nullable: true }) birth_date!: string | null;
  @ApiProperty({ type: String, format: 'uri', nullable: true }) picture_url!: string | null;
  @ApiProperty({ description: 'A Google account is linked' }) google_linked!: boolean;
  @ApiProperty({ enum: USER_ROLES }) role!: UserRole;
  @ApiProperty() disabled!: boolean;
  @ApiProperty({ format: 'date-time' }) created_at!: string;

  static from(u: User): UserDto {
    return {
      id: u.id,
      username: u.username,
      email: u.email,
      full_name: u.fullName,
      first_name: u.firstName,
      last_name: u.lastName,
      phone: u.phone,
      birth_date: u.birthDate,
      picture_url: u.pictureUrl,
      google_linked: u.googleSub !== null,
      role: u.role,
      disabled: u.disabled,
      created_at: u.createdAt.toISOString(),
    };
  }
}

const GRANT_TYPES = ['password', 'refresh_token'] as const;

/**
 * OAuth2 token request (form-encoded). grant_type=password with username + password; grant_type=refresh_token with
 * refresh_token; or only `password` (no username) for the booth's station principal when STATION_PASSWORD is set.
 */
export class TokenRequestDto {
  @ApiPropertyOptional({ enum: GRANT_TYPES, default: 'password' })
  @IsOptional()
  @IsIn(GRANT_TYPES, { message: 'grant_type must be password or refresh_token' })
  grant_type?: (typeof GRANT_TYPES)[number];

  @ApiPropertyOptional({ description: 'Omit (with grant_type=password) to sign in as the station with the station password' })
  @IsOptional()
  @IsString()
  @MaxLength(254)
  username?: string;

  @ApiPropertyOptional({ format: 'password' })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  password?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(200)
  refresh_token?: string;

  @ApiPropertyOptional({ description: 'Accepted and ignored (OAuth2 clients such as Swagger UI send it)' })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  scope?: string;

  @ApiPropertyOptional({ description: 'Accepted and ignored' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  client_id?: string;

  @ApiPropertyOptional({ description: 'Accepted and ignored' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  client_secret?: string;
}
