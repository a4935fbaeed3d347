/**
 * What an account may do: a user owns its data; an admin also manages accounts and models; station is the booth's
 * built-in principal (password-only login), limited to the booth endpoints; a booth-worker is an outside X-ray
 * worker that leases booth jobs over HTTP (its API keys need the booth-worker scope).
 */
export const USER_ROLES = ['user', 'admin', 'station', 'booth-worker'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/**
 * What an API key may do, chosen when it is made: `read` (GET), `write` (everything else), `admin` (act as the
 * admin its owner is; without it an admin's key acts as a plain user), `booth-worker` (the booth's worker routes).
 */
export const API_KEY_SCOPES = ['read', 'write', 'admin', 'booth-worker'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];
export const DEFAULT_API_KEY_SCOPES: readonly ApiKeyScope[] = ['read', 'write'];
