import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest, forbidden } from '@aperture/common/problem.js';
import { type ApiKeyScope, DEFAULT_API_KEY_SCOPES, type UserRole } from '@aperture/common/roles.js';
import { ApiKey } from '@aperture/database/entities/api-key.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import { sha256 } from './auth.service.js';
import { PrincipalCache } from './principal-cache.js';

/** The roles that may grant the booth-worker scope. */
const BOOTH_WORKER_ROLES: ReadonlySet<UserRole | 'booth-worker'> = new Set(['admin', 'booth-worker']);

/** The caller's API keys: only a key's hash is stored, the key itself is shown once. */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly em: EntityManager,
    private readonly principals: PrincipalCache,
  ) {}

  /**
   * A new key with the given scopes (default read + write) and optional expiry. Only a signed-in session may make keys
   * (a key cannot make keys), and only scopes its owner's role allows: `admin` for admins, `booth-worker` for booth
   * workers and admins.
   */
  async create(p: Principal, opts: { name: string; scopes?: ApiKeyScope[]; expiresAt?: Date }): Promise<{ row: ApiKey; key: string }> {
    if (p.scopes) throw forbidden('An API key cannot create API keys; sign in to make one.');
    const scopes = [...new Set(opts.scopes ?? DEFAULT_API_KEY_SCOPES)];
    const refused = scopes.filter(
      (s) => (s === 'admin' && p.role !== 'admin') || (s === 'booth-worker' && !BOOTH_WORKER_ROLES.has(p.role)),
    );
    if (refused.length) {
      throw badRequest(`Your role (${p.role}) cannot grant the scope ${refused.join(', ')}.`, {
        errors: [{ field: 'scopes', messages: [`not allowed for your role: ${refused.join(', ')}`] }],
      });
    }
    if (opts.expiresAt && opts.expiresAt.getTime() <= Date.now()) {
      throw badRequest('expires_at must be in the future.', { errors: [{ field: 'expires_at', messages: ['must be in the future'] }] });
    }
    const key = `apk_${randomBytes(30).toString('base64url')}`;
    const row = this.em.create(ApiKey, {
      owner: this.em.getReference(User, p.userId),
      name: opts.name,
      prefix: key.slice(0, 12),
      keyHash: sha256(key),
      scopes,
      expiresAt: opts.expiresAt ?? null,
    });
    await this.em.flush();
    return { row, key };
  }

  /** Active (not revoked, not expired) keys, newest first. */
  list(p: Principal): Promise<ApiKey[]> {
    return this.em.find(
      ApiKey,
      { owner: p.userId, revokedAt: null, $or: [{ expiresAt: null }, { expiresAt: { $gt: new Date() } }] },
      { orderBy: { createdAt: 'desc' } },
    );
  }

  /** The key stops working at once; an unknown, foreign or already revoked key is a 404. */
  async revoke(id: string, p: Principal): Promise<void> {
    const key = await findOwned(this.em, ApiKey, id, p.userId, 'API key', { where: { revokedAt: null } });
    key.revokedAt = new Date();
    await this.em.flush();
    await this.principals.invalidate(p.userId); // every API process forgets the key now, not when its cache entry ends
  }
}
