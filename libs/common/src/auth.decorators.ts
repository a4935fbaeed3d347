import { applyDecorators, createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiForbiddenResponse, ApiOAuth2, ApiSecurity, ApiUnauthorizedResponse } from '@nestjs/swagger';
import type { ApiKeyScope, UserRole } from '@aperture/common/roles.js';
import { ProblemDto } from './problem.dto.js';

export const IS_PUBLIC = 'aperture:isPublic';
export const REQUIRED_ROLE = 'aperture:requiredRole';
export const STATION_ALLOWED = 'aperture:stationAllowed';
export const EXPOSED_BY = 'aperture:exposedBy';
export const REQUIRED_SCOPE = 'aperture:requiredScope';

/** The authenticated caller, attached to the request by the global auth guard. */
export interface Principal {
  userId: string;
  username: string;
  role: UserRole;
  /** Set when the caller is an API key: what the key may do. A signed-in session has no such limit. */
  scopes?: readonly ApiKeyScope[];
}

/** Marks a route (or controller) as reachable without credentials. */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);

/**
 * A route whose audience a setting decides (`exposure.<setting>` of the configuration): public, admins only, or off
 * (404). It wins over @Public() on the controller.
 */
export const ExposedBy = (setting: 'healthDetails' | 'apiDocs' | 'metrics'): MethodDecorator => SetMetadata(EXPOSED_BY, setting);

/**
 * The API-key scope a route needs (instead of `read` for GET and `write` for other methods), e.g. `booth-worker` for
 * the booth's worker routes. Signed-in sessions are not limited by scopes.
 */
export const RequiresScope = (scope: ApiKeyScope): MethodDecorator & ClassDecorator => SetMetadata(REQUIRED_SCOPE, scope);

/** Documents the credentials a protected route accepts and its 401. */
export const Authenticated = (): MethodDecorator & ClassDecorator =>
  applyDecorators(
    ApiBearerAuth('bearer'),
    ApiOAuth2([], 'oauth2'),
    ApiSecurity('api-key'),
    ApiUnauthorizedResponse({ description: 'Not authenticated', type: ProblemDto }),
  );

/** Restricts a route to admins (403 for everyone else). */
export const AdminOnly = (): MethodDecorator & ClassDecorator =>
  applyDecorators(SetMetadata(REQUIRED_ROLE, 'admin'), ApiForbiddenResponse({ description: 'Admins only', type: ProblemDto }));

/** A booth endpoint: the password-only `station` principal may call it (every other route refuses it with 403). */
export const StationAllowed = (): MethodDecorator & ClassDecorator => SetMetadata(STATION_ALLOWED, true);

export const CurrentPrincipal = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const req = ctx.switchToHttp().getRequest<{ principal?: Principal }>();
  if (!req.principal) throw new Error('CurrentPrincipal used on a public route');
  return req.principal;
});
