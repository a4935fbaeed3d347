import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, PUBLISHED_JWT_SECRET } from './config.js';

const tmpDir = (): string => mkdtempSync(join(tmpdir(), 'aperture-config-'));

const problemsOf = (env: Record<string, string>): string[] => {
  try {
    loadConfig({ DATA_DIR: tmpDir(), ...env });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe('loadConfig', () => {
  it('runs on embedded defaults: SQLite under DATA_DIR, local Redis, port 3000', () => {
    const c = loadConfig({ DATA_DIR: '/tmp/aperture-x' });
    expect(c.database).toEqual({
      dialect: 'sqlite',
      file: '/tmp/aperture-x/aperture.sqlite',
      url: 'sqlite:/tmp/aperture-x/aperture.sqlite',
    });
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.port).toBe(3000);
    expect(c.rateLimit).toEqual({ perMinute: 60, perHour: 1000 });
    expect(c.storage.dir).toBe('/tmp/aperture-x/storage');
  });

  it('reads PostgreSQL URLs', () => {
    expect(loadConfig({ DATA_DIR: tmpDir(), DATABASE_URL: 'postgres://u:p@db:5432/aperture' }).database).toEqual({
      dialect: 'postgresql',
      url: 'postgres://u:p@db:5432/aperture',
    });
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({
      PORT: 'x',
      REDIS_URL: 'http://nope',
      LOG_LEVEL: 'loud',
      JOB_ATTEMPTS: '0',
      QR_URL_TEMPLATE: 'https://x/',
      ADMIN_USERNAME: 'root',
    });
    expect(problems).toHaveLength(6);
    expect(problems.join('\n')).toMatch(/PORT must be an integer/);
    expect(problems.join('\n')).toMatch(/REDIS_URL must use redis: or rediss:/);
    expect(problems.join('\n')).toMatch(/LOG_LEVEL must be one of/);
    expect(problems.join('\n')).toMatch(/JOB_ATTEMPTS must be between 1 and 20/);
    expect(problems.join('\n')).toMatch(/QR_URL_TEMPLATE must contain the placeholder \{code\}/);
    expect(problems.join('\n')).toMatch(/ADMIN_USERNAME and ADMIN_PASSWORD must be set together/);
  });

  it('refuses a missing or short JWT secret in production, and the published example value anywhere', () => {
    expect(problemsOf({ NODE_ENV: 'production', CORS_ORIGINS: 'https://a' })).toContain('JWT_SECRET is required in production');
    const published = 'JWT_SECRET is the published example value; set a secret of your own, or unset it outside production';
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: PUBLISHED_JWT_SECRET })).toContain(published);
    expect(problemsOf({ DATA_DIR: tmpDir(), JWT_SECRET: PUBLISHED_JWT_SECRET })).toContain(published);
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: 'short' })).toContain(
      'JWT_SECRET must be at least 32 characters in production',
    );
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) })).toEqual([]);
  });

  it('outside production, without JWT_SECRET, makes a random secret once and keeps it in DATA_DIR (0600)', () => {
    const dir = tmpDir();
    const first = loadConfig({ DATA_DIR: dir }).jwt.secret;
    expect(first).toMatch(/^[A-Za-z0-9_-]{64}$/);
    expect(loadConfig({ DATA_DIR: dir }).jwt.secret).toBe(first);
    expect(statSync(join(dir, 'jwt-secret')).mode & 0o777).toBe(0o600);
    expect(loadConfig({ DATA_DIR: tmpDir() }).jwt.secret).not.toBe(first);
    expect(loadConfig({ DATA_DIR: dir, JWT_SECRET: 'mine' }).jwt.secret).toBe('mine');
  });
});

describe('loadConfig: TRUST_PROXY', () => {
  const trust = (v: string) => loadConfig({ DATA_DIR: tmpDir(), TRUST_PROXY: v }).http.trustProxy;
  it('reads false, true, a hop count or a list of addresses and CIDRs, as Express does', () => {
    expect(loadConfig({ DATA_DIR: tmpDir() }).http.trustProxy).toBe(false);
    expect(trust('false')).toBe(false);
    expect(trust('true')).toBe(true);
    expect(trust('1')).toBe(1);
    expect(trust('10.0.0.0/8, loopback,2001:db8::/32,192.168.1.7')).toEqual(['10.0.0.0/8', 'loopback', '2001:db8::/32', '192.168.1.7']);
  });
  it('refuses anything else', () => {
    expect(problemsOf({ TRUST_PROXY: 'yes' })[0]).toMatch(/TRUST_PROXY must be false, true, a hop count or a list/);
    expect(problemsOf({ TRUST_PROXY: '10.0.0.0/33' })[0]).toMatch(/"10.0.0.0\/33" is none of these/);
    expect(problemsOf({ TRUST_PROXY: '99' })).toEqual(['TRUST_PROXY hop count must be 0..10, got 99']);
  });
});

