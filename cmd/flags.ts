// Command-line flags: Kubernetes-style names (--leader-elect-lease-duration=15s) and durations.
import type { ParseArgsConfig } from 'node:util';
import type { ClientTuning } from '../controllers/runtime/client.js';
import type { SecureMetricsOptions } from '../controllers/runtime/manager.js';

/** "1500ms", "15s", "2m", "1h" or a bare number of seconds → milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new Error(`--${flag}: invalid duration "${value}" (examples: 500ms, 15s, 2m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

export function parseBool(value: string | boolean, flag: string): boolean {
  if (typeof value === 'boolean') return value;
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new Error(`--${flag}: expected true or false, got "${value}"`);
}

/**
 * The API client's flags, shared by `controller` and `speaker`: client-go's QPS/burst token bucket and the time
 * after which a silent watch is taken for dead.
 */
export function clientFlags(defaults: { qps: number; burst: number }) {
  return {
    'kube-api-qps': { type: 'string', default: String(defaults.qps) },
    'kube-api-burst': { type: 'string', default: String(defaults.burst) },
    'watch-idle-timeout': { type: 'string', default: '90s' },
  } satisfies ParseArgsConfig['options'];
}

export const clientFlagHelp: Record<keyof ReturnType<typeof clientFlags>, string> = {
  'kube-api-qps': 'requests per second to the API server once the burst is spent (lease renewals excepted); 0 turns the limit off',
  'kube-api-burst': 'requests the client may make at once before --kube-api-qps applies',
  'watch-idle-timeout': 'watch again (from the last version) when a watch delivered no event and no bookmark for this long: a half-open connection, or a type that does not change; 0 disables',
};

export function clientTuning(values: { [K in keyof ReturnType<typeof clientFlags>]: string }): ClientTuning {
  const qps = Number(values['kube-api-qps']);
  if (!Number.isFinite(qps) || qps < 0) throw new Error(`--kube-api-qps: expected a number ≥ 0, got "${values['kube-api-qps']}"`);
  const burst = Number(values['kube-api-burst']);
  if (!Number.isInteger(burst) || burst < 1) throw new Error(`--kube-api-burst: expected a whole number ≥ 1, got "${values['kube-api-burst']}"`);
  return { qps, burst, watchIdleTimeoutMs: parseDuration(values['watch-idle-timeout'], 'watch-idle-timeout') };
}

/** How `controller` and `speaker` serve /metrics: HTTPS with delegated authentication and authorization, or plain HTTP. */
export const metricsFlags = {
  'metrics-secure': { type: 'string', default: 'true' },
  'metrics-cert-dir': { type: 'string', default: '' },
  'metrics-client-ca-file': { type: 'string', default: '' },
} satisfies ParseArgsConfig['options'];

export const metricsFlagHelp: Record<keyof typeof metricsFlags, string> = {
  'metrics-secure':
    'serve --metrics-bind-address over HTTPS, /metrics only to callers allowed to get the non-resource URL /metrics (TokenReview + SubjectAccessReview); /healthz and /readyz stay open. false: plain HTTP, open to anyone (local use)',
  'metrics-cert-dir': 'folder with tls.crt and tls.key for the metrics port; empty: a self-signed certificate made at start',
  'metrics-client-ca-file': 'also accept client certificates this CA signed on the metrics port (user: CN, groups: O), authorized like tokens',
};

export function secureMetrics(values: { [K in keyof typeof metricsFlags]: string }): SecureMetricsOptions | undefined {
  if (!parseBool(values['metrics-secure'], 'metrics-secure')) return undefined;
  return { certDir: values['metrics-cert-dir'] || undefined, clientCAFile: values['metrics-client-ca-file'] || undefined };
}
