import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Req } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { AdminOnly, Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { ApiPageResponse, type Page, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { TokenResponseDto, UserDto } from '../auth/auth.dto.js';
import type { Request } from 'express';
import { UsersService } from './users.service.js';
import { AdminUpdateUserDto, ChangePasswordDto, DeleteAccountDto, UpdateProfileDto, UserListQueryDto } from './users.dto.js';

@ApiTags('users')
@Authenticated()
@Controller('users')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Get('me')
  @ApiOperation({ summary: 'Your profile' })
  @ApiOkResponse({ type: UserDto })
  async getProfile(@CurrentPrincipal() p: Principal): Promise<UserDto> {
    return UserDto.from(await this.users.me(p));
  }

  @Patch('me')
  @ApiOperation({
    summary: 'Update your profile',
    description: 'Names, e-mail (unique), phone, birth date (a past date) and picture URL; null clears a field.',
  })
  @ApiOkResponse({ type: UserDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields' })
  @ApiConflictResponse({ type: ProblemDto, description: 'E-mail already taken' })
  async updateProfile(@Body() dto: UpdateProfileDto, @CurrentPrincipal() p: Principal): Promise<UserDto> {
    return UserDto.from(await this.users.updateProfile(p, dto));
  }

  @Post('me/password')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Change your password',
    description:
      'Needs the current password. Every credential issued before stops working at once: refresh tokens, access tokens ' +
      'and (unless keep_api_keys) API keys. Answers a new token pair for this session.',
  })
  @ApiOkResponse({ type: TokenResponseDto, description: 'Changed; the new tokens' })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid new password' })
  @ApiUnauthorizedResponse({ type: ProblemDto, description: 'Wrong current password' })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Too many wrong current passwords; see Retry-After' })
  changePassword(@Body() dto: ChangePasswordDto, @CurrentPrincipal() p: Principal, @Req() req: Request): Promise<TokenResponseDto> {
    return this.users.changePassword(p, dto, req.ip ?? 'unknown');
  }

  @Delete('me')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete your account and everything you own',
    description:
      'Images, jobs and their results, projects, QR batches, segmentation batches, booth submissions, API keys and ' +
      'sessions: rows and stored files. Running jobs are cancelled first. Send your username as confirm.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'confirm is not your username' })
  async deleteMe(@Body() dto: DeleteAccountDto, @CurrentPrincipal() p: Principal): Promise<void> {
    await this.users.deleteOwnAccount(p, dto.confirm);
  }

  @Get()
  @AdminOnly()
  @ApiOperation({ summary: 'List users (admin)' })
  @ApiPageResponse(UserDto)
  async listUsers(@Query() q: UserListQueryDto): Promise<Page<UserDto>> {
    const [items, total] = await this.users.list(q);
    return toPage(
      items.map((u) => UserDto.from(u)),
      total,
      q,
    );
  }

  @Patch(':id')
  @AdminOnly()
  @ApiOperation({
    summary: "Change a user's role or disable them (admin)",
    description: "A disabled user's tokens and API keys stop working at once.",
  })
  @ApiOkResponse({ type: UserDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields, or an admin changing their own role or status' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such user' })
  async updateUser(@Param('id') id: string, @Body() dto: AdminUpdateUserDto, @CurrentPrincipal() p: Principal): Promise<UserDto> {
    return UserDto.from(await this.users.update(id, dto, p));
  }

  @Delete(':id')
  @HttpCode(204)
  @AdminOnly()
  @ApiOperation({
    summary: 'Delete a user and everything they own (admin)',
    description: 'As DELETE /users/me does for oneself: rows and stored files; their running jobs are cancelled first.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'No such user' })
  @ApiConflictResponse({ type: ProblemDto, description: 'The built-in station principal cannot be deleted' })
  async deleteUser(@Param('id') id: string): Promise<void> {
    await this.users.deleteAccount(id);
  }
}
