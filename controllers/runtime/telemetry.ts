// Metrics (OpenTelemetry, exposed for Prometheus on /metrics and, when the standard OTEL_* variables ask for it,
// pushed over OTLP), traces around reconciles, API calls and admission requests (exported over OTLP or to the
// console as OTEL_TRACES_EXPORTER says), and the HTTP(S) endpoints /metrics, /healthz and /readyz.
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { context, diag, DiagLogLevel, metrics, propagation, trace, SpanStatusCode, type Attributes, type Meter, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPMetricExporter as OTLPJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { KubeClient } from './client.js';
import type { DelegatedAuth } from './delegated-auth.js';
import { createLogger } from './log.js';
import type { KeyPairPem } from './pki.js';

export interface Telemetry {
  meter: Meter;
  tracer: Tracer;
  exporter: PrometheusExporter;
  /** Flushes what the OTLP exporters hold and stops them; call before the process exits. */
  shutdown(): Promise<void>;
}

/** Where traces and metrics go besides /metrics, as the OpenTelemetry environment variables say. */
export interface ExportConfig {
  traces: ('otlp' | 'console')[];
  /** OTLP metrics; the Prometheus /metrics exposition is always on. */
  otlpMetrics: boolean;
  tracesProtocol: OtlpProtocol;
  metricsProtocol: OtlpProtocol;
  metricIntervalMs: number;
}

export type OtlpProtocol = 'http/protobuf' | 'http/json';

/**
 * Reads the SDK's standard variables (opentelemetry-specification, sdk-environment-variables.md and
 * protocol/exporter.md): OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER (comma lists of
 * otlp, console, prometheus, none), OTEL_EXPORTER_OTLP[_TRACES|_METRICS]_PROTOCOL and OTEL_METRIC_EXPORT_INTERVAL.
 * The spec's default exporter is otlp; here it is otlp only once an OTLP endpoint is set, so that a process with
 * no collector configured sends nothing anywhere (as before). Endpoints, headers, timeouts and compression are read
 * by the exporters themselves; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES by the resource detector.
 */
export function exportConfig(env: NodeJS.ProcessEnv = process.env): ExportConfig {
  const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  const endpointSet = (signal: string) => Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]);
  const disabled = (env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true';
  const tracesList = list(env.OTEL_TRACES_EXPORTER);
  const metricsList = list(env.OTEL_METRICS_EXPORTER);
  for (const name of tracesList) if (!['otlp', 'console', 'none'].includes(name)) throw new Error(`OTEL_TRACES_EXPORTER: unsupported exporter "${name}" (otlp, console or none)`);
  for (const name of metricsList) if (!['otlp', 'prometheus', 'none'].includes(name)) throw new Error(`OTEL_METRICS_EXPORTER: unsupported exporter "${name}" (otlp, prometheus or none; /metrics is always served)`);
  const traces = disabled || tracesList.includes('none') ? [] : tracesList.length > 0 ? (tracesList as ('otlp' | 'console')[]) : endpointSet('TRACES') ? (['otlp'] as const) : [];
  const otlpMetrics = !disabled && !metricsList.includes('none') && (metricsList.length > 0 ? metricsList.includes('otlp') : endpointSet('METRICS'));
  const protocol = (signal: string): OtlpProtocol => {
    const p = (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf').trim();
    if (p !== 'http/protobuf' && p !== 'http/json') throw new Error(`OTLP protocol "${p}" is not supported: use http/protobuf (default) or http/json`);
    return p;
  };
  const interval = Number(env.OTEL_METRIC_EXPORT_INTERVAL || 60_000);
  return {
    traces: [...new Set(traces)],
    otlpMetrics,
    tracesProtocol: traces.includes('otlp') ? protocol('TRACES') : 'http/protobuf',
    metricsProtocol: otlpMetrics ? protocol('METRICS') : 'http/protobuf',
    metricIntervalMs: Number.isFinite(interval) && interval > 0 ? interval : 60_000,
  };
}

/**
 * Counters that keep their upstream name exactly: kube-controller-manager exposes e.g.
 * `endpoint_slice_controller_syncs` as a counter without the `_total` suffix the OpenTelemetry Prometheus exporter
 * adds to every counter (exporter-prometheus 0.208 has no option to turn it off).
 */
const exactCounterNames = new Set<string>();

/** A counter exposed under exactly `name` on /metrics (for upstream names); use meter.createCounter otherwise. */
export function createUpstreamCounter(name: string, description: string): ReturnType<Meter['createCounter']> {
  exactCounterNames.add(name);
  return telemetry().meter.createCounter(name, { description });
}

/** Removes the `_total` the serializer appended to the counters registered with createUpstreamCounter. */
export function restoreUpstreamCounterNames(exposition: string, names: ReadonlySet<string> = exactCounterNames): string {
  if (names.size === 0) return exposition;
  return exposition
    .split('\n')
    .map((line) => {
      const m = /^(# (?:HELP|TYPE|UNIT) )?([a-zA-Z_:][a-zA-Z0-9_:]*)_total(?=[ {])/.exec(line);
      return m && names.has(m[2]) ? `${m[1] ?? ''}${m[2]}${line.slice(m[0].length)}` : line;
    })
    .join('\n');
}

class UpstreamNamingSerializer extends PrometheusSerializer {
  override serialize(resourceMetrics: ResourceMetrics): string {
    return restoreUpstreamCounterNames(super.serialize(resourceMetrics));
  }
}

/** The Prometheus exporter, with the upstream counter names restored in what /metrics serves. */
class SwitchboardPrometheusExporter extends PrometheusExporter {
  private readonly serializer = new UpstreamNamingSerializer();

  override getMetricsRequestHandler(_request: IncomingMessage, response: ServerResponse): void {
    response.statusCode = 200;
    response.setHeader('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    this.collect().then(
      ({ resourceMetrics, errors }) => {
        if (errors.length) diag.error('metrics collection errors', ...errors);
        response.end(this.serializer.serialize(resourceMetrics));
      },
      (err: unknown) => response.end(`# failed to export metrics: ${String(err)}\n`),
    );
  }
}

let current: Telemetry | undefined;

/** The message of an error the SDK reports (it passes errors as JSON with their stack), or the text itself. */
function errorText(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value !== 'string') return String(value);
  try {
    const parsed = JSON.parse(value) as { message?: unknown };
    return typeof parsed?.message === 'string' ? parsed.message : value;
  } catch {
    return value;
  }
}

function resource(): Resource {
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default name.
  return defaultResource().merge(resourceFromAttributes({ 'service.name': 'switchboard' })).merge(detectResources({ detectors: [envDetector] }));
}

/** Sets up the process-wide meter and tracer once (from the environment); later calls return the same instance. */
export function telemetry(): Telemetry {
  if (current) return current;
  const config = exportConfig();
  // The SDK's own warnings and errors (an unreachable collector, a refused export) as JSON log lines.
  const log = createLogger('opentelemetry');
  const line = (write: (msg: string) => void) => (message: string, ...args: unknown[]) => write([message, ...args].map(errorText).join(' '));
  diag.setLogger({ error: line(log.error), warn: line(log.warn), info: () => {}, debug: () => {}, verbose: () => {} }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  const res = resource();
  const exporter = new SwitchboardPrometheusExporter({ preventServerStart: true });
  const readers: MetricReader[] = [exporter];
  if (config.otlpMetrics) {
    const metricExporter = config.metricsProtocol === 'http/json' ? new OTLPJsonMetricExporter() : new OTLPProtoMetricExporter();
    readers.push(new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: config.metricIntervalMs, exportTimeoutMillis: Math.min(30_000, config.metricIntervalMs) }));
  }
  const meterProvider = new MeterProvider({ resource: res, readers });
  metrics.setGlobalMeterProvider(meterProvider);
  // Reconcile → API call parentage follows async code (awaits, callbacks) through AsyncLocalStorage.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const spanProcessors: SpanProcessor[] = config.traces.map((name) =>
    name === 'console'
      ? new SimpleSpanProcessor(new ConsoleSpanExporter())
      : new BatchSpanProcessor(config.tracesProtocol === 'http/json' ? new OTLPJsonTraceExporter() : new OTLPProtoTraceExporter()),
  );
  // No exporter: no provider, so spans are the API's no-op ones and cost nothing.
  const tracerProvider = spanProcessors.length > 0 ? new BasicTracerProvider({ resource: res, spanProcessors }) : undefined;
  if (tracerProvider) trace.setGlobalTracerProvider(tracerProvider);
  current = {
    meter: metrics.getMeter('switchboard'),
    tracer: trace.getTracer('switchboard'),
    exporter,
    shutdown: async () => {
      await meterProvider.shutdown();
      await tracerProvider?.shutdown();
      // Unregister the globals, so that a later telemetry() starts afresh rather than colliding with them.
      metrics.disable();
      trace.disable();
      context.disable();
      propagation.disable();
      current = undefined;
    },
  };
  return current;
}

