/**
 * What an account may do: a user owns its data; an admin also manages accounts and models; station is the booth's
 * built-in principal (password-only login), limited to the booth endpoints; a booth-worker is an outside X-ray
 * worker that leases booth jobs over HTTP (an API key acts with its owner's role).
 */
export const USER_ROLES = ['user', 'admin', 'station', 'booth-worker'] as const;
export type UserRole = (typeof USER_ROLES)[number];
