/**
 * What an account may do: a user owns its data; an admin also manages accounts and models; station is the booth's
 * built-in principal (password-only login), limited to the booth endpoints.
 */
export const USER_ROLES = ['user', 'admin', 'station'] as const;
export type UserRole = (typeof USER_ROLES)[number];
