import { createPrivateKey, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';

/** The one typed configuration of every Aperture process, read from the environment once at boot. */
export interface AppConfig {
  env: 'development' | 'production' | 'test';
  host: string;
  port: number;
  dataDir: string;
  database: { dialect: 'sqlite'; file: string; url: string } | { dialect: 'postgresql'; url: string };
  redis: { url: string; prefix: string };
  jwt: { secret: string; issuer: string; audience: string; accessTtlSeconds: number; refreshTtlSeconds: number };
  admin: { username: string; password: string; email: string } | null;
  /** The booth's shared password (plain, or an argon2 hash); null disables the station login. */
  stationPassword: string | null;
  google: {
    clientId: string;
    clientSecret: string;
    redirectUri: string;
    authUrl: string;
    tokenUrl: string;
    userinfoUrl: string;
  } | null;
  frontendUrl: string;
  /** Google Drive as a storage target (a service account writing into one folder); the endpoints are overridable for tests. */
  drive: DriveConfig;
  bruteForce: {
    maxFailures: number;
    maxFailuresPerIp: number;
    windowSeconds: number;
    maxLockSeconds: number;
    /** Failed bearer tokens / API keys one client address may present per minute before it gets 429s. */
    badCredentialsPerMinute: number;
  };
  cors: { origins: string[] | true };
  /**
   * Who may read the detailed health report, the API docs (/docs) and the API's Prometheus metrics (/metrics): anyone,
   * admins only, or nobody (404). The worker's probe port serves /metrics unless `metrics` is off (it has no sign-in).
   */
  exposure: { healthDetails: Exposure; apiDocs: Exposure; metrics: Exposure };
  /** trustProxy: Express's `trust proxy` (false, a hop count, or the proxies' addresses/CIDRs; true trusts any). */
  http: { jsonBodyLimit: string; batchJsonBodyLimit: string; trustProxy: boolean | number | string[]; shutdownTimeoutMs: number };
  rateLimit: { perMinute: number; perHour: number };
  /**
   * How long an API process keeps a verified caller (a user of a bearer token, an API key) in memory instead of reading
   * it from the database on every request; 0 turns the cache off. Any change to the user or key empties it at once.
   */
  principalCache: { ttlSeconds: number };
  /** format: json (one JSON object a line, for log collectors) or pretty (human-readable lines, for a terminal). */
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'; format: LogFormat };
  storage: { dir: string };
  jobs: {
    attempts: number;
    backoffMs: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
    concurrency: number;
    /** How often each worker repairs what Redis or a crash left behind (queued rows without a queue entry, expired leases). */
    sweepIntervalMs: number;
    /** How often a worker removes stored files no row references (and failed jobs past their retention). */
    storageSweepIntervalMs: number;
    /** Files younger than this are never orphans yet: an upload is stored just before its row is saved. */
    orphanGraceMs: number;
    /** Failed and cancelled jobs (with their files) are deleted this many days after they ended; 0 keeps them. */
    failedJobRetentionDays: number;
  };
  worker: { healthPort: number; migrationsWaitMs: number };
  qr: { urlTemplate: string };
  /** The pet X-ray booth: who makes the result options, how many, the external workers' lease, the carousel. */
  booth: {
    /** internal: the worker runs the xray model; external: outside workers lease the jobs over HTTP; both: either. */
    processing: 'internal' | 'external' | 'both';
    resultsPerImage: number;
    leaseSeconds: number;
    carouselSize: number;
    /** The animal types a submission may name (`other` is always added). */
    animalTypes: string[];
  };
  models: {
    /** The folder with manifest.json and the ONNX files; null = the shipped models/ of this checkout. */
    dir: string | null;
    /** Loaded by every worker at start; /health/ready on the worker waits for them. */
    preload: string[];
    /** Estimated session memory a worker may hold; least recently used models are unloaded past it. 0 = no limit. */
    memoryBudgetMb: number;
    /** How long a worker's published model state lives in Redis without a heartbeat. */
    stateTtlSeconds: number;
    /** Run each model once on zero inputs when it loads, so the first request runs warm. */
    warmup: boolean;
    /** Each worker's LRU cache of SAM image embeddings, bounded by their bytes (MB). 0 = no cache. */
    samEmbeddingCacheMb: number;
    /** The largest ONNX file POST /models takes (bytes). */
    uploadMaxBytes: number;
    /** Where a worker keeps its local copies of installed models' files. */
    cacheDir: string;
  };
  images: {
    /** Largest accepted upload (bytes). */
    maxBytes: number;
    /** Largest accepted width or height (pixels); also bounds decoding (decompression bombs). */
    maxSide: number;
  };
  uploads: {
    /** Where multipart files are streamed while a request runs (removed when it ends). */
    tmpDir: string;
    /** Largest multipart request body (bytes), refused from its Content-Length or while streaming. */
    maxRequestBytes: number;
    /** What one user's images, job inputs and job artifacts may take (bytes); 0 = unlimited. */
    userQuotaBytes: number;
  };
  inference: {
    /** worker_threads running ONNX sessions in each worker process. */
    threads: number;
    intraOpThreads: number;
    graphOptimization: 'disabled' | 'basic' | 'extended' | 'all';
    executionProvider: 'cpu' | 'cuda';
  };
}

/** The fields of a Google service-account key that the Drive client uses. */
export interface ServiceAccountKey {
  clientEmail: string;
  privateKey: string;
  privateKeyId: string | null;
}

export type DriveConfig =
  | { enabled: false; rootUrl: string; tokenUrl: string }
  | { enabled: true; rootUrl: string; tokenUrl: string; serviceAccount: ServiceAccountKey; folderId: string };

/** Raised when the environment does not describe a valid configuration; lists every problem at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** The example secret earlier releases shipped as a default: it is public, so it is refused wherever it appears. */
export const PUBLISHED_JWT_SECRET = 'change-me-development-only-secret';

/**
 * The token-signing secret when JWT_SECRET is unset outside production: 48 random bytes made on first start and kept
 * in DATA_DIR/jwt-secret (mode 0600), so tokens outlive restarts and every process on this DATA_DIR agrees. Written
 * to a temporary file and linked into place, so two processes starting at once end with the same secret.
 */
export function localJwtSecret(dataDir: string): string {
  const file = resolve(dataDir, 'jwt-secret');
  const read = (): string | null => {
    try {
      return readFileSync(file, 'utf8').trim() || null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  };
  const existing = read();
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, `${secret}\n`, { mode: 0o600 });
  try {
    linkSync(tmp, file);
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return read() ?? secret;
  } finally {
    unlinkSync(tmp);
  }
}

type Env = Record<string, string | undefined>;

/** What the configuration reads of one variable: its kind, default and bounds (the configuration reference's rows). */
export interface SettingRead {
  name: string;
  kind: 'string' | 'integer' | 'boolean' | 'enum' | 'url';
  /** The default when unset; undefined when the variable has none (optional, or required). */
  fallback?: string | number | boolean;
  min?: number;
  max?: number;
  /** enum: the allowed values; url: the allowed protocols. */
  allowed?: readonly string[];
}

/** Collects problems instead of failing on the first one, so a bad deploy shows its whole list. */
class Reader {
  readonly problems: string[] = [];
  constructor(
    private readonly env: Env,
    private readonly observe?: (s: SettingRead) => void,
  ) {}

  private value(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  raw(name: string): string | undefined {
    this.observe?.({ name, kind: 'string' });
    return this.value(name);
  }

  str(name: string, fallback: string): string {
    this.observe?.({ name, kind: 'string', fallback });
    return this.value(name) ?? fallback;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    this.observe?.({ name, kind: 'integer', fallback, min, max });
    const v = this.value(name);
    if (v === undefined) return fallback;
    if (!/^-?\d+$/.test(v)) {
      this.problems.push(`${name} must be an integer, got "${v}"`);
      return fallback;
    }
    const n = Number(v);
    if (n < min || n > max) {
      this.problems.push(`${name} must be between ${min} and ${max}, got ${n}`);
      return fallback;
    }
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    this.observe?.({ name, kind: 'boolean', fallback });
    const v = this.value(name);
    if (v === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(v.toLowerCase())) return true;
    if (['0', 'false', 'no', 'off'].includes(v.toLowerCase())) return false;
    this.problems.push(`${name} must be a boolean (true/false), got "${v}"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    this.observe?.({ name, kind: 'enum', fallback, allowed });
    const v = this.value(name);
    if (v === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(v)) {
      this.problems.push(`${name} must be one of ${allowed.join(', ')}, got "${v}"`);
      return fallback;
    }
    return v as T;
  }

  url(name: string, fallback: string, protocols: string[]): string {
    this.observe?.({ name, kind: 'url', fallback, allowed: protocols });
    const v = this.value(name) ?? fallback;
    try {
      const u = new URL(v);
      if (!protocols.includes(u.protocol)) {
        this.problems.push(`${name} must use ${protocols.join(' or ')}, got "${u.protocol}"`);
      }
    } catch {
      this.problems.push(`${name} is not a valid URL: "${v}"`);
    }
    return v;
  }
}

/**
 * TRUST_PROXY, as Express reads `trust proxy`: `false` (default: the peer is the client), a hop count (`1`: one proxy
 * in front, whose X-Forwarded-For entry is the client), or a comma list of the proxies' addresses or CIDRs (or
 * Express's names loopback, linklocal, uniquelocal). `true` trusts every X-Forwarded-For entry, so a client choosing
 * the header chooses its address: only for a proxy that overwrites the header.
 */
function trustProxy(r: Reader): boolean | number | string[] {
  const v = r.raw('TRUST_PROXY')?.trim();
  if (v === undefined || v === '' || v === 'false') return false;
  if (v === 'true') return true;
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    if (hops > 10) r.problems.push(`TRUST_PROXY hop count must be 0..10, got ${v}`);
    return hops;
  }
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const named = new Set(['loopback', 'linklocal', 'uniquelocal']);
  for (const item of list) {
    const [addr, bits, ...rest] = item.split('/');
    const family = isIP(addr ?? '');
    const okBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (!named.has(item) && (family === 0 || !okBits || rest.length > 0)) {
      r.problems.push(`TRUST_PROXY must be false, true, a hop count or a list of addresses/CIDRs; "${item}" is none of these`);
    }
  }
  return list;
}

export const EXPOSURES = ['public', 'admin', 'off'] as const;
export type Exposure = (typeof EXPOSURES)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * Reads and validates the configuration. Throws ConfigError listing every problem.
 * Defaults are the embedded single-machine setup: SQLite and local disk under DATA_DIR, Redis on localhost.
 */
export function loadConfig(env: Env = process.env, observe?: (s: SettingRead) => void): AppConfig {
  const r = new Reader(env, observe);
  const nodeEnv = r.oneOf('NODE_ENV', 'development', ['development', 'production', 'test'] as const);
  const dataDirRaw = r.str('DATA_DIR', './data');
  const dataDir = isAbsolute(dataDirRaw) ? dataDirRaw : resolve(process.cwd(), dataDirRaw);

  const dbUrl = r.raw('DATABASE_URL');
  let database: AppConfig['database'];
  if (dbUrl === undefined) {
    const file = resolve(dataDir, 'aperture.sqlite');
    database = { dialect: 'sqlite', file, url: `sqlite:${file}` };
  } else if (/^postgres(ql)?:\/\//.test(dbUrl)) {
    try {
      new URL(dbUrl);
    } catch {
      r.problems.push(`DATABASE_URL is not a valid URL`);
    }
    database = { dialect: 'postgresql', url: dbUrl };
  } else if (dbUrl.startsWith('sqlite:')) {
    const p = dbUrl.slice('sqlite:'.length).replace(/^\/\//, '');
    if (p === '') r.problems.push('DATABASE_URL sqlite: needs a file path, e.g. sqlite:./data/aperture.sqlite');
    const file = isAbsolute(p) ? p : resolve(process.cwd(), p);
    database = { dialect: 'sqlite', file, url: `sqlite:${file}` };
  } else {
    r.problems.push(`DATABASE_URL must start with postgres://, postgresql:// or sqlite:, got "${dbUrl.split(':')[0]}:…"`);
    database = { dialect: 'sqlite', file: resolve(dataDir, 'aperture.sqlite'), url: '' };
  }

  const jwtRaw = r.raw('JWT_SECRET') || undefined;
  if (jwtRaw === PUBLISHED_JWT_SECRET) {
    r.problems.push('JWT_SECRET is the published example value; set a secret of your own, or unset it outside production');
  }
  let jwtSecret = jwtRaw ?? '';
  if (nodeEnv === 'production') {
    if (jwtRaw === undefined) r.problems.push('JWT_SECRET is required in production');
    else if (jwtSecret.length < 32) r.problems.push('JWT_SECRET must be at least 32 characters in production');
  } else if (jwtRaw === undefined) {
    jwtSecret = localJwtSecret(dataDir);
  }

  const adminUser = r.raw('ADMIN_USERNAME');
  const adminPass = r.raw('ADMIN_PASSWORD');
  let admin: AppConfig['admin'] = null;
  if (adminUser !== undefined || adminPass !== undefined) {
    if (adminUser === undefined || adminPass === undefined) {
      r.problems.push('ADMIN_USERNAME and ADMIN_PASSWORD must be set together');
    } else if (adminPass.length < 8) {
      r.problems.push('ADMIN_PASSWORD must be at least 8 characters');
    } else {
      admin = { username: adminUser, password: adminPass, email: r.str('ADMIN_EMAIL', `${adminUser}@localhost`) };
    }
  }

  const googleId = r.raw('GOOGLE_CLIENT_ID');
  const googleSecret = r.raw('GOOGLE_CLIENT_SECRET');
  let google: AppConfig['google'] = null;
  if (googleId !== undefined || googleSecret !== undefined) {
    if (googleId === undefined || googleSecret === undefined)
      r.problems.push('GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET must be set together');
    else {
      google = {
        clientId: googleId,
        clientSecret: googleSecret,
        redirectUri: r.url('GOOGLE_REDIRECT_URI', 'http://localhost:3000/api/v1/auth/google/callback', ['http:', 'https:']),
        authUrl: r.url('GOOGLE_AUTH_URL', 'https://accounts.google.com/o/oauth2/v2/auth', ['http:', 'https:']),
        tokenUrl: r.url('GOOGLE_TOKEN_URL', 'https://oauth2.googleapis.com/token', ['http:', 'https:']),
        userinfoUrl: r.url('GOOGLE_USERINFO_URL', 'https://openidconnect.googleapis.com/v1/userinfo', ['http:', 'https:']),
      };
    }
  }
  const drive = readDrive(r);
  const stationPassword = r.raw('STATION_PASSWORD') ?? null;
  if (stationPassword !== null && !stationPassword.startsWith('$argon2') && stationPassword.length < 8) {
    r.problems.push('STATION_PASSWORD must be at least 8 characters (or an argon2 hash)');
  }

  const corsRaw = r.str('CORS_ORIGINS', nodeEnv === 'production' ? '' : '*');
  const cors = {
    origins:
      corsRaw === '*'
        ? (true as const)
        : corsRaw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
  };

  const qrTemplate = r.str('QR_URL_TEMPLATE', 'https://aperture.example/q/{code}');
  if (!qrTemplate.includes('{code}')) r.problems.push('QR_URL_TEMPLATE must contain the placeholder {code}');

  const modelsDirRaw = r.raw('MODELS_DIR');
  const modelsPreload = r
    .str('MODELS_PRELOAD', '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const name of modelsPreload) {
    if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) r.problems.push(`MODELS_PRELOAD has an invalid model name "${name}"`);
  }

  const animalTypes = [
    ...new Set(
      r
        .str('BOOTH_ANIMAL_TYPES', 'dog,cat,horse')
        .split(',')
        .map((x) => x.trim().toLowerCase())
        .filter(Boolean)
        .concat('other'),
    ),
  ];
  for (const t of animalTypes) {
    if (!/^[a-z][a-z0-9 -]{0,31}$/.test(t))
      r.problems.push(`BOOTH_ANIMAL_TYPES has an invalid type "${t}" (letters, digits, - and space, ≤ 32)`);
  }

  const bodyLimit = r.str('JSON_BODY_LIMIT', '1mb');
  if (!/^\d+(b|kb|mb)$/i.test(bodyLimit)) r.problems.push(`JSON_BODY_LIMIT must look like 1mb or 512kb, got "${bodyLimit}"`);
  const batchBodyLimit = r.str('BATCH_JSON_BODY_LIMIT', '100mb');
  if (!/^\d+(b|kb|mb)$/i.test(batchBodyLimit)) {
    r.problems.push(`BATCH_JSON_BODY_LIMIT must look like 100mb or 512kb, got "${batchBodyLimit}"`);
  }

  const config: AppConfig = {
    env: nodeEnv,
    host: r.str('HOST', '0.0.0.0'),
    port: r.int('PORT', 3000, 0, 65535),
    dataDir,
    database,
    redis: {
      url: r.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
      prefix: r.str('REDIS_PREFIX', 'aperture'),
    },
    jwt: {
      secret: jwtSecret,
      issuer: r.str('JWT_ISSUER', 'aperture'),
      audience: r.str('JWT_AUDIENCE', 'aperture-api'),
      accessTtlSeconds: r.int('JWT_ACCESS_TTL_SECONDS', 900, 30, 86400),
      refreshTtlSeconds: r.int('JWT_REFRESH_TTL_SECONDS', 30 * 86400, 60, 365 * 86400),
    },
    admin,
    stationPassword,
    google,
    frontendUrl: r.url('FRONTEND_URL', 'http://localhost:3000/', ['http:', 'https:']),
    drive,
    bruteForce: {
      maxFailures: r.int('BRUTE_FORCE_MAX_FAILURES', 5, 1, 1000),
      maxFailuresPerIp: r.int('BRUTE_FORCE_MAX_FAILURES_PER_IP', 20, 1, 100000),
      windowSeconds: r.int('BRUTE_FORCE_WINDOW_SECONDS', 900, 10, 86400),
      maxLockSeconds: r.int('BRUTE_FORCE_MAX_LOCK_SECONDS', 900, 1, 86400),
      badCredentialsPerMinute: r.int('BAD_CREDENTIALS_PER_MINUTE', 30, 1, 1_000_000),
    },
    cors,
    exposure: {
      healthDetails: r.oneOf('HEALTH_DETAILS', nodeEnv === 'production' ? 'admin' : 'public', EXPOSURES),
      apiDocs: r.oneOf('API_DOCS', nodeEnv === 'production' ? 'admin' : 'public', EXPOSURES),
      metrics: r.oneOf('METRICS', nodeEnv === 'production' ? 'admin' : 'public', EXPOSURES),
    },
    http: {
      jsonBodyLimit: bodyLimit,
      batchJsonBodyLimit: batchBodyLimit,
      trustProxy: trustProxy(r),
      shutdownTimeoutMs: r.int('SHUTDOWN_TIMEOUT_MS', 25000, 0, 600000),
    },
    rateLimit: {
      perMinute: r.int('RATE_LIMIT_PER_MINUTE', 60, 1, 1_000_000),
      perHour: r.int('RATE_LIMIT_PER_HOUR', 1000, 1, 100_000_000),
    },
    principalCache: { ttlSeconds: r.int('PRINCIPAL_CACHE_SECONDS', 30, 0, 300) },
    log: {
      level: r.oneOf('LOG_LEVEL', nodeEnv === 'test' ? 'warn' : 'info', LOG_LEVELS),
      format: r.oneOf('LOG_FORMAT', nodeEnv === 'development' && process.stdout.isTTY === true ? 'pretty' : 'json', LOG_FORMATS),
    },
    storage: { dir: resolve(dataDir, r.str('STORAGE_SUBDIR', 'storage')) },
    jobs: {
      attempts: r.int('JOB_ATTEMPTS', 3, 1, 20),
      backoffMs: r.int('JOB_BACKOFF_MS', 2000, 0, 3_600_000),
      lockDurationMs: r.int('JOB_LOCK_DURATION_MS', 30000, 1000, 3_600_000),
      stalledIntervalMs: r.int('JOB_STALLED_INTERVAL_MS', 30000, 500, 3_600_000),
      maxStalledCount: r.int('JOB_MAX_STALLED_COUNT', 2, 0, 100),
      concurrency: r.int('WORKER_CONCURRENCY', 2, 1, 64),
      sweepIntervalMs: r.int('JOB_SWEEP_INTERVAL_MS', 30000, 500, 3_600_000),
      storageSweepIntervalMs: r.int('STORAGE_SWEEP_INTERVAL_MS', 3_600_000, 1000, 86_400_000),
      orphanGraceMs: r.int('STORAGE_ORPHAN_GRACE_MS', 3_600_000, 0, 7 * 86_400_000),
      failedJobRetentionDays: r.int('FAILED_JOB_RETENTION_DAYS', 30, 0, 3650),
    },
    worker: {
      healthPort: r.int('WORKER_HEALTH_PORT', 3001, 0, 65535),
      migrationsWaitMs: r.int('WORKER_MIGRATIONS_WAIT_MS', 120000, 0, 3_600_000),
    },
    qr: { urlTemplate: qrTemplate },
    booth: {
      processing: r.oneOf('BOOTH_PROCESSING', 'internal', ['internal', 'external', 'both'] as const),
      resultsPerImage: r.int('BOOTH_RESULTS_PER_IMAGE', 3, 1, 10),
      leaseSeconds: r.int('BOOTH_LEASE_SECONDS', 120, 1, 86400),
      carouselSize: r.int('CAROUSEL_SIZE', 20, 1, 1000),
      animalTypes,
    },
    models: {
      dir: modelsDirRaw === undefined ? null : isAbsolute(modelsDirRaw) ? modelsDirRaw : resolve(process.cwd(), modelsDirRaw),
      preload: modelsPreload,
      memoryBudgetMb: r.int('MODELS_MEMORY_BUDGET_MB', 0, 0, 1_000_000),
      stateTtlSeconds: r.int('MODELS_STATE_TTL_SECONDS', 30, 3, 3600),
      warmup: r.bool('MODELS_WARMUP', true),
      samEmbeddingCacheMb: r.int('SAM_EMBEDDING_CACHE_MB', 256, 0, 1_000_000),
      uploadMaxBytes: r.int('MODEL_UPLOAD_MAX_MB', 200, 1, 16_384) * 1024 * 1024,
      cacheDir: resolve(dataDir, 'models-cache'),
    },
    images: {
      maxBytes: r.int('IMAGE_MAX_BYTES', 50 * 1024 * 1024, 1024, 2 * 1024 * 1024 * 1024),
      maxSide: r.int('IMAGE_MAX_SIDE', 4096, 16, 65535),
    },
    uploads: {
      tmpDir: resolve(dataDir, r.str('UPLOAD_TMP_SUBDIR', 'tmp/uploads')),
      maxRequestBytes: r.int('UPLOAD_MAX_REQUEST_MB', 256, 1, 1_000_000) * 1024 * 1024,
      userQuotaBytes: r.int('USER_QUOTA_MB', 0, 0, 1_000_000_000) * 1024 * 1024,
    },
    inference: {
      threads: r.int('INFERENCE_THREADS', 1, 1, 64),
      intraOpThreads: r.int('INFERENCE_INTRA_OP_THREADS', 0, 0, 256),
      graphOptimization: r.oneOf('INFERENCE_GRAPH_OPTIMIZATION', 'all', ['disabled', 'basic', 'extended', 'all'] as const),
      executionProvider: r.oneOf('INFERENCE_EXECUTION_PROVIDER', 'cpu', ['cpu', 'cuda'] as const),
    },
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** GOOGLE_DRIVE_*: off by default; when on, a readable service-account key and a folder id are required. */
function readDrive(r: Reader): DriveConfig {
  const enabled = r.bool('GOOGLE_DRIVE_ENABLED', false);
  const rootUrl = r.url('GOOGLE_DRIVE_ROOT_URL', 'https://www.googleapis.com/', ['http:', 'https:']);
  const tokenUrl = r.url('GOOGLE_DRIVE_TOKEN_URL', 'https://oauth2.googleapis.com/token', ['http:', 'https:']);
  const keyRaw = r.raw('GOOGLE_SERVICE_ACCOUNT_JSON');
  const folderId = r.raw('DRIVE_FOLDER_ID');
  if (!enabled) return { enabled, rootUrl, tokenUrl };
  if (folderId === undefined) r.problems.push('DRIVE_FOLDER_ID is required when GOOGLE_DRIVE_ENABLED=true');
  else if (!/^[A-Za-z0-9_-]+$/.test(folderId)) r.problems.push(`DRIVE_FOLDER_ID is not a Drive file id: "${folderId}"`);
  let serviceAccount: ServiceAccountKey | null = null;
  if (keyRaw === undefined) r.problems.push('GOOGLE_SERVICE_ACCOUNT_JSON is required when GOOGLE_DRIVE_ENABLED=true');
  else serviceAccount = parseServiceAccount(keyRaw, r.problems);
  if (folderId === undefined || serviceAccount === null) return { enabled: false, rootUrl, tokenUrl };
  return { enabled, rootUrl, tokenUrl, serviceAccount, folderId };
}

/** The key JSON itself (starts with "{") or a path to the file Google's console downloads. */
function parseServiceAccount(raw: string, problems: string[]): ServiceAccountKey | null {
  let text = raw;
  if (!raw.startsWith('{')) {
    try {
      text = readFileSync(isAbsolute(raw) ? raw : resolve(process.cwd(), raw), 'utf8');
    } catch (e) {
      problems.push(`GOOGLE_SERVICE_ACCOUNT_JSON: cannot read the key file "${raw}" (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      return null;
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    problems.push('GOOGLE_SERVICE_ACCOUNT_JSON is not valid JSON');
    return null;
  }
  const o = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const str = (k: string): string | null => (typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : null);
  if (str('type') !== 'service_account') {
    problems.push(`GOOGLE_SERVICE_ACCOUNT_JSON must be a service-account key ("type": "service_account")`);
    return null;
  }
  const clientEmail = str('client_email');
  const privateKey = str('private_key');
  if (clientEmail === null || privateKey === null) {
    problems.push('GOOGLE_SERVICE_ACCOUNT_JSON needs client_email and private_key');
    return null;
  }
  try {
    createPrivateKey(privateKey);
  } catch {
    problems.push('GOOGLE_SERVICE_ACCOUNT_JSON: private_key is not a valid PEM private key');
    return null;
  }
  return { clientEmail, privateKey, privateKeyId: str('private_key_id') };
}
