// Reading Prometheus text exposition (format 0.0.4) in tests: metric families with their TYPE and the label names
// their samples carry, and the series names a family exposes (`_bucket`/`_sum`/`_count` for histograms).

export interface MetricFamily {
  type: string;
  /** Label names seen on the family's samples, `le` and `quantile` left out. */
  labels: Set<string>;
  /** Histogram bucket bounds (`le` values, as numbers in text: `1e-08` and `0.00000001` read alike). */
  buckets: Set<number>;
  samples: number;
}

const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

/** Families by name, from the `# TYPE` lines and the samples that follow. */
export function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      families.set(type[1], { type: type[2], labels: new Set(), buckets: new Set(), samples: 0 });
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s/.exec(line);
    if (!sample) continue;
    const family = familyOf(families, sample[1]);
    if (!family) continue;
    family.samples += 1;
    for (const m of (sample[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (m[1] === 'le') family.buckets.add(m[2] === '+Inf' ? Infinity : Number(m[2]));
      else if (m[1] !== 'quantile') family.labels.add(m[1]);
    }
  }
  return families;
}

function familyOf(families: Map<string, MetricFamily>, series: string): MetricFamily | undefined {
  const exact = families.get(series);
  if (exact) return exact;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!series.endsWith(suffix)) continue;
    const family = families.get(series.slice(0, -suffix.length));
    if (family && SUFFIXES[family.type]?.includes(suffix)) return family;
  }
  return undefined;
}

/** The series names a family of `type` exposes. */
export function seriesNames(name: string, type: string): string[] {
  return [name, ...(SUFFIXES[type] ?? []).map((s) => name + s)];
}
