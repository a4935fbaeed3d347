import { Injectable } from '@nestjs/common';
import { EntityManager, type FilterQuery } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { pageOptions } from '@aperture/common/pagination.js';
import { badRequest, unauthorized } from '@aperture/common/problem.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import { AuthService } from '../auth/auth.service.js';
import { BruteForceService } from '../auth/brute-force.service.js';
import { hashPassword, verifyPassword } from '../auth/password.js';
import type { AdminUpdateUserDto, ChangePasswordDto, UpdateProfileDto, UserListQueryDto } from './users.dto.js';

/** Profiles, password changes and the admin's user list. Sign-in, tokens and brute-force protection stay in auth. */
@Injectable()
export class UsersService {
  constructor(
    private readonly em: EntityManager,
    private readonly auth: AuthService,
    private readonly bruteForce: BruteForceService,
  ) {}

  me(p: Principal): Promise<User> {
    return this.auth.currentUser(p);
  }

  async updateProfile(p: Principal, dto: UpdateProfileDto): Promise<User> {
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
    return user;
  }

  /** Needs the current password (behind brute-force protection); logs out the user's other sessions. */
  async changePassword(p: Principal, dto: ChangePasswordDto, ip: string): Promise<void> {
    const user = await this.me(p);
    const subjects = BruteForceService.subjects(user.username, ip);
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
    await this.auth.revokeRefreshTokens(user.id);
  }

  list(q: UserListQueryDto): Promise<[User[], number]> {
    const where: FilterQuery<User> = {};
    if (q.search) {
      // Bound as a parameter; a _ or % in the term only widens the match.
      const like = `%${q.search}%`;
      where.$or = [{ username: { $ilike: like } }, { email: { $ilike: like } }, { fullName: { $ilike: like } }];
    }
    return this.em.findAndCount(User, where, { orderBy: { createdAt: 'asc', id: 'asc' }, ...pageOptions(q) });
  }

  /** An admin changes a user's role or disables them; a disabled user's sessions end at once. */
  async update(id: string, dto: AdminUpdateUserDto, p: Principal): Promise<User> {
    const user = await findOwned(this.em, User, id, null, 'User');
    if (user.id === p.userId && (dto.role === 'user' || dto.disabled === true)) {
      throw badRequest('You cannot remove your own admin role or disable yourself.');
    }
    if (dto.role !== undefined && user.role !== 'station') user.role = dto.role;
    if (dto.disabled !== undefined) user.disabled = dto.disabled;
    await this.em.flush();
    if (dto.disabled) await this.auth.revokeRefreshTokens(user.id);
    return user;
  }
}
