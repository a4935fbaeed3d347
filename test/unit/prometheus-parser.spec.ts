import { describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { parseExposition } from '../support/prometheus.js';

/** The reader the metrics tests rely on: it must accept prom-client's output and refuse what Prometheus would. */
describe('parseExposition', () => {
  it("reads prom-client's exposition: types, labels with escapes, histogram series", async () => {
    const registry = new Registry();
    new Counter({ name: 'c_total', help: 'c', labelNames: ['route'], registers: [registry] }).inc({ route: 'a "quoted" \\ path\nx' }, 2);
    const h = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['m'], buckets: [0.1, 1], registers: [registry] });
    h.observe({ m: 'x' }, 0.5);
    h.observe({ m: 'x' }, 5);
    const m = parseExposition(await registry.metrics());
    expect(m.types.get('c_total')).toBe('counter');
    expect(m.value('c_total', { route: 'a "quoted" \\ path\nx' })).toBe(2);
    expect(m.value('h_seconds_count', { m: 'x' })).toBe(2);
    expect(m.find('h_seconds_bucket', { m: 'x' }).map((s) => s.value)).toEqual([0, 1, 2]);
  });

  it('refuses malformed expositions', () => {
    const bad = [
      'x 1\n', // no TYPE
      '# TYPE x gauge\nx 1', // no final newline
      '# TYPE x gauge\nx{a="1} 1\n', // unterminated label value
      '# TYPE x gauge\nx{a="1",a="2"} 1\n', // repeated label
      '# TYPE x gauge\nx one\n', // not a number
      '# TYPE x gauge\n# TYPE x gauge\nx 1\n', // two TYPE lines
      '# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n', // x outside its block
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\n', // not cumulative
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 3\nh_sum 1\n', // +Inf ≠ count
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\nh_sum 1\n', // no +Inf
    ];
    for (const text of bad) expect(() => parseExposition(text), text).toThrow();
  });
});
