import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { ApiKey } from '@aperture/database/entities/api-key.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import { sha256 } from './auth.service.js';

/** The caller's API keys: only a key's hash is stored, the key itself is shown once. */
@Injectable()
export class ApiKeysService {
  constructor(private readonly em: EntityManager) {}

  async create(name: string, p: Principal): Promise<{ row: ApiKey; key: string }> {
    const key = `apk_${randomBytes(30).toString('base64url')}`;
    const row = this.em.create(ApiKey, {
      owner: this.em.getReference(User, p.userId),
      name,
      prefix: key.slice(0, 12),
      keyHash: sha256(key),
    });
    await this.em.flush();
    return { row, key };
  }

  /** Active keys, newest first. */
  list(p: Principal): Promise<ApiKey[]> {
    return this.em.find(ApiKey, { owner: p.userId, revokedAt: null }, { orderBy: { createdAt: 'desc' } });
  }

  /** The key stops working at once; an unknown, foreign or already revoked key is a 404. */
  async revoke(id: string, p: Principal): Promise<void> {
    const key = await findOwned(this.em, ApiKey, id, p.userId, 'API key', { where: { revokedAt: null } });
    key.revokedAt = new Date();
    await this.em.flush();
  }
}
