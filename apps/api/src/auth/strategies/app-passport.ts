import { Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import passport from 'passport';
import type { Principal } from '@aperture/common/auth.decorators.js';
import type { User } from '@aperture/database/entities/user.entity.js';

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
}
export type StrategyName = keyof StrategyResults;

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

  use(name: StrategyName, strategy: passport.Strategy): void {
    this.passport.use(name, strategy);
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
}
