import type { AsyncLocalStorage } from 'node:async_hooks';
import { type EntityManager, MikroORM, RequestContext } from '@mikro-orm/core';
import { Injectable, type NestMiddleware } from '@nestjs/common';

/** The entity managers of one request, each forked on first use. */
class LazyForks extends Map<string, EntityManager> {
  constructor(private readonly root: EntityManager) {
    super();
  }

  /** True while the fork is being made: context resolution then finds no fork, as before the request had one. */
  private forking = false;

  override get(name: string): EntityManager | undefined {
    let fork = super.get(name);
    if (fork === undefined && name === this.root.name && !this.forking) {
      // This runs inside context resolution (em.getContext), which making an EntityManager asks again.
      this.forking = true;
      try {
        fork = this.root.fork({ useContext: true, disableContextResolution: true });
      } finally {
        this.forking = false;
      }
      this.set(name, fork);
    }
    return fork;
  }

  override has(name: string): boolean {
    return (name === this.root.name && !this.forking) || super.has(name);
  }
}

/** RequestContext's own AsyncLocalStorage (private in its types; checked at start, see below). */
const contextStorage = (RequestContext as unknown as { storage?: AsyncLocalStorage<RequestContext> }).storage;

/**
 * MikroORM's request context, as its own middleware makes it (one entity manager fork per request, found through
 * AsyncLocalStorage), except that the fork is made when the request first uses the database: a request that never
 * does (a probe, a cached credential with a plain query through the connection) does not pay for a fork (a new
 * EntityManager, UnitOfWork and identity map, ~0.04 ms of CPU). Should a MikroORM release store its contexts
 * elsewhere, it falls back to RequestContext.create (an eager fork).
 */
@Injectable()
export class LazyRequestContextMiddleware implements NestMiddleware {
  constructor(private readonly orm: MikroORM) {}

  use(_req: unknown, _res: unknown, next: () => void): void {
    if (contextStorage && typeof contextStorage.run === 'function') {
      contextStorage.run(new RequestContext(new LazyForks(this.orm.em)), next);
    } else {
      RequestContext.create(this.orm.em, next);
    }
  }
}
