import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query, Req } from '@nestjs/common';
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
import { EntityManager, type FilterQuery } from '@mikro-orm/core';
import { AdminOnly, Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { isUuid } from '@aperture/common/ids.js';
import { ApiPageResponse, type Page, toPage } from '@aperture/common/pagination.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { badRequest, notFound, unauthorized } from '@aperture/common/problem.js';
import { RefreshToken } from '@aperture/database/entities/refresh-token.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { UserDto } from '../auth/auth.dto.js';
import { AuthService } from '../auth/auth.service.js';
import { BruteForceService } from '../auth/brute-force.service.js';
import type { Request } from 'express';
import { hashPassword, verifyPassword } from '../auth/password.js';
import { AdminUpdateUserDto, ChangePasswordDto, UpdateProfileDto, UserListQueryDto } from './users.dto.js';

@ApiTags('users')
@Authenticated()
@Controller('users')
export class UsersController {
  constructor(
    private readonly em: EntityManager,
    private readonly auth: AuthService,
    private readonly bruteForce: BruteForceService,
  ) {}

  private async me(p: Principal): Promise<User> {
    const user = await this.em.findOne(User, { id: p.userId });
    if (!user) throw notFound('User does not exist.');
    return user;
  }

  @Get('me')
  @ApiOperation({ summary: 'Your profile' })
  @ApiOkResponse({ type: UserDto })
  async getProfile(@CurrentPrincipal() p: Principal): Promise<UserDto> {
    return UserDto.from(await this.me(p));
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
    const user = await this.me(p);
    if (dto.email !== undefined) {
      const email = dto.email.toLowerCase();
      if (email !== user.email && (await this.em.count(User, { email }))) throw this.auth.duplicate('email');
      user.email = email;
    }
    if (dto.full_name !== undefined) user.fullName = dto.full_name;
    if (dto.first_name !== undefined) user.firstName = dto.first_name;
    if (dto.last_name !== undefined) user.lastName = dto.last_name;
    if (dto.phone !== undefined) user.phone = dto.phone;
    if (dto.birth_date !== undefined) user.birthDate = dto.birth_date;
    if (dto.picture_url !== undefined) user.pictureUrl = dto.picture_url;
    await this.em.flush();
    return UserDto.from(user);
  }

  @Post('me/password')
  @HttpCode(204)
  @ApiOperation({ summary: 'Change your password', description: 'Needs the current password. Other sessions are logged out.' })
  @ApiNoContentResponse({ description: 'Changed' })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid new password' })
  @ApiUnauthorizedResponse({ type: ProblemDto, description: 'Wrong current password' })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Too many wrong current passwords; see Retry-After' })
  async changePassword(@Body() dto: ChangePasswordDto, @CurrentPrincipal() p: Principal, @Req() req: Request): Promise<void> {
    const user = await this.me(p);
    const subjects = BruteForceService.subjects(user.username, req.ip ?? 'unknown');
    await this.bruteForce.assertAllowed(subjects);
    if (!(await verifyPassword(user.passwordHash, dto.current_password))) {
      await this.bruteForce.recordFailure(subjects);
      throw unauthorized('Current password is incorrect');
    }
    if (dto.new_password.toLowerCase() === user.username.toLowerCase()) {
      throw badRequest('new_password must not be the same as the username', {
        errors: [{ field: 'new_password', messages: ['new_password must not be the same as the username'] }],
      });
    }
    user.passwordHash = await hashPassword(dto.new_password);
    await this.em.flush();
    await this.em.nativeUpdate(RefreshToken, { user: user.id, revokedAt: null }, { revokedAt: new Date() });
  }

  @Get()
  @AdminOnly()
  @ApiOperation({ summary: 'List users (admin)' })
  @ApiPageResponse(UserDto)
  async listUsers(@Query() q: UserListQueryDto): Promise<Page<UserDto>> {
    const where: FilterQuery<User> = {};
    if (q.search) {
      // Bound as a parameter; a _ or % in the term only widens the match.
      const like = `%${q.search}%`;
      where.$or = [{ username: { $ilike: like } }, { email: { $ilike: like } }, { fullName: { $ilike: like } }];
    }
    const [items, total] = await this.em.findAndCount(User, where, {
      orderBy: { createdAt: 'asc', id: 'asc' },
      limit: q.page_size,
      offset: (q.page - 1) * q.page_size,
    });
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
    const user = isUuid(id) ? await this.em.findOne(User, { id }) : null;
    if (!user) throw notFound(`User with id ${id} does not exist.`);
    if (user.id === p.userId && (dto.role === 'user' || dto.disabled === true)) {
      throw badRequest('You cannot remove your own admin role or disable yourself.');
    }
    if (dto.role !== undefined && user.role !== 'station') user.role = dto.role;
    if (dto.disabled !== undefined) user.disabled = dto.disabled;
    await this.em.flush();
    if (dto.disabled) await this.em.nativeUpdate(RefreshToken, { user: user.id, revokedAt: null }, { revokedAt: new Date() });
    return UserDto.from(user);
  }
}
