import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './generated/schema.js';
import { ApertureError, JobFailedError, type Problem, unwrap } from './errors.js';

type Schemas = components['schemas'];
export type TokenResponse = Schemas['TokenResponseDto'];
/** A job's result, discriminated by `type` (the job type): `result` is that type's schema once completed. */
export type JobResult = Schemas['JobResultDto'];
/** A task's result, discriminated by `type` (prediction or fragments). */
export type TaskResult = Schemas['TaskResultDto'];
export type JobType = JobResult['type'];
/** The result of one job type, e.g. `ResultOf<'task.predict'>`. */
export type ResultOf<T extends JobType> = NonNullable<Extract<JobResult, { type: T }>['result']>;

/** How the client signs in: a user's password (logs in on first use), an API key, or tokens you already hold. */
export type Credentials = { username: string; password: string } | { apiKey: string } | { accessToken: string; refreshToken?: string };

export interface ApertureOptions {
  /** The server, e.g. http://localhost:3000 (paths carry /api/v1). */
  baseUrl: string;
  credentials?: Credentials;
  /**
   * Seconds a job-creating POST may wait for the job to finish (`Prefer: wait=N`); the server answers 200 with the result
   * when it finished in time, else 202 as usual. 0 or undefined: no Prefer header.
   */
  preferWait?: number;
  /** Called with new tokens after a login or refresh (to store them). */
  onTokens?: (tokens: TokenResponse) => void;
  fetch?: (request: Request) => Promise<Response>;
}

export interface WaitOptions {
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);
const AUTH_PATHS = ['/api/v1/auth/login', '/api/v1/auth/refresh', '/api/v1/auth/token', '/api/v1/auth/register'];

/** The Aperture client: `api` is the typed client of every route; the rest are the helpers around it. */
export interface Aperture {
  /** Every route, typed from openapi.yaml (openapi-fetch): `api.GET('/api/v1/tasks/{id}', { params: { path: { id } } })`. */
  readonly api: Client<paths>;
  /** Logs in with a password and uses the tokens from now on. */
  login(username: string, password: string): Promise<TokenResponse>;
  /** Trades the refresh token for new tokens (also done once, automatically, when an answer is 401). */
  refresh(): Promise<TokenResponse>;
  /** Uses an API key (X-API-Key) from now on. */
  useApiKey(key: string): void;
  /** The tokens in use, if signed in with a password or tokens. */
  tokens(): { accessToken: string; refreshToken: string | null } | null;
  /** Waits on GET /jobs/{id}/result?wait_ms= until the job is final; throws JobFailedError unless it completed. */
  waitForJob(id: string, opts?: WaitOptions): Promise<JobResult>;
  /** As waitForJob, for a task (GET /tasks/{id}/result): the result typed by task type. */
  waitForTask(id: string, opts?: WaitOptions): Promise<TaskResult>;
  /**
   * The finished job of a job-creating POST: its 200 body when `Prefer: wait` was honoured, else the 202's job waited on.
   * `res` is what `api.POST(...)` returned.
   */
  settleJob(res: { data?: unknown; error?: unknown; response: Response }, opts?: WaitOptions): Promise<JobResult>;
  /** As settleJob, for POST /tasks and /tasks/{id}/rerun. */
  settleTask(res: { data?: unknown; error?: unknown; response: Response }, opts?: WaitOptions): Promise<TaskResult>;
}

