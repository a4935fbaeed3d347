import type { EntityManager } from '@mikro-orm/core';
import { describe, expect, it, vi } from 'vitest';
import { Image } from './entities/image.entity.js';
import { problemOf } from '@test/support/new-test-service.js';
import { findOwned } from './owned.js';

const ID = '0b7e6f3c-1d2e-4f5a-8b9c-0d1e2f3a4b5c';

function em(row: object | null): { em: EntityManager; findOne: ReturnType<typeof vi.fn> } {
  const findOne = vi.fn(async () => row);
  return { em: { findOne } as unknown as EntityManager, findOne };
}

describe('findOwned', () => {
  it("filters by id and owner, and answers the caller's record", async () => {
    const row = { id: ID };
    const { em: m, findOne } = em(row);
    await expect(findOwned(m, Image, ID, 'u1', 'Image', { populate: ['project'] })).resolves.toBe(row);
    expect(findOne).toHaveBeenCalledWith(Image, { id: ID, owner: 'u1' }, { populate: ['project'] });
  });

  it('leaves the owner out when ownerId is null, and adds the extra conditions', async () => {
    const { em: m, findOne } = em({ id: ID });
    await findOwned(m, Image, ID, null, 'Image', { where: { project: 'p1' } });
    expect(findOne).toHaveBeenCalledWith(Image, { id: ID, project: 'p1' }, {});
  });

  it('answers the same 404 for a missing record, with the label and id', async () => {
    const e = await problemOf(findOwned(em(null).em, Image, ID, 'u1', 'Image'));
    expect([e.getStatus(), e.code, e.detail]).toEqual([404, 'NOT_FOUND', `Image with id ${ID} does not exist.`]);
  });

  it('never queries for a malformed id; code and scope shape the 404', async () => {
    const { em: m, findOne } = em({ id: 'x' });
    const e = await problemOf(findOwned(m, Image, 'nope', 'u1', 'Image', { code: 'JOB_NOT_FOUND', scope: 'project p1' }));
    expect(findOne).not.toHaveBeenCalled();
    expect([e.code, e.detail]).toEqual(['JOB_NOT_FOUND', 'Image with id nope does not exist in project p1.']);
  });
});
