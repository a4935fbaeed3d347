import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastHistogram } from './fast-histogram.js';

describe('FastHistogram', () => {
  it('exports exactly what a prom-client Histogram with the same observations does', async () => {
    const buckets = [0.005, 0.01, 0.1, 1];
    const observations: [string, string, string, number][] = [
      ['GET', '/api/v1/jobs/:id/status', '200', 0.004],
      ['GET', '/api/v1/jobs/:id/status', '200', 0.005], // on a bound: counts in that bucket (le)
      ['GET', '/api/v1/jobs/:id/status', '404', 0.02],
      ['POST', 'a "quoted"\\route\n', '500', 3], // above every bound: only +Inf
      ['GET', '/api/v1/jobs/:id/status', '200', 0.5],
    ];
    const reference = new Registry();
    const h = new Histogram({
      name: 'h_seconds',
      help: 'help',
      labelNames: ['method', 'route', 'status_code'],
      buckets,
      registers: [reference],
    });
    const ours = new Registry();
    const f = new FastHistogram('h_seconds', 'help', ['method', 'route', 'status_code'], buckets).registerIn(ours);
    for (const [method, route, status_code, v] of observations) {
      h.observe({ method, route, status_code }, v);
      f.observe([method, route, status_code], v);
    }
    f.observe(['GET', '/x', '200'], NaN); // ignored, as prom-client would refuse it
    const text = await ours.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain('h_seconds_bucket{le="0.005",method="GET",route="/api/v1/jobs/:id/status",status_code="200"} 2');
    f.reset();
    h.reset();
    expect(await ours.metrics()).toBe(await reference.metrics());
  });
});
