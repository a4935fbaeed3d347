import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { EXPOSURES, loadConfig } from '@aperture/config/config.js';
import { METRIC } from '@aperture/metrics/metrics.js';
import { QUEUE_STATES } from '@aperture/metrics/queue-metrics.js';
import { QUEUES } from '@aperture/queue/job-registry.js';
import { createTestApp, type TestApp } from './support/app.js';
import { testEnv } from './support/env.js';
import { registerAndLogin } from './support/http.js';

const root = resolve(import.meta.dirname, '..');
const k8s = resolve(root, 'docker/k8s');

type Doc = Record<string, unknown> & { kind?: string; metadata?: { name?: string; annotations?: Record<string, string> } };
type Container = { name: string; ports?: { name: string; containerPort: number }[] };
type Deployment = Doc & {
  spec: { replicas?: number; template: { metadata: { annotations?: Record<string, string> }; spec: { containers: Container[] } } };
};
type Kustomization = {
  kind: string;
  resources?: string[];
  components?: string[];
  patches?: { target: { kind: string; name: string }; patch: string }[];
};
type Trigger = { type: string; metadata: Record<string, string>; authenticationRef?: unknown };
type ScaledObject = Doc & {
  spec: { scaleTargetRef: { name: string }; minReplicaCount: number; maxReplicaCount: number; triggers: Trigger[] };
};
type Hpa = Doc & {
  spec: {
    scaleTargetRef: { kind: string; name: string };
    minReplicas: number;
    maxReplicas: number;
    metrics: {
      type: string;
      resource?: { name: string };
      external?: { metric: { name: string; selector: { matchLabels: Record<string, string> } }; target: { type: string } };
    }[];
  };
};

/** Every YAML file under docker/k8s, parsed (each document), by its path relative to docker/k8s. */
function readAll(): Map<string, Doc[]> {
  const files = readdirSync(k8s, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => relative(k8s, resolve(e.parentPath, e.name)));
  return new Map(
    files.map((f) => {
      const docs = parseAllDocuments(readFileSync(resolve(k8s, f), 'utf8'));
      for (const d of docs) expect(d.errors, f).toEqual([]);
      return [f, docs.map((d) => d.toJS() as Doc).filter((d) => d !== null)];
    }),
  );
}

/**
 * The Kubernetes files reference deployments, ports, Redis keys and metric names of the code: these checks fail when
 * either side changes without the other. (No cluster here: `kubectl kustomize` renders them where one is at hand.)
 */
