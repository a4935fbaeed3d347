import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { EntityManager, type FilterQuery, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { pageOptions } from '@aperture/common/pagination.js';
import { badRequest, conflict, notFound, unauthorized } from '@aperture/common/problem.js';
import { ApiKey } from '@aperture/database/entities/api-key.entity.js';
import { BoothSubmission, CarouselEntry } from '@aperture/database/entities/booth.entity.js';
import { Image } from '@aperture/database/entities/image.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import { JobLifecycle } from '@aperture/queue/job-lifecycle.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import type { TokenResponseDto } from '../auth/auth.dto.js';
import { AuthService } from '../auth/auth.service.js';
import { BruteForceService } from '../auth/brute-force.service.js';
import { ImagesService } from '../images/images.service.js';
import { hashPassword, verifyPassword } from '../auth/password.js';
import type { AdminUpdateUserDto, ChangePasswordDto, UpdateProfileDto, UserListQueryDto } from './users.dto.js';

/** Profiles, password changes and the admin's user list. Sign-in, tokens and brute-force protection stay in auth. */
@Injectable()
export class UsersService {
  constructor(
    private readonly em: EntityManager,
    private readonly auth: AuthService,
    private readonly bruteForce: BruteForceService,
    private readonly lifecycle: JobLifecycle,
    private readonly images: ImagesService,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  private readonly logger = new Logger('Users');

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
    try {
      await this.em.flush();
    } catch (err) {
      // Two users taking one e-mail at once: the unique index decides, and the loser gets the same 409.
      if (err instanceof UniqueConstraintViolationException) throw this.auth.duplicate('email');
      throw err;
    }
    return user;
  }

  /**
   * Needs the current password (behind brute-force protection). Every credential issued before dies: refresh tokens,
   * access tokens (the token version moves on) and, unless `keep_api_keys`, API keys. Answers a new token pair, so the
   * session that changed the password goes on.
   */
  async changePassword(p: Principal, dto: ChangePasswordDto, ip: string): Promise<TokenResponseDto> {
    const user = await this.me(p);
    const subjects = BruteForceService.subjects(user.username, ip);
    await this.bruteForce.begin(subjects);
    if (!(await verifyPassword(user.passwordHash, dto.current_password))) throw unauthorized('Current password is incorrect');
    await this.bruteForce.recordSuccess(subjects);
    if (dto.new_password.toLowerCase() === user.username.toLowerCase()) {
      throw badRequest('new_password must not be the same as the username', {
        errors: [{ field: 'new_password', messages: ['new_password must not be the same as the username'] }],
      });
    }
    user.passwordHash = await hashPassword(dto.new_password);
    await this.auth.endAllSessions(user);
    if (!dto.keep_api_keys) {
      await this.em.nativeUpdate(ApiKey, { owner: user.id, revokedAt: null }, { revokedAt: new Date() });
      await this.auth.principalChanged(user.id); // a key request cached between the version bump and this revocation
    }
    return this.auth.issue(user, randomUUID());
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
    await this.auth.principalChanged(user.id); // the new role or the disabling holds at once in every API process
    if (dto.disabled) await this.auth.revokeRefreshTokens(user.id);
    return user;
  }

  /** DELETE /users/me: the caller's own account, once they confirm it with their username. */
  async deleteOwnAccount(p: Principal, confirm: string): Promise<void> {
    const user = await this.me(p);
    if (confirm.toLowerCase() !== user.username.toLowerCase()) {
      throw badRequest('confirm must be your username.', { errors: [{ field: 'confirm', messages: ['must be your username'] }] });
    }
    await this.deleteAccount(user.id);
  }

  /**
   * Deletes a user and everything they own. Their jobs go first through the job lifecycle (running ones cancelled,
   * files removed); the user's row then takes every other row with it (cascades); the stored files of their images,
   * booth submissions and carousel entries follow, and embeddings no other image shares. A file that cannot be removed
   * now is left to the storage sweep, which removes what no row references.
   */
  async deleteAccount(userId: string): Promise<void> {
    const em = this.em.fork();
    const user = await em.findOne(User, { id: userId });
    if (!user) throw notFound('User does not exist.');
    if (user.role === 'station') throw conflict('The built-in station principal cannot be deleted; unset STATION_PASSWORD instead.');
    const images = await em.find(Image, { owner: userId }, { fields: ['id', 'sha256'] });
    const submissions = await em.find(BoothSubmission, { owner: userId }, { fields: ['id'] });
    const entries = submissions.length
      ? await em.find(CarouselEntry, { submission: { $in: submissions.map((s) => s.id) } }, { fields: ['id'] })
      : [];
    await this.lifecycle.deleteJobs(em, { owner: userId });
    await em.nativeDelete(User, { id: userId });
    await this.auth.principalChanged(userId);
    await this.images.removeStoredFiles(em, images);
    const prefixes = [...submissions.map((s) => StorageKeys.boothPrefix(s.id)), ...entries.map((e) => StorageKeys.carouselPrefix(e.id))];
    for (const prefix of prefixes) {
      await this.storage.deletePrefix(prefix).catch((e: unknown) => this.logger.warn(`Could not remove ${prefix}: ${String(e)}`));
    }
  }
}
