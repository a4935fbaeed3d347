import type { AppConfig } from '@aperture/config/config.js';

/** The base URL a browser on this machine uses for a server listening on host:port (a wildcard address is localhost). */
export function localUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

/**
 * The one line printed once the single-process server listens: where Swagger UI is and how to sign in there as the
 * admin. The admin account comes from ADMIN_USERNAME / ADMIN_PASSWORD (created on the first start when no user of that
 * name exists); the password itself is never printed.
 */
export function readyLine(
  config: Pick<AppConfig, 'admin' | 'host'> & { exposure: Pick<AppConfig['exposure'], 'apiDocs'> },
  port: number,
): string {
  const base = localUrl(config.host, port);
  const docs = config.exposure.apiDocs;
  const where =
    docs === 'off'
      ? `Aperture is ready at ${base}/api/v1 (Swagger UI is off: API_DOCS=off)`
      : `Aperture is ready: Swagger UI at ${base}/docs${docs === 'admin' ? ' (admins only: API_DOCS=admin)' : ''}`;
  const signIn = config.admin
    ? `sign in as the admin "${config.admin.username}" with the password in ADMIN_PASSWORD (set when that account was first ` +
      `created) through Authorize (OAuth2 password) or POST /api/v1/auth/login`
    : 'no admin account is configured: set ADMIN_USERNAME and ADMIN_PASSWORD (8+ characters) and restart to create one; ' +
      'anyone may register at POST /api/v1/auth/register';
  return `${where}; ${signIn}`;
}
