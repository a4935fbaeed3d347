import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiTags,
} from '@nestjs/swagger';
import { IsString, Length } from 'class-validator';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { ApiKey } from '@aperture/database/entities/api-key.entity.js';
import { ApiKeysService } from './api-keys.service.js';

export class CreateApiKeyDto {
  @ApiProperty({ minLength: 1, maxLength: 100, example: 'lab scanner' })
  @IsString()
  @Length(1, 100)
  name!: string;
}

export class ApiKeyDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'The first characters of the key', example: 'apk_3f9a1c2b' }) prefix!: string;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) last_used_at!: string | null;

  static from(k: ApiKey): ApiKeyDto {
    return {
      id: k.id,
      name: k.name,
      prefix: k.prefix,
      created_at: k.createdAt.toISOString(),
      last_used_at: k.lastUsedAt?.toISOString() ?? null,
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
    description: 'The key authenticates as you through the X-API-Key header. It is shown once.',
  })
  @ApiCreatedResponse({ type: CreatedApiKeyDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields' })
  async createApiKey(@Body() dto: CreateApiKeyDto, @CurrentPrincipal() p: Principal): Promise<CreatedApiKeyDto> {
    const { row, key } = await this.apiKeys.create(dto.name, p);
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
