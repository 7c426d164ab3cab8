// config/monitoring: every metric the Grafana dashboard and the PrometheusRule alerts query is one the code exports.
// The metric names are taken out of each PromQL expression and checked against the series the code registers
// (testing/metric-registrations.ts; the upstream-metrics integration test checks that list against a live scrape).
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { registeredMetrics } from './metric-registrations.js';
import { seriesNames } from './prometheus-text.js';

const dir = fileURLToPath(new URL('../config/monitoring/', import.meta.url));

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression selects (Grafana's `label_values(metric, label)` included). */
export function metricNamesOf(expr: string): string[] {
  const s = expr
    .replace(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)/g, ' $1 ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names: string[] = [];
  for (const m of s.matchAll(/(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(])(?!\s*\()/g)) {
    if (!KEYWORDS.has(m[1].toLowerCase())) names.push(m[1]);
  }
  return names;
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; query?: string | { query?: string } }[] };
}
interface RuleFile {
  kind: string;
  spec: { groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[] };
}

function dashboardQueries(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(`${dir}switchboard-dashboard.json`, 'utf8')) as Dashboard;
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    const query = typeof v.query === 'string' ? v.query : v.query?.query;
    if (query && v.name !== 'datasource') out.push({ where: `variable $${v.name}`, expr: query });
  }
  return out;
}

function ruleQueries(): { where: string; expr: string }[] {
  const file = yaml.load(readFileSync(`${dir}prometheusrule.yaml`, 'utf8')) as RuleFile;
  expect(file.kind).toBe('PrometheusRule');
  return file.spec.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr })));
}

function exportedSeries(): Set<string> {
  const series = new Set<string>();
  for (const [name, type] of registeredMetrics()) for (const s of seriesNames(name, type)) if (type !== 'histogram' || s !== name) series.add(s);
  return series;
}

describe('config/monitoring', () => {
  it('reads metric names out of PromQL, and only metric names', () => {
    expect(metricNamesOf('sum by (le, name) (rate(workqueue_queue_duration_seconds_bucket{job=~"$job", name!="x"}[$__rate_interval]))')).toEqual(['workqueue_queue_duration_seconds_bucket']);
    expect(metricNamesOf('a_total / on (pod) group_left (node) b > 0.9 and on () max(c{state="pending"}) > 0')).toEqual(['a_total', 'b', 'c']);
    expect(metricNamesOf('label_values(switchboard_api_requests_total, job)')).toEqual(['switchboard_api_requests_total']);
    expect(metricNamesOf('histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 10')).toEqual(['x_bucket']);
  });

  it('finds the registrations it checks against (a broken scan would accept nothing)', () => {
    const series = exportedSeries();
    for (const name of ['workqueue_depth', 'workqueue_adds_total', 'endpoint_slice_controller_syncs', 'switchboard_reconcile_total', 'switchboard_endpoint_write_latency_seconds_bucket', 'switchboard_speaker_lease_live']) {
      expect({ name, exported: series.has(name) }).toEqual({ name, exported: true });
    }
    for (const name of ['endpoint_slice_controller_syncs_total', 'switchboard_reconcile', 'switchboard_endpoint_write_latency_seconds']) expect({ name, exported: series.has(name) }).toEqual({ name, exported: false });
  });

  it('queries only exported metrics in the dashboard and the alerts', () => {
    const series = exportedSeries();
    const queries = [...dashboardQueries(), ...ruleQueries()];
    expect(queries.length).toBeGreaterThan(30);
    const unknown = queries.flatMap(({ where, expr }) => {
      const names = metricNamesOf(expr);
      if (names.length === 0) return [`${where}: no metric in ${expr}`];
      return names.filter((n) => !series.has(n)).map((n) => `${where}: ${n}`);
    });
    expect(unknown).toEqual([]);
  });

  it('has the alerts the issue asks for', () => {
    const alerts = ruleQueries().map((q) => q.where.replace(/^rule /, ''));
    expect(alerts).toEqual(
      expect.arrayContaining([
        'SwitchboardWorkQueueDepthGrowing',
        'SwitchboardReconcileErrors',
        'SwitchboardClusterIPRangeAlmostFull',
        'SwitchboardNodePortRangeAlmostFull',
        'SwitchboardLBPoolExhausted',
        'SwitchboardSpeakerLeaseNotLive',
        'SwitchboardL2AddressConflict',
        'SwitchboardL2SelfCheckFailing',
      ]),
    );
  });

  it('ships a ServiceMonitor that selects both metrics Services by label and port', () => {
    interface Doc {
      kind: string;
      metadata: { name: string; labels?: Record<string, string> };
      spec: { selector?: { matchLabels?: Record<string, string> }; endpoints?: { port: string; scheme?: string }[]; ports?: { name: string }[] };
    }
    const load = (path: string) => yaml.load(readFileSync(fileURLToPath(new URL(`../config/${path}`, import.meta.url)), 'utf8')) as Doc;
    const kustomization = yaml.load(readFileSync(`${dir}kustomization.yaml`, 'utf8')) as { resources: string[] };
    expect(kustomization.resources).toContain('servicemonitor.yaml');
    const monitor = load('monitoring/servicemonitor.yaml');
    expect(monitor.kind).toBe('ServiceMonitor');
    const selected = (svc: Doc) => Object.entries(monitor.spec.selector?.matchLabels ?? {}).every(([k, v]) => svc.metadata.labels?.[k] === v);
    for (const path of ['manager/metrics_service.yaml', 'speaker/metrics_service.yaml']) {
      const svc = load(path);
      expect({ path, selected: selected(svc) }).toEqual({ path, selected: true });
      const ports = (svc.spec.ports ?? []).map((p) => p.name);
      expect(monitor.spec.endpoints?.every((e) => ports.includes(e.port) && e.scheme === 'https')).toBe(true);
    }
  });
});