describe('loadConfig: Google Drive', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = {
    type: 'service_account',
    client_email: 'uploader@aperture-test.iam.gserviceaccount.com',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    private_key_id: 'key-1',
  };

  it('is off by default, with the real Google endpoints', () => {
    expect(loadConfig({ DATA_DIR: tmpDir() }).drive).toEqual({
      enabled: false,
      rootUrl: 'https://www.googleapis.com/',
      tokenUrl: 'https://oauth2.googleapis.com/token',
    });
  });

  it('reads the key as inline JSON or from a file', () => {
    const inline = loadConfig({
      DATA_DIR: tmpDir(),
      GOOGLE_DRIVE_ENABLED: 'true',
      GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(key),
      DRIVE_FOLDER_ID: 'f1',
    });
    expect(inline.drive).toMatchObject({
      enabled: true,
      folderId: 'f1',
      serviceAccount: { clientEmail: key.client_email, privateKey: key.private_key, privateKeyId: 'key-1' },
    });
    const file = join(mkdtempSync(join(tmpdir(), 'aperture-sa-')), 'key.json');
    writeFileSync(file, JSON.stringify(key));
    const fromFile = loadConfig({
      DATA_DIR: tmpDir(),
      GOOGLE_DRIVE_ENABLED: 'true',
      GOOGLE_SERVICE_ACCOUNT_JSON: file,
      DRIVE_FOLDER_ID: 'f1',
    });
    expect(fromFile.drive).toEqual(inline.drive);
  });

  it('refuses Drive enabled without a key or a folder, and a key that is not a service-account key', () => {
    expect(problemsOf({ GOOGLE_DRIVE_ENABLED: 'true' })).toEqual([
      'DRIVE_FOLDER_ID is required when GOOGLE_DRIVE_ENABLED=true',
      'GOOGLE_SERVICE_ACCOUNT_JSON is required when GOOGLE_DRIVE_ENABLED=true',
    ]);
    const on = { GOOGLE_DRIVE_ENABLED: 'true', DRIVE_FOLDER_ID: 'f1' };
    expect(problemsOf({ ...on, GOOGLE_SERVICE_ACCOUNT_JSON: '/nonexistent/key.json' })).toEqual([
      'GOOGLE_SERVICE_ACCOUNT_JSON: cannot read the key file "/nonexistent/key.json" (ENOENT)',
    ]);
    expect(problemsOf({ ...on, GOOGLE_SERVICE_ACCOUNT_JSON: '{nope' })).toEqual(['GOOGLE_SERVICE_ACCOUNT_JSON is not valid JSON']);
    expect(problemsOf({ ...on, GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify({ ...key, type: 'authorized_user' }) })).toEqual([
      'GOOGLE_SERVICE_ACCOUNT_JSON must be a service-account key ("type": "service_account")',
    ]);
    expect(problemsOf({ ...on, GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify({ ...key, private_key: 'not a key' }) })).toEqual([
      'GOOGLE_SERVICE_ACCOUNT_JSON: private_key is not a valid PEM private key',
    ]);
    expect(problemsOf({ ...on, GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(key), GOOGLE_DRIVE_ROOT_URL: 'ftp://x' })).toEqual([
      'GOOGLE_DRIVE_ROOT_URL must use http: or https:, got "ftp:"',
    ]);
  });

  it('ignores the key and folder while Drive is disabled', () => {
    expect(problemsOf({ GOOGLE_DRIVE_ENABLED: 'false', GOOGLE_SERVICE_ACCOUNT_JSON: '{nope' })).toEqual([]);
  });
});

describe('loadConfig: the booth', () => {
  it('defaults to internal processing, 3 options, 120 s leases, 20 carousel pairs, dog/cat/horse plus other', () => {
    expect(loadConfig({ DATA_DIR: tmpDir() }).booth).toEqual({
      processing: 'internal',
      resultsPerImage: 3,
      leaseSeconds: 120,
      carouselSize: 20,
      animalTypes: ['dog', 'cat', 'horse', 'other'],
    });
  });

  it('reads the animal types trimmed, lower-cased and once each, other always last', () => {
    const c = loadConfig({ DATA_DIR: tmpDir(), BOOTH_ANIMAL_TYPES: ' Rabbit, guinea pig,rabbit ,other', BOOTH_PROCESSING: 'both' });
    expect(c.booth.animalTypes).toEqual(['rabbit', 'guinea pig', 'other']);
    expect(c.booth.processing).toBe('both');
  });

  it('refuses an unknown processing mode, out-of-range numbers and odd animal types', () => {
    expect(
      problemsOf({
        BOOTH_PROCESSING: 'cloud',
        BOOTH_RESULTS_PER_IMAGE: '0',
        BOOTH_LEASE_SECONDS: 'soon',
        CAROUSEL_SIZE: '5000',
        BOOTH_ANIMAL_TYPES: 'dog,<script>',
      }),
    ).toEqual([
      'BOOTH_ANIMAL_TYPES has an invalid type "<script>" (letters, digits, - and space, ≤ 32)',
      'BOOTH_PROCESSING must be one of internal, external, both, got "cloud"',
      'BOOTH_RESULTS_PER_IMAGE must be between 1 and 10, got 0',
      'BOOTH_LEASE_SECONDS must be an integer, got "soon"',
      'CAROUSEL_SIZE must be between 1 and 1000, got 5000',
    ]);
  });
});
