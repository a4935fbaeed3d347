import { describe, expect, it } from 'vitest';
import { localUrl, readyLine } from './ready-line.js';

describe('the ready line', () => {
  const admin = { username: 'root', password: 'secret-password-1', email: 'root@localhost' };

  it('names the Swagger UI URL and the admin to sign in as, never the password', () => {
    const line = readyLine({ host: '0.0.0.0', admin, exposure: { apiDocs: 'public' } }, 3000);
    expect(line).toBe(
      'Aperture is ready: Swagger UI at http://localhost:3000/docs; sign in as the admin "root" with the password in ' +
        'ADMIN_PASSWORD (set when that account was first created) through Authorize (OAuth2 password) or POST /api/v1/auth/login',
    );
    expect(line).not.toContain(admin.password);
    expect(line).not.toContain('\n');
  });

  it('without an admin, says how to get one', () => {
    const line = readyLine({ host: '127.0.0.1', admin: null, exposure: { apiDocs: 'public' } }, 8080);
    expect(line).toMatch(/^Aperture is ready: Swagger UI at http:\/\/127\.0\.0\.1:8080\/docs; no admin account is configured: /);
    expect(line).toContain('set ADMIN_USERNAME and ADMIN_PASSWORD');
  });

  it('says when the docs are for admins only, or off', () => {
    expect(readyLine({ host: '::', admin, exposure: { apiDocs: 'admin' } }, 3000)).toMatch(
      /^Aperture is ready: Swagger UI at http:\/\/localhost:3000\/docs \(admins only: API_DOCS=admin\); sign in as the admin "root"/,
    );
    expect(readyLine({ host: '0.0.0.0', admin, exposure: { apiDocs: 'off' } }, 3000)).toMatch(
      /^Aperture is ready at http:\/\/localhost:3000\/api\/v1 \(Swagger UI is off: API_DOCS=off\); /,
    );
  });

  it('turns a wildcard listen address into localhost and brackets IPv6', () => {
    expect(localUrl('0.0.0.0', 1)).toBe('http://localhost:1');
    expect(localUrl('::1', 2)).toBe('http://[::1]:2');
    expect(localUrl('10.0.0.5', 3)).toBe('http://10.0.0.5:3');
  });
});
