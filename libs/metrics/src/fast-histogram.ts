import type { Metric, Registry } from 'prom-client';

interface Series {
  readonly labels: Record<string, string>;
  /** Observations per bucket (not cumulative): counts[i] holds those in (bounds[i-1], bounds[i]]. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** One exported sample, as prom-client's registry formats it. */
interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/**
 * A histogram for the request path: observe() is a Map lookup on the label values and a short bucket scan (about
 * a tenth of prom-client's Histogram.observe, which validates and hashes the label object on every call). It
 * registers in a prom-client Registry like any metric and exports exactly what a prom-client Histogram with the same
 * observations would (`_bucket` cumulative with `le`, `+Inf`, `_sum`, `_count`).
 */
export class FastHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, Series>();
  private readonly bounds: Float64Array;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    buckets: readonly number[],
  ) {
    this.bounds = Float64Array.from([...buckets].sort((a, b) => a - b));
  }

  /** Adds an observation; `values` are the label values in the order of the label names. */
  observe(values: readonly string[], value: number): void {
    if (!Number.isFinite(value)) return;
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      s = { labels, counts: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** The samples, as the registry asks every metric for them. */
  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Sample[] }> {
    const values: Sample[] = [];
    for (const s of this.series.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({ value: acc, labels: { le, ...s.labels }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: s.count, labels: { le: '+Inf', ...s.labels }, metricName: `${this.name}_bucket` });
      values.push({ value: s.sum, labels: s.labels, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: s.labels, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.series.clear();
  }

  /** Registers this histogram in a registry (which calls get() at every scrape). */
  registerIn(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }
}