/** Flushes and stops telemetry if it was started (before the process exits), waiting at most `timeoutMs`. */
export async function shutdownTelemetry(timeoutMs = 5000): Promise<void> {
  if (!current) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
  await Promise.race([current.shutdown().catch(() => {}), late]);
  clearTimeout(timer);
}

/**
 * Runs `fn` inside an active span named `name`, so the spans it starts (API calls) are its children; errors mark
 * the span and propagate. `options.root` starts a new trace whatever the caller's context holds.
 */
export async function traced<T>(name: string, attributes: Attributes, fn: () => Promise<T>, options: SpanOptions = {}): Promise<T> {
  return telemetry().tracer.startActiveSpan(name, { ...options, attributes }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** client_golang's DefBuckets: what an upstream histogram declared without buckets gets. */
export const PROMETHEUS_DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Prometheus ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

/** Counts and times every request a client makes (switchboard_api_requests_total, …_duration_seconds). */
export function instrumentClient(client: KubeClient): void {
  const meter = telemetry().meter;
  const requests = meter.createCounter('switchboard_api_requests', { description: 'Kubernetes API requests by verb, resource and HTTP code' });
  const latency = meter.createHistogram('switchboard_api_request_duration_seconds', { description: 'Kubernetes API request latency', unit: 's' });
  client.observer = (verb, resource, code, seconds) => {
    requests.add(1, { verb, resource, code: String(code) });
    latency.record(seconds, { verb, resource });
  };
  // client-go's rest_client_rate_limiter_duration_seconds: how long requests waited for --kube-api-qps/-burst.
  const throttled = meter.createHistogram('switchboard_api_rate_limiter_duration_seconds', {
    description: 'Time requests waited for a token of the client QPS/burst bucket',
    unit: 's',
    advice: { explicitBucketBoundaries: PROMETHEUS_DEFAULT_BUCKETS },
  });
  client.throttleObserver = (verb, seconds) => throttled.record(seconds, { verb });
}

export type Check = () => boolean | Promise<boolean>;

/** How the health server serves: HTTPS with `tls`, else plain HTTP; /metrics only to whom `auth` allows, if set. */
export interface Serving {
  /** `clientCA`: also accept client certificates it signed (verified, then authorized as their CN/O user). */
  tls?: KeyPairPem & { clientCA?: string };
  /** Guards /metrics; /healthz, /livez and /readyz stay open to probes (upstream's --authorization-always-allow-paths). */
  auth?: DelegatedAuth;
}

/** /metrics, /healthz (process alive and its checks pass) and /readyz (ready to serve). */
export class HealthServer {
  private server: Server | undefined;
  private readonly health = new Map<string, Check>();
  private readonly readiness = new Map<string, Check>();

  addHealthCheck(name: string, check: Check): void {
    this.health.set(name, check);
  }

  addReadyCheck(name: string, check: Check): void {
    this.readiness.set(name, check);
  }

  async listen(address: string, serving: Serving = {}): Promise<number> {
    const { host, port } = parseAddress(address);
    const exporter = telemetry().exporter;
    const metrics = (req: IncomingMessage, res: ServerResponse) => {
      if (!serving.auth) return exporter.getMetricsRequestHandler(req, res);
      void serving.auth.checkRequest(req, '/metrics').then(({ code, reason }) => {
        if (code === 200) return exporter.getMetricsRequestHandler(req, res);
        const headers: Record<string, string> = { 'content-type': 'text/plain' };
        if (code === 401) headers['www-authenticate'] = 'Bearer';
        res.writeHead(code, headers).end(`${{ 401: 'Unauthorized', 403: 'Forbidden', 500: 'Internal Server Error' }[code]}: ${reason}\n`);
      });
    };
    const handler: RequestListener = (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') return metrics(req, res);
      const checks = path === '/healthz' || path === '/livez' ? this.health : path === '/readyz' ? this.readiness : undefined;
      if (!checks) {
        res.writeHead(404).end('not found\n');
        return;
      }
      void runChecks(checks).then(({ ok, report }) => {
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(report);
      });
    };
    const tls = serving.tls;
    // A certificate is asked for but not required: probes and token holders come without one.
    const clientAuth = tls?.clientCA ? { ca: tls.clientCA, requestCert: true, rejectUnauthorized: false } : {};
    this.server = tls ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem, ...clientAuth }, handler) : createServer(handler);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }
}

async function runChecks(checks: Map<string, Check>): Promise<{ ok: boolean; report: string }> {
  let ok = true;
  const lines: string[] = [];
  for (const [name, check] of checks) {
    const passed = await Promise.resolve().then(check).catch(() => false);
    ok &&= passed;
    lines.push(`[${passed ? '+' : '-'}]${name} ${passed ? 'ok' : 'failed'}`);
  }
  lines.push(ok ? 'ok' : 'failed');
  return { ok, report: lines.join('\n') + '\n' };
}

/** ":8080", "127.0.0.1:0", "[::1]:9090" → host and port. */
export function parseAddress(address: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid listen address "${address}" (want host:port or :port)`);
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port: Number(m[3]) };
}
