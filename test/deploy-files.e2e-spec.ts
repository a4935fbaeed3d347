import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const root = resolve(import.meta.dirname, '..');
const read = (p: string): string => readFileSync(resolve(root, p), 'utf8');
/** Every file under docker/k8s (the optional components' folders included), relative to the repository. */
const k8sFiles = (): string[] =>
  readdirSync(resolve(root, 'docker/k8s'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, resolve(e.parentPath, e.name)));

interface ComposeService {
  command?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
}

/** The deployment files cannot be run here (no Docker engine): check that they parse and match the app. */
describe('docker/ and Kubernetes files', () => {
  const entry = (cmd: string[]): string => cmd.find((a) => a.startsWith('dist/'))!;

  it('Dockerfile: multi-stage, non-root, production deps only, and its CMD is a built entry point', () => {
    const df = read('docker/Dockerfile');
    expect(df.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(3);
    expect(df).toMatch(/npm ci --omit=dev/);
    expect(df).toMatch(/^USER node$/m);
    expect(df).toMatch(/COPY package\.json package-lock\.json \.npmrc/);
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(df)![1]!) as string[];
    expect(existsSync(resolve(root, entry(cmd)))).toBe(true);
  });

  it('the API runs with 8 MB semi-spaces and two malloc arenas, however it is started (its RSS stays bounded)', () => {
    const df = read('docker/Dockerfile');
    expect(df).toMatch(/^\s+MALLOC_ARENA_MAX=2$/m);
    expect(JSON.parse(/^CMD (\[.*\])$/m.exec(df)![1]!)).toEqual(['node', '--max-semi-space-size=8', 'dist/apps/api/src/main.js']);
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts['start:api']).toBe('node --max-semi-space-size=8 dist/apps/api/src/main.js');
    expect(read('docker/k8s/api-deployment.yaml')).toContain('command: ["node", "--max-semi-space-size=8", "dist/apps/api/src/main.js"]');
    expect(read('aperture')).toContain('export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"');
  });

  it('docker-compose.yml: api, worker, postgres and redis with healthchecks; the worker starts after the API', () => {
    const compose = parse(read('docker/docker-compose.yml')) as { services: Record<string, ComposeService> };
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'postgres', 'redis', 'worker']);
    for (const s of Object.values(compose.services)) expect(s.healthcheck).toBeDefined();
    expect(compose.services['worker']!.depends_on!['api']!.condition).toBe('service_healthy');
    expect(existsSync(resolve(root, entry(compose.services['worker']!.command!)))).toBe(true);
    expect(compose.services['api']!.healthcheck!.test.join(' ')).toContain('/health/ready');
    expect(compose.services['worker']!.healthcheck!.test.join(' ')).toContain('3001/health/ready');
    // No default secrets: the database password and JWT secret must be given.
    const text = read('docker/docker-compose.yml');
    expect(text).toMatch(/POSTGRES_PASSWORD: \$\{POSTGRES_PASSWORD:\?/);
    expect(text).toMatch(/JWT_SECRET: \$\{JWT_SECRET:\?/);
    expect(text).not.toMatch(/POSTGRES_PASSWORD:-/);
  });

  it('pins every image tag (no :latest, no bare major versions)', () => {
    const images = [
      ...read('docker/docker-compose.yml').matchAll(/image: (?:\$\{[A-Z_]+:-)?([^\s}]+)/g),
      ...k8sFiles().flatMap((f) => [...read(f).matchAll(/image: ([^\s]+)/g)]),
      ...read('docker/Dockerfile').matchAll(/ARG NODE_IMAGE=(\S+)/g),
    ].map((m) => m[1]!);
    expect(images.length).toBeGreaterThanOrEqual(6);
    for (const image of images) expect(image, image).toMatch(/:\d+\.\d+(\.\d+)?(-[a-z-]+)?$/);
  });

  it('Kubernetes trusts one proxy hop, not every X-Forwarded-For entry', () => {
    expect(read('docker/k8s/configmap.yaml')).toMatch(/TRUST_PROXY: "1"/);
  });

  it('Kubernetes: every Deployment has startup, readiness and liveness probes on the health routes and resource requests', () => {
    const docs = k8sFiles().flatMap((f) => parseAllDocuments(read(f)).map((d) => d.toJS() as Record<string, unknown>));
    const deployments = docs.filter((d) => d['kind'] === 'Deployment') as {
      spec: { template: { spec: { containers: Record<string, unknown>[] } } };
    }[];
    expect(deployments).toHaveLength(2);
    for (const d of deployments) {
      const c = d.spec.template.spec.containers[0]! as {
        command: string[];
        startupProbe: { httpGet: { path: string } };
        readinessProbe: { httpGet: { path: string } };
        livenessProbe: { httpGet: { path: string } };
        resources: { requests: Record<string, string> };
      };
      expect(c.startupProbe.httpGet.path).toBe('/health/ready');
      expect(c.readinessProbe.httpGet.path).toBe('/health/ready');
      expect(c.livenessProbe.httpGet.path).toBe('/health/live');
      expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
      expect(existsSync(resolve(root, entry(c.command)))).toBe(true);
    }
    expect(docs.some((d) => d['kind'] === 'Service')).toBe(true);
  });
});
