import { Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import passport from 'passport';
import type { Principal } from '@aperture/common/auth.decorators.js';
import type { User } from '@aperture/database/entities/user.entity.js';
import type { GoogleAccount } from './google.strategy.js';

/** Each strategy of the app by name, and what it answers for a request it accepts. */
export interface StrategyResults {
  /** `Authorization: Bearer <access token>` */
  jwt: Principal;
  /** `X-API-Key` */
  'api-key': Principal;
  /** username + password (POST /auth/login, the token form's password grant) */
  local: User;
  /** the booth station's password alone (the token form without a username) */
  station: User;
  /** the Google account of a finished authorization code flow (GET /auth/google/callback) */
  google: GoogleAccount;
}
export type StrategyName = keyof StrategyResults;

/** How one strategy answered a request (`AppPassport.run`); an error rejects instead. */
export type StrategyOutcome<T> =
  | { kind: 'success'; user: T; info: unknown }
  | { kind: 'fail'; challenge: unknown; status: number | undefined }
  | { kind: 'redirect'; url: string; status: number | undefined }
  | { kind: 'pass' };

type Middleware = (req: Request, res: Response | undefined, next: (err?: unknown) => void) => void;

/**
 * This app's passport authenticator. Every strategy registers here (`use`) and every request is authenticated here,
 * never through passport's process-wide instance: two apps in one process (the tests, a replica set in one runner)
 * must each answer with their own strategies, configuration and database. (@nestjs/passport's PassportStrategy also
 * registers each strategy with the process-wide instance; nothing authenticates through that one.)
 */
@Injectable()
export class AppPassport {
  private readonly passport = new passport.Passport();
  private readonly strategies = new Map<StrategyName, passport.Strategy>();

  use(name: StrategyName, strategy: passport.Strategy): void {
    this.passport.use(name, strategy);
    this.strategies.set(name, strategy);
  }

  /**
   * Runs the strategies on the request in order, as `passport.authenticate` does: the first one that accepts it
   * answers; one that fails (no credentials of its kind, or a token that does not verify) hands over to the next;
   * one that errs (its check threw a ProblemException) ends the chain with that error. False when every one failed.
   */
  authenticate<K extends StrategyName>(strategies: K | K[], req: Request): Promise<StrategyResults[K] | false> {
    return new Promise((resolve, reject) => {
      const done = (err: unknown, user?: StrategyResults[K] | false): void => {
        if (err) reject(err as Error);
        else resolve(user ?? false);
      };
      const middleware = this.passport.authenticate(strategies, { session: false }, done) as Middleware;
      middleware(req, req.res, (err) => done(err, false));
    });
  }

  /**
   * Runs one strategy on the request and answers what it decided, writing nothing to the response: a redirecting
   * strategy (an OAuth2 sign-in's start) answers its URL for the handler to send as a 302 or in a body. Its options
   * go to the strategy's `authenticate` as they would through `passport.authenticate(name, options)`.
   */
  run<K extends StrategyName>(name: K, req: Request, options: object = {}): Promise<StrategyOutcome<StrategyResults[K]>> {
    const prototype = this.strategies.get(name);
    if (!prototype) return Promise.reject(new Error(`No passport strategy named ${name} is registered`));
    return new Promise((resolve, reject) => {
      // As passport's own middleware does: a fresh object per request whose actions settle this promise.
      const strategy = Object.create(prototype) as passport.StrategyCreated<passport.Strategy>;
      strategy.success = (user, info) => resolve({ kind: 'success', user: user as StrategyResults[K], info });
      strategy.fail = (challenge?: unknown, status?: number) =>
        resolve({ kind: 'fail', challenge, status: typeof challenge === 'number' ? challenge : status });
      strategy.redirect = (url, status) => resolve({ kind: 'redirect', url, status });
      strategy.pass = () => resolve({ kind: 'pass' });
      strategy.error = (err) => reject(err as Error);
      try {
        strategy.authenticate(req, options);
      } catch (err) {
        reject(err as Error);
      }
    });
  }
}
