import type { EntityManager, EntityName, FilterQuery, FindOneOptions, Loaded } from '@mikro-orm/core';
import { isUuid } from '@aperture/common/ids.js';
import { type ErrorCode, notFound, type ProblemException } from '@aperture/common/problem.js';

/** The 404 of a record the caller may not see: "<Label> with id <id> does not exist." (or "… does not exist in <scope>."). */
export function missing(label: string, id: string, opts: { code?: ErrorCode; scope?: string } = {}): ProblemException {
  return notFound(`${label} with id ${id} does not exist${opts.scope ? ` in ${opts.scope}` : ''}.`, opts.code);
}

export interface FindOwnedOptions<T extends object, P extends string = never> extends Pick<FindOneOptions<T, P>, 'populate' | 'refresh'> {
  /** More conditions the record must meet (e.g. its project, its type). */
  where?: FilterQuery<T>;
  /** The problem code of the 404; NOT_FOUND by default. */
  code?: ErrorCode;
  /** Appended to the 404's detail as "… does not exist in <scope>.". */
  scope?: string;
}

/**
 * The record with this id owned by ownerId (any owner when ownerId is null, e.g. for an admin), or the 404
 * "<Label> with id <id> does not exist.". Another user's record, a malformed id and a missing record answer the
 * same; a malformed id never reaches the database.
 */
export async function findOwned<T extends object, P extends string = never>(
  em: EntityManager,
  entity: EntityName<T>,
  id: string,
  ownerId: string | null,
  label: string,
  opts: FindOwnedOptions<T, P> = {},
): Promise<Loaded<T, P>> {
  const { where, code, scope, ...options } = opts;
  const filter = { ...where, id, ...(ownerId === null ? {} : { owner: ownerId }) } as FilterQuery<NoInfer<T>>;
  const row = isUuid(id) ? await em.findOne<T, P>(entity, filter, options) : null;
  if (!row) throw missing(label, id, { code, scope });
  return row;
}
