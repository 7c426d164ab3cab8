// The metric families the product code registers, read from its source: every name given to an OpenTelemetry
// instrument (createCounter, createHistogram, create[Observable]Gauge, createUpDownCounter), to
// createUpstreamCounter, or to the local helpers that wrap them (`gauge('…')`, `histogram('…')`, the prefixed ones of
// SliceControllerMetrics), turned into the names /metrics exposes: counters get `_total` unless registered with their
// exact upstream name. The upstream-metrics integration test checks this list against a live scrape.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PRODUCT_DIRS = ['api', 'crds', 'controllers', 'allocators', 'cmd'];

function productSources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'native') out.push(...productSources(path));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Exposed family name → type. */
export function registeredMetrics(): Map<string, MetricType> {
  const sources = PRODUCT_DIRS.flatMap((d) => productSources(join(ROOT, d))).map((p) => readFileSync(p, 'utf8'));
  const all = sources.join('\n');
  const prefixes = [...all.matchAll(/new SliceControllerMetrics\(\s*'([a-z_]+)'/g)].map((m) => m[1]);
  const families = new Map<string, MetricType>();
  const add = (name: string, type: MetricType, exact = false) => families.set(type === 'counter' && !exact && !name.endsWith('_total') ? `${name}_total` : name, type);
  const names = (pattern: RegExp) => [...all.matchAll(pattern)].map((m) => m[1]);
  for (const n of names(/\.createCounter\(\s*'([a-z_:][a-z0-9_:]*)'/g)) add(n, 'counter');
  for (const n of names(/\.createObservableCounter\(\s*'([a-z_:][a-z0-9_:]*)'/g)) add(n, 'counter');
  for (const n of names(/createUpstreamCounter\(\s*'([a-z_:][a-z0-9_:]*)'/g)) add(n, 'counter', true);
  for (const n of names(/\.create(?:Observable)?(?:Gauge|UpDownCounter)\(\s*'([a-z_:][a-z0-9_:]*)'/g)) add(n, 'gauge');
  for (const n of names(/\.createHistogram\(\s*'([a-z_:][a-z0-9_:]*)'/g)) add(n, 'histogram');
  // The workqueue metrics' local gauge helper.
  for (const n of names(/\bgauge\(\s*'(workqueue_[a-z_]+)'/g)) add(n, 'gauge');
  // SliceControllerMetrics: `${prefix}_changes` and its prefixed histogram()/gauge() helpers.
  for (const prefix of prefixes) {
    for (const n of names(/createUpstreamCounter\(\s*`\$\{prefix\}_([a-z_]+)`/g)) add(`${prefix}_${n}`, 'counter', true);
    for (const n of names(/(?:this|metrics)\.histogram\(\s*'([a-z_]+)'/g)) add(`${prefix}_${n}`, 'histogram');
    for (const n of names(/this\.gauge\(\s*'([a-z_]+)'/g)) add(`${prefix}_${n}`, 'gauge');
  }
  return families;
}
