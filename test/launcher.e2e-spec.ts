import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The launcher's Redis for local runs (`./aperture start`, and `./aperture with-redis CMD`, the same logic without the
 * install and the build), run as a user runs it: with REDIS_URL at a port where nothing listens, and a PATH that has
 * or lacks redis-server.
 */

const root = resolve(import.meta.dirname, '..');
const launcher = resolve(root, 'aperture');

/** The temporary folders of this file's tests, removed at the end. */
const temps: string[] = [];
const temp = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** Where a command is on this machine's PATH, or null. */
function which(cmd: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

/** A folder with only the commands the launcher's Redis logic uses (and redis-server when asked). */
function binDir(withRedis: boolean): string {
  const dir = temp('aperture-bin-');
  const cmds = ['bash', 'dirname', 'mkdir', 'sleep', ...(withRedis ? ['redis-server'] : [])];
  for (const c of cmds) {
    const p = which(c);
    if (!p) throw new Error(`${c} is not installed`);
    symlinkSync(p, join(dir, c));
  }
  symlinkSync(process.execPath, join(dir, 'node')); // the Node running the tests (>= 22.17): no provisioning
  return dir;
}

async function unusedPort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

/** The first line Redis answers to PING at port, or null when nothing accepts the connection. */
async function ping(port: number): Promise<string | null> {
  return new Promise((ok) => {
    const s = createConnection(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      ok(String(d).trim());
      s.destroy();
    });
    s.once('error', () => ok(null));
  });
}

async function env(withRedis: boolean): Promise<NodeJS.ProcessEnv & { DATA_DIR: string; REDIS_URL: string }> {
  return {
    PATH: binDir(withRedis),
    HOME: temp('aperture-home-'),
    REDIS_URL: `redis://127.0.0.1:${await unusedPort()}`,
    DATA_DIR: join(temp('aperture-data-'), 'data'),
  };
}

/**
 * The command the launcher runs with its Redis: prints REDIS_URL, and on SIGTERM/SIGINT pings that Redis again (the
 * server still needs it while it shuts down) before it exits; without a signal it exits with code 3 after a second.
 */
const CHILD = `
const net = require('net');
const u = new URL(process.env.REDIS_URL);
const ping = () => new Promise((ok) => {
  const s = net.createConnection(+u.port, u.hostname, () => s.write('PING\\r\\n'));
  s.once('data', (d) => { ok(String(d).trim()); s.destroy(); });
  s.once('error', (e) => ok('error ' + e.code));
});
const stay = process.argv[1] === 'stay';
ping().then((r) => console.log('url ' + process.env.REDIS_URL + ' ' + r));
for (const sig of ['SIGTERM', 'SIGINT']) process.once(sig, () => ping().then((r) => { console.log(sig + ' ' + r); process.exit(0); }));
setTimeout(() => process.exit(3), stay ? 60000 : 1000);
`;

function run(
  e: NodeJS.ProcessEnv,
  mode: 'stay' | 'exit',
): { child: ChildProcess; out: () => string; err: () => string; done: Promise<number> } {
  const child = spawn(launcher, ['with-redis', 'node', '-e', CHILD, mode], { cwd: root, env: e, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += String(d)));
  child.stderr!.on('data', (d: Buffer) => (err += String(d)));
  const done = new Promise<number>((ok) => child.on('exit', (code, signal) => ok(code ?? (signal ? 128 : -1))));
  return { child, out: () => out, err: () => err, done };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 100));
  expect(cond()).toBe(true);
}

/** The tests that need a redis-server binary (CI installs one; so does any machine that runs Redis natively). */
const withRedisServer = which('redis-server') !== null;

describe('the launcher: Redis for local runs', () => {
  it.each(['with-redis', 'start'])(
    '%s without a Redis at REDIS_URL and no redis-server on PATH: exits at once, with one line saying how to get one',
    async (cmd) => {
      const e = await env(false);
      const r = spawnSync(launcher, cmd === 'start' ? ['start'] : ['with-redis', 'node', '-e', 'console.log("ran")'], {
        cwd: root,
        env: e,
        encoding: 'utf8',
      });
      expect(r.status).toBe(69);
      expect(r.stdout).toBe('');
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines).toEqual([
        `aperture: no Redis answers at ${e.REDIS_URL} and redis-server is not installed: install it (sudo apt-get install -y ` +
          'redis-server, or brew install redis) or run one (docker run -d -p 6379:6379 redis:7)',
      ]);
      expect(existsSync(e.DATA_DIR)).toBe(false); // nothing started, nothing installed or built
    },
  );

  it.skipIf(!withRedisServer).each(['SIGTERM', 'SIGINT'] as const)(
    'with redis-server on PATH: a private Redis under DATA_DIR serves the command and stops after it on %s',
    async (signal) => {
      const e = await env(true);
      const r = run(e, 'stay');
      await until(() => /^url /m.test(r.out()));
      const [, url, reply] = /^url (\S+) (.*)$/m.exec(r.out())!;
      expect(url).not.toBe(e.REDIS_URL);
      const port = Number(new URL(url!).port);
      expect(new URL(url!).hostname).toBe('127.0.0.1');
      expect(reply).toBe('+PONG');
      expect(await ping(port)).toBe('+PONG');
      expect(r.err()).toContain(`aperture: no Redis answers at ${e.REDIS_URL}; started a private one at ${url}`);

      r.child.kill(signal);
      expect(await r.done).toBe(0);
      expect(r.out()).toContain(`${signal} +PONG`); // the command got the signal while its Redis still answered
      expect(await ping(port)).toBeNull(); // and the private Redis stopped after it
      const log = readFileSync(join(e.DATA_DIR, 'redis', 'redis.log'), 'utf8');
      expect(log).toMatch(/ready to exit/);
      expect(existsSync(join(e.DATA_DIR, 'redis', 'dump.rdb'))).toBe(true);
    },
  );

  it.skipIf(!withRedisServer)(
    'with redis-server on PATH: when the command ends by itself, Redis stops and its exit code is the launcher’s',
    async () => {
      const e = await env(true);
      mkdirSync(e.DATA_DIR, { recursive: true });
      const r = run(e, 'exit');
      expect(await r.done).toBe(3);
      const [, url] = /^url (\S+) \+PONG$/m.exec(r.out())!;
      expect(await ping(Number(new URL(url!).port))).toBeNull();
    },
  );

  it.skipIf(!withRedisServer)('with a Redis answering at REDIS_URL: runs the command on it, and starts none', async () => {
    const e = await env(true);
    const redis = spawn(which('redis-server')!, ['--port', new URL(e.REDIS_URL).port, '--bind', '127.0.0.1', '--save', ''], {
      stdio: 'ignore',
    });
    try {
      const port = Number(new URL(e.REDIS_URL).port);
      for (let i = 0; i < 100 && (await ping(port)) === null; i++) await new Promise((ok) => setTimeout(ok, 100));
      expect(await ping(port)).toBe('+PONG');
      const r = run(e, 'exit');
      expect(await r.done).toBe(3);
      expect(r.out()).toContain(`url ${e.REDIS_URL} +PONG`);
      expect(r.err()).toBe('');
      expect(existsSync(join(e.DATA_DIR, 'redis'))).toBe(false);
    } finally {
      redis.kill('SIGTERM');
    }
  });
});