export function createAperture(options: ApertureOptions): Aperture {
  const baseFetch = options.fetch ?? ((r: Request) => globalThis.fetch(r));
  let access: string | null = null;
  let refreshToken: string | null = null;
  let apiKey: string | null = null;
  let password: { username: string; password: string } | null = null;
  const c = options.credentials;
  if (c && 'apiKey' in c) apiKey = c.apiKey;
  else if (c && 'accessToken' in c) [access, refreshToken] = [c.accessToken, c.refreshToken ?? null];
  else if (c) password = c;

  let renewing: Promise<void> | null = null;
  const isAuthPath = (url: string): boolean => AUTH_PATHS.includes(new URL(url).pathname);

  function sign(req: Request): Request {
    if (isAuthPath(req.url)) return req;
    if (apiKey) req.headers.set('X-API-Key', apiKey);
    else if (access) req.headers.set('Authorization', `Bearer ${access}`);
    if (options.preferWait && req.method === 'POST' && !req.headers.has('Prefer')) req.headers.set('Prefer', `wait=${options.preferWait}`);
    return req;
  }

  /** One renewal at a time: the refresh token if there is one (refresh tokens rotate), else the password. */
  function renew(): Promise<void> {
    renewing ??= (async () => {
      try {
        if (refreshToken) {
          try {
            await aperture.refresh();
          } catch (e) {
            if (!password) throw e;
            await aperture.login(password.username, password.password);
          }
        } else if (password) await aperture.login(password.username, password.password);
        else throw new ApertureError(401, { code: 'UNAUTHORIZED', detail: 'No credentials to sign in with' });
      } finally {
        renewing = null;
      }
    })();
    return renewing;
  }

  /** Signs every request; on a 401 renews the tokens once and sends the request again. */
  async function authedFetch(req: Request): Promise<Response> {
    if (!apiKey && !access && password && !isAuthPath(req.url)) await renew();
    const again = req.clone();
    const res = await baseFetch(sign(req));
    if (res.status !== 401 || apiKey || isAuthPath(req.url) || (!refreshToken && !password)) return res;
    await res.body?.cancel();
    await renew();
    return baseFetch(sign(again));
  }

  const api = createClient<paths>({ baseUrl: options.baseUrl, fetch: authedFetch });

  function useTokens(t: TokenResponse): TokenResponse {
    access = t.access_token;
    refreshToken = t.refresh_token;
    apiKey = null;
    options.onTokens?.(t);
    return t;
  }

  async function waitFinal<T extends { status: string }>(
    id: string,
    poll: (waitMs: number) => Promise<T>,
    opts: WaitOptions = {},
  ): Promise<T> {
    const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
    for (;;) {
      opts.signal?.throwIfAborted();
      const left = deadline - Date.now();
      const body = await poll(Math.max(0, Math.min(30_000, left)));
      if (FINAL.has(body.status)) {
        if (body.status === 'completed') return body;
        const st = unwrap(await api.GET('/api/v1/jobs/{id}/status', { params: { path: { id } } }));
        throw new JobFailedError(id, body.status, st.error);
      }
      if (left <= 0) throw new JobFailedError(id, body.status, `still ${body.status} after ${opts.timeoutMs ?? 600_000} ms`);
    }
  }

  /** The job id of a 202 answer: `job_id` on most routes, `id` on the task routes. */
  function acceptedId(data: unknown): string {
    const d = (data ?? {}) as { job_id?: unknown; id?: unknown };
    const id = typeof d.job_id === 'string' ? d.job_id : d.id;
    if (typeof id !== 'string') throw new ApertureError(202, { detail: 'The 202 answer carries no job id' });
    return id;
  }

  const aperture: Aperture = {
    api,
    async login(username, pw) {
      password = { username, password: pw };
      return useTokens(unwrap(await api.POST('/api/v1/auth/login', { body: { username, password: pw } })));
    },
    async refresh() {
      if (!refreshToken) throw new ApertureError(401, { code: 'UNAUTHORIZED', detail: 'No refresh token' });
      return useTokens(unwrap(await api.POST('/api/v1/auth/refresh', { body: { refresh_token: refreshToken } })));
    },
    useApiKey(key) {
      apiKey = key;
    },
    tokens() {
      return access ? { accessToken: access, refreshToken } : null;
    },
    waitForJob(id, opts) {
      return waitFinal(
        id,
        async (waitMs) => unwrap(await api.GET('/api/v1/jobs/{id}/result', { params: { path: { id }, query: { wait_ms: waitMs } } })),
        opts,
      );
    },
    waitForTask(id, opts) {
      return waitFinal(
        id,
        async (waitMs) => unwrap(await api.GET('/api/v1/tasks/{id}/result', { params: { path: { id }, query: { wait_ms: waitMs } } })),
        opts,
      );
    },
    async settleJob(res, opts) {
      const data = unwrap(res);
      if (res.response.status === 200 && isCompleted(data)) return data as JobResult;
      return aperture.waitForJob(acceptedId(data), opts);
    },
    async settleTask(res, opts) {
      const data = unwrap(res);
      if (res.response.status === 200 && isCompleted(data)) return data as TaskResult;
      return aperture.waitForTask(acceptedId(data), opts);
    },
  };
  return aperture;
}

/** A result DTO of a completed job (a 200 answer to Prefer: wait); a failed one is waited on, which throws its error. */
function isCompleted(data: unknown): boolean {
  const d = data as { status?: unknown; result?: unknown } | null;
  return !!d && d.status === 'completed' && 'result' in d;
}

export type { Problem };
