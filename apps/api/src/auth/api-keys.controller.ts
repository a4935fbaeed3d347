import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiCreatedResponse,
  ApiForbiddenResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import { ArrayNotEmpty, IsArray, IsIn, IsISO8601, IsOptional, IsString, Length } from 'class-validator';
import { API_KEY_SCOPES, type ApiKeyScope } from '@aperture/common/roles.js';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { ApiKey } from '@aperture/database/entities/api-key.entity.js';
import { ApiKeysService } from './api-keys.service.js';

export class CreateApiKeyDto {
  @ApiProperty({ minLength: 1, maxLength: 100, example: 'lab scanner' })
  @IsString()
  @Length(1, 100)
  name!: string;

  @ApiPropertyOptional({
    enum: API_KEY_SCOPES,
    isArray: true,
    default: ['read', 'write'],
    description:
      'read: GET routes; write: every other method; admin: act as the admin you are (without it an admin key acts as a ' +
      'plain user); booth-worker: the booth worker routes (for booth workers and admins).',
  })
  @IsOptional()
  @IsArray()
  @ArrayNotEmpty()
  @IsIn(API_KEY_SCOPES, { each: true })
  scopes?: ApiKeyScope[];

  @ApiPropertyOptional({ format: 'date-time', description: 'The key stops working at this moment (default: never, until revoked).' })
  @IsOptional()
  @IsISO8601({ strict: true })
  expires_at?: string;
}

export class ApiKeyDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'The first characters of the key', example: 'apk_3f9a1c2b' }) prefix!: string;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) last_used_at!: string | null;
  @ApiProperty({ enum: API_KEY_SCOPES, isArray: true }) scopes!: ApiKeyScope[];
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) expires_at!: string | null;

  static from(k: ApiKey): ApiKeyDto {
    return {
      id: k.id,
      name: k.name,
      prefix: k.prefix,
      created_at: k.createdAt.toISOString(),
      last_used_at: k.lastUsedAt?.toISOString() ?? null,
      scopes: k.scopes ?? ['read', 'write'],
      expires_at: k.expiresAt?.toISOString() ?? null,
    };
  }
}

export class CreatedApiKeyDto extends ApiKeyDto {
  @ApiProperty({ description: 'The key itself. Shown only in this response: store it now. Send it as the X-API-Key header.' })
  key!: string;
}

@ApiTags('auth')
@Authenticated()
@Controller('auth/api-keys')
export class ApiKeysController {
  constructor(private readonly apiKeys: ApiKeysService) {}

  @Post()
  @ApiOperation({
    summary: 'Create an API key',
    description:
      'The key authenticates as you through the X-API-Key header, within its scopes, until it expires or is revoked. It is ' +
      'shown once. Only a signed-in session may create keys (403 for an API key).',
  })
  @ApiCreatedResponse({ type: CreatedApiKeyDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields, a scope your role cannot grant, or a past expiry' })
  @ApiForbiddenResponse({ type: ProblemDto, description: 'Called with an API key' })
  async createApiKey(@Body() dto: CreateApiKeyDto, @CurrentPrincipal() p: Principal): Promise<CreatedApiKeyDto> {
    const { row, key } = await this.apiKeys.create(p, {
      name: dto.name,
      scopes: dto.scopes,
      expiresAt: dto.expires_at ? new Date(dto.expires_at) : undefined,
    });
    return { ...ApiKeyDto.from(row), key };
  }

  @Get()
  @ApiOperation({ summary: 'List your API keys', description: 'Active keys only; the keys themselves are never shown again.' })
  @ApiOkResponse({ type: [ApiKeyDto] })
  async listApiKeys(@CurrentPrincipal() p: Principal): Promise<ApiKeyDto[]> {
    const keys = await this.apiKeys.list(p);
    return keys.map((k) => ApiKeyDto.from(k));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an API key', description: 'It stops working at once.' })
  @ApiNoContentResponse({ description: 'Revoked' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such key of yours' })
  async revokeApiKey(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<void> {
    await this.apiKeys.revoke(id, p);
  }
}
