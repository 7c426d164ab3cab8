// Metrics (OpenTelemetry, exported for Prometheus), traces around reconciles and API calls, and the
// HTTP endpoints /metrics, /healthz and /readyz.
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { metrics, trace, SpanStatusCode, type Attributes, type Meter, type Tracer } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { KubeClient } from './client.js';
import type { DelegatedAuth } from './delegated-auth.js';
import type { KeyPairPem } from './pki.js';

export interface Telemetry {
  meter: Meter;
  tracer: Tracer;
  exporter: PrometheusExporter;
  shutdown(): Promise<void>;
}

let current: Telemetry | undefined;

/** Sets up the process-wide meter and tracer once; later calls return the same instance. */
export function telemetry(): Telemetry {
  if (current) return current;
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(meterProvider);
  const spanProcessors: SpanProcessor[] = process.env.OTEL_TRACES_EXPORTER === 'console' ? [new SimpleSpanProcessor(new ConsoleSpanExporter())] : [];
  const tracerProvider = new BasicTracerProvider({ spanProcessors });
  trace.setGlobalTracerProvider(tracerProvider);
  current = {
    meter: metrics.getMeter('switchboard'),
    tracer: trace.getTracer('switchboard'),
    exporter,
    shutdown: async () => {
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
      current = undefined;
    },
  };
  return current;
}

/** Runs `fn` inside a span named `name`; errors mark the span and propagate. */
export async function traced<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  return telemetry().tracer.startActiveSpan(name, { attributes }, async (span) => {
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

/** Counts and times every request a client makes (switchboard_api_requests_total, …_duration_seconds). */
export function instrumentClient(client: KubeClient): void {
  const meter = telemetry().meter;
  const requests = meter.createCounter('switchboard_api_requests', { description: 'Kubernetes API requests by verb, resource and HTTP code' });
  const latency = meter.createHistogram('switchboard_api_request_duration_seconds', { description: 'Kubernetes API request latency', unit: 's' });
  client.observer = (verb, resource, code, seconds) => {
    requests.add(1, { verb, resource, code: String(code) });
    latency.record(seconds, { verb, resource });
  };
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