describe('docker/k8s: autoscaling and scraping stay in step with the code', () => {
  const files = readAll();
  const all = [...files.values()].flat();
  const one = <T extends Doc>(file: string, kind: string): T => {
    const found = (files.get(file) ?? []).filter((d) => d.kind === kind);
    expect(found, `${file}: one ${kind}`).toHaveLength(1);
    return found[0] as T;
  };
  const deployments = new Map(all.filter((d) => d.kind === 'Deployment').map((d) => [d.metadata!.name!, d as Deployment]));
  const configmap = one<Doc & { data: Record<string, string> }>('configmap.yaml', 'ConfigMap').data;

  it('parses every file; every kustomization lists files that exist, and every manifest is listed by one', () => {
    expect(files.size).toBeGreaterThanOrEqual(12);
    const listed = new Set<string>();
    for (const [file, docs] of files) {
      const k = docs.find((d) => d['kind'] === 'Kustomization' || d['kind'] === 'Component') as Kustomization | undefined;
      if (!k) continue;
      for (const r of [...(k.resources ?? []), ...(k.components ?? [])]) {
        const target = join(dirname(file), r);
        expect(existsSync(resolve(k8s, target)), `${file} lists ${r}`).toBe(true);
        listed.add(target);
      }
    }
    // Not resources: the Secret is made by hand, the adapter rule goes into prometheus-adapter's Helm values.
    const notListed = ['secret.example.yaml', 'components/worker-hpa/prometheus-adapter-values.yaml'];
    for (const file of files.keys()) {
      if (file.endsWith('kustomization.yaml') || notListed.includes(file)) continue;
      expect(listed.has(file), `${file} is in no kustomization`).toBe(true);
    }
    // The optional autoscalers are components, so the base applies on clusters without KEDA or prometheus-adapter.
    const base = files.get('kustomization.yaml')![0] as Kustomization;
    expect(base.resources).toContain('api-hpa.yaml');
    expect(base.resources!.some((r) => r.startsWith('components/'))).toBe(false);
    expect(all.filter((d) => d.kind === 'ScaledObject').length).toBe(1);
  });

  it('the API scales on CPU, and its Deployment leaves the replica count to the autoscaler', () => {
    const hpa = one<Hpa>('api-hpa.yaml', 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'aperture-api' });
    expect(deployments.has(hpa.spec.scaleTargetRef.name)).toBe(true);
    expect(hpa.spec.metrics.map((m) => m.resource?.name)).toEqual(['cpu']);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(deployments.get('aperture-api')!.spec.replicas).toBeUndefined();
  });

  it("KEDA: the worker on the length of each queue's Bull wait list, under the ConfigMap's REDIS_PREFIX", () => {
    const so = one<ScaledObject>('components/worker-keda/worker-scaledobject.yaml', 'ScaledObject');
    expect(so.spec.scaleTargetRef.name).toBe('aperture-worker');
    expect(deployments.has(so.spec.scaleTargetRef.name)).toBe(true);
    expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    const redis = new URL(configmap['REDIS_URL']!);
    const lists = so.spec.triggers.map((t) => {
      expect(t.type).toBe('redis');
      expect(t.metadata['address']).toBe(`${redis.hostname}:${redis.port}`);
      expect(Number(t.metadata['listLength'])).toBeGreaterThan(0);
      return t.metadata['listName'];
    });
    expect(lists.sort()).toEqual(QUEUES.map((q) => waitList(configmap['REDIS_PREFIX']!, q)).sort());
  });

  it('prometheus-adapter: the HPA external metric is the adapter rule over the queue gauge of /metrics', () => {
    const hpa = one<Hpa>('components/worker-hpa/worker-hpa.yaml', 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'aperture-worker' });
    const external = hpa.spec.metrics[0]!.external!;
    expect(hpa.spec.metrics[0]!.type).toBe('External');
    expect(external.target.type).toBe('AverageValue');
    expect(QUEUES).toContain(external.metric.selector.matchLabels['queue']);
    const values = files.get('components/worker-hpa/prometheus-adapter-values.yaml')![0] as {
      rules: { external: { seriesQuery: string; metricsQuery: string; name: { as: string } }[] };
    };
    const rule = values.rules.external.find((r) => r.name.as === external.metric.name);
    expect(rule, `an adapter rule named ${external.metric.name}`).toBeDefined();
    expect(rule!.seriesQuery).toMatch(new RegExp(`^${METRIC.queueJobs}\\{`));
    expect(rule!.metricsQuery).toContain(`${METRIC.queueJobs}{`);
    const states = /state=~"([^"]+)"/.exec(rule!.metricsQuery)![1]!.split('|');
    for (const s of states) expect(QUEUE_STATES as readonly string[]).toContain(s);
    // Both components hand the worker's replica count to their autoscaler.
    for (const c of ['components/worker-keda/kustomization.yaml', 'components/worker-hpa/kustomization.yaml']) {
      const k = files.get(c)![0] as Kustomization;
      expect(k.kind).toBe('Component');
      expect(k.patches![0]!.target).toMatchObject({ kind: 'Deployment', name: 'aperture-worker' });
      expect(k.patches![0]!.patch).toMatch(/op: remove\s+path: \/spec\/replicas/);
    }
  });

  it('Prometheus annotations point at /metrics on the ports the processes serve it on', () => {
    const port = (d: Deployment, name: string): number =>
      d.spec.template.spec.containers[0]!.ports!.find((p) => p.name === name)!.containerPort;
    const api = deployments.get('aperture-api')!;
    const worker = deployments.get('aperture-worker')!;
    const annotations = (d: Deployment): Record<string, string> => d.spec.template.metadata.annotations ?? {};
    expect(annotations(api)).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(port(api, 'http')),
      'prometheus.io/path': '/metrics',
    });
    expect(annotations(worker)).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': configmap['WORKER_HEALTH_PORT'],
      'prometheus.io/path': '/metrics',
    });
    expect(port(worker, 'health')).toBe(Number(configmap['WORKER_HEALTH_PORT']));
    const service = one<Doc & { spec: { ports: { port: number }[] } }>('api-service.yaml', 'Service');
    expect(service.metadata!.annotations).toMatchObject({
      'prometheus.io/port': String(service.spec.ports[0]!.port),
      'prometheus.io/path': '/metrics',
    });
    // The ConfigMap is a valid configuration in which annotation scraping (no credentials) can read /metrics.
    expect(EXPOSURES).toContain(configmap['METRICS']);
    const config = loadConfig({
      ...configmap,
      JWT_SECRET: 'k8s-test-secret-that-is-long-enough-0123',
      DATA_DIR: mkdtempSync(join(tmpdir(), 'k8s-')),
    });
    expect(config.exposure.metrics).toBe('public');
  });
});

/** Bull's wait list of a queue, as the ScaledObject names it: `<REDIS_PREFIX>:bull:<queue>:wait`. */
const waitList = (prefix: string, queue: string): string => `${prefix}:bull:${queue}:wait`;

describe("the wait-list key the ScaledObject reads is where Bull keeps a queue's waiting jobs", () => {
  let t: TestApp;
  let redis: Redis;
  let prefix: string;
  beforeAll(async () => {
    const env = testEnv('k8s-keys', { METRICS: 'public' });
    prefix = env['REDIS_PREFIX']!;
    t = await createTestApp(env); // the API alone: jobs stay waiting
    redis = new Redis(env['REDIS_URL']!);
  });
  afterAll(async () => {
    await redis?.quit();
    await t?.close();
  });

  it('LLEN of <prefix>:bull:default:wait counts the waiting QR batches, as /metrics does', async () => {
    const user = await registerAndLogin(t.server);
    for (let i = 0; i < 3; i++) expect((await request(t.server).post('/api/v1/qr/batches').set(user.auth).send({ n: 2 })).status).toBe(202);
    expect(await redis.llen(waitList(prefix, 'default'))).toBe(3);
    expect(await redis.llen(waitList(prefix, 'inference'))).toBe(0);
    const text = (await request(t.server).get('/metrics')).text;
    expect(text).toContain(`${METRIC.queueJobs}{queue="default",state="waiting"} 3`);
  });
});
