import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/core';
import { expect, type Mock, vi } from 'vitest';
import { ProblemException } from '@aperture/common/problem.js';

/**
 * A stand-in for a dependency: only the members given exist. Touching any other member throws, so a test
 * fails loudly when the service under test reaches for something the test did not expect.
 */
export function strictFake<T extends object>(name: string, members: Partial<T> = {}): T {
  return new Proxy(members as T, {
    get(target, key, receiver) {
      if (Reflect.has(target, key)) return Reflect.get(target, key, receiver) as unknown;
      // Promise resolution and inspection probe these; answering "absent" is the truth.
      if (typeof key === 'symbol' || key === 'then' || key === 'toJSON') return undefined;
      throw new Error(`${name}.${key} was used by the service, but the test did not fake it`);
    },
  });
}

type Fakes<A extends unknown[]> = { [K in keyof A]: Partial<A[K]> };

/**
 * Constructs the service under test with hand-written fakes (or vi.fn() objects) for its constructor arguments,
 * in order: no Nest application, no database, no Redis. Each fake is wrapped by strictFake.
 */
export function newTestService<S, A extends unknown[]>(Service: new (...args: A) => S, ...deps: Fakes<A>): S {
  const args = deps.map((d, i) => strictFake(`${Service.name} dependency #${i + 1}`, d as object));
  return new Service(...(args as A));
}

/** The EntityManager calls services make, as mocks. fork() answers the same fake; create() answers the data with an id. */
export interface FakeEm {
  fork: Mock<() => EntityManager>;
  create: Mock<(entity: unknown, data: Record<string, unknown>) => Record<string, unknown>>;
  getReference: Mock<(entity: unknown, id: string) => { id: string }>;
  persist: Mock<(rows: unknown) => { flush: Mock<() => Promise<void>> }>;
  flush: Mock<() => Promise<void>>;
  find: Mock<(entity: unknown, where: unknown, options?: unknown) => Promise<unknown[]>>;
  findOne: Mock<(entity: unknown, where: unknown, options?: unknown) => Promise<unknown>>;
  findOneOrFail: Mock<(entity: unknown, where: unknown, options?: unknown) => Promise<unknown>>;
  findAndCount: Mock<(entity: unknown, where: unknown, options?: unknown) => Promise<[unknown[], number]>>;
  count: Mock<(entity: unknown, where: unknown) => Promise<number>>;
  nativeUpdate: Mock<(entity: unknown, where: unknown, data: unknown) => Promise<number>>;
}

export function fakeEm(): FakeEm & EntityManager {
  const flush = vi.fn(async () => undefined);
  const em: FakeEm = {
    fork: vi.fn(() => em as unknown as EntityManager),
    create: vi.fn((_entity: unknown, data: Record<string, unknown>) => ({ id: randomUUID(), ...data })),
    getReference: vi.fn((_entity: unknown, id: string) => ({ id })),
    persist: vi.fn(() => ({ flush })),
    flush,
    find: vi.fn(async () => []),
    findOne: vi.fn(async () => null),
    findOneOrFail: vi.fn(async () => {
      throw new Error('findOneOrFail: not faked');
    }),
    findAndCount: vi.fn(async (): Promise<[unknown[], number]> => [[], 0]),
    count: vi.fn(async () => 0),
    nativeUpdate: vi.fn(async () => 0),
  };
  return em as FakeEm & EntityManager;
}

/** The ProblemException a call is refused with (the test fails if it resolves, or throws anything else). */
export async function problemOf(call: Promise<unknown>, status?: number): Promise<ProblemException> {
  const e: unknown = await call.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ProblemException);
  if (status !== undefined) expect((e as ProblemException).getStatus()).toBe(status);
  return e as ProblemException;
}
