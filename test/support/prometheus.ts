/** One sample of a Prometheus text exposition: `name{label="value",…} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Metric family → its TYPE (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  samples: Sample[];
  /** The samples of one series name whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
  /** The one sample of name with exactly these labels (a bucket's `le` included), or undefined. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A strict reader of the Prometheus text format (version 0.0.4), enough to refuse what a Prometheus server would:
 * names and label names, quoted and escaped label values, numeric values, a TYPE before a family's samples and at
 * most once, no sample of a family outside its block, histograms whose cumulative buckets rise to +Inf = _count.
 * Throws with the offending line.
 */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const closed = new Set<string>();
  let current: string | null = null;
  const family = (name: string): string => {
    for (const suffix of ['_bucket', '_count', '_sum']) {
      const base = name.slice(0, -suffix.length);
      if (name.endsWith(suffix) && ['histogram', 'summary'].includes(types.get(base) ?? '')) return base;
    }
    return name;
  };
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  for (const [i, line] of text.split('\n').entries()) {
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) fail('bad metric name');
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) fail('bad type');
        if (types.has(name)) fail('second TYPE line');
        types.set(name, rest);
      }
      if (current !== name) {
        if (current) closed.add(current);
        if (closed.has(name)) fail('family appears twice');
        current = name;
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) fail('not a sample');
    const [, name, rawLabels, rawValue] = m as unknown as [string, string, string | undefined, string];
    const labels: Record<string, string> = {};
    if (rawLabels !== undefined && rawLabels !== '') {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let at = 0;
      while (at < rawLabels.length) {
        re.lastIndex = at;
        const l = re.exec(rawLabels);
        if (!l) fail('bad label set');
        const [whole, key, value] = l as unknown as [string, string, string];
        if (!LABEL.test(key) || key in labels) fail(`bad or repeated label ${key}`);
        labels[key] = value.replace(/\\(["\\n])/g, (_s, c: string) => (c === 'n' ? '\n' : c));
        at += whole.length;
      }
    }
    // As Prometheus reads values (Go's ParseFloat): decimals, exponents, and Inf / NaN in any case (prom-client writes "Nan").
    const special = /^([+-]?)(inf|infinity|nan)$/i.exec(rawValue);
    if (!special && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(rawValue)) fail('bad value');
    const value = special ? (special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity) : Number(rawValue);
    const fam = family(name);
    if (!types.has(fam)) fail(`sample of ${fam} before its TYPE`);
    if (fam !== current) fail(`sample of ${fam} outside its block`);
    samples.push({ name, labels, value });
  }
  const matches = (s: Sample, name: string, labels: Record<string, string>): boolean =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  const exposition: Exposition = {
    types,
    samples,
    find: (name, labels = {}) => samples.filter((s) => matches(s, name, labels)),
    value: (name, labels = {}) => {
      const found = samples.filter((s) => matches(s, name, labels) && Object.keys(s.labels).length === Object.keys(labels).length);
      if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
      return found[0]?.value;
    },
  };
  // Histograms: per series, buckets cumulative and rising, ending at +Inf, which equals _count.
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${name}_bucket`)) {
      const { le, ...rest } = s.labels;
      if (le === undefined) throw new Error(`${name}_bucket without le`);
      const key = JSON.stringify(Object.entries(rest).sort());
      series.set(key, [...(series.get(key) ?? []), s]);
    }
    for (const [key, buckets] of series) {
      const les = buckets.map((b) => (b.labels['le'] === '+Inf' ? Infinity : Number(b.labels['le'])));
      for (let j = 1; j < buckets.length; j++) {
        if (!(les[j]! > les[j - 1]!)) throw new Error(`${name} ${key}: le not increasing`);
        if (buckets[j]!.value < buckets[j - 1]!.value) throw new Error(`${name} ${key}: buckets not cumulative`);
      }
      if (les.at(-1) !== Infinity) throw new Error(`${name} ${key}: no +Inf bucket`);
      const labels = Object.fromEntries(JSON.parse(key) as [string, string][]);
      const count = exposition.value(`${name}_count`, labels);
      if (count !== buckets.at(-1)!.value) throw new Error(`${name} ${key}: +Inf bucket ${buckets.at(-1)!.value} ≠ _count ${count}`);
      if (exposition.value(`${name}_sum`, labels) === undefined) throw new Error(`${name} ${key}: no _sum`);
    }
  }
  return exposition;
}
