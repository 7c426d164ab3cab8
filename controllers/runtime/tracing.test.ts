// Spans and the exposition rules, without a cluster: an admission request is a SERVER span continuing the caller's
// traceparent, the API call its handler makes is a CLIENT child (through awaits: the context manager), a reconcile
// is a root span with its API calls under it; the OTEL_* variables select the exporters; upstream counters lose the
// `_total` the Prometheus serializer adds.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { SpanKind, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { allowResponse } from '../../api/admission.js';
import { ConfigMaps } from '../../api/resources.js';
import { KubeClient, urlTemplate } from './client.js';
import { Controller } from './controller.js';
import { silentLogger } from './log.js';
import { createCertificateAuthority, issueCertificate } from './pki.js';
import { exportConfig, restoreUpstreamCounterNames, telemetry } from './telemetry.js';
import { WebhookServer } from './webhook/server.js';

const spans = new InMemorySpanExporter();
let api: Server;
let client: KubeClient;
const seenTraceparents: string[] = [];

beforeAll(async () => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
  telemetry(); // the context manager and propagator; no exporter in the environment, so the provider above stays
  api = createServer((req, res) => {
    seenTraceparents.push(String(req.headers.traceparent));
    const code = req.url?.includes('/missing') ? 404 : 200;
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(code === 200 ? { kind: 'ConfigMap', metadata: { name: 'x' } } : { kind: 'Status', code, reason: 'NotFound' }));
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', () => resolve()));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${(api.address() as { port: number }).port}`, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'nobody' }],
    currentContext: 'fake',
  });
  client = new KubeClient(kc, 'test');
});

afterAll(async () => {
  client.close();
  await new Promise<void>((resolve) => api.close(() => resolve()));
});

describe('spans', () => {
  it('an admission request is a SERVER span under the caller\'s traceparent, its API calls CLIENT children', async () => {
    spans.reset();
    const ca = await createCertificateAuthority('tracing-test-ca', 1);
    const serving = await issueCertificate(ca, { commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 1 });
    const server = new WebhookServer(silentLogger);
    server.setCertificate({ certPem: serving.certPem, keyPem: serving.keyPem });
    server.handle('/validate-things', async (request) => {
      await new Promise((r) => setTimeout(r, 5)); // the context survives timers and awaits
      await client.get(ConfigMaps, 'x', 'ns');
      return allowResponse(request.uid);
    });
    const port = await server.listen('127.0.0.1:0');
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', operation: 'CREATE', object: {} } });
    const code = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port, path: '/validate-things', method: 'POST', ca: ca.certPem, agent: false, headers: { 'content-type': 'application/json', traceparent: `00-${callerTrace}-${callerSpan}-01` } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    await server.close();
    expect(code).toBe(200);
    const finished = spans.getFinishedSpans();
    const serverSpan = finished.find((s) => s.kind === SpanKind.SERVER)!;
    const clientSpan = finished.find((s) => s.kind === SpanKind.CLIENT)!;
    expect({
      name: serverSpan.name,
      trace: serverSpan.spanContext().traceId,
      parent: serverSpan.parentSpanContext?.spanId,
      route: serverSpan.attributes['http.route'],
      method: serverSpan.attributes['http.request.method'],
      status: serverSpan.attributes['http.response.status_code'],
      outcome: serverSpan.attributes['switchboard.admission.outcome'],
    }).toEqual({ name: 'POST /validate-things', trace: callerTrace, parent: callerSpan, route: '/validate-things', method: 'POST', status: 200, outcome: 'allowed' });
    expect({ parent: clientSpan.parentSpanContext?.spanId, trace: clientSpan.spanContext().traceId }).toEqual({ parent: serverSpan.spanContext().spanId, trace: callerTrace });
    // The API server is sent the CLIENT span's context, so its own spans (with tracing on) join the trace.
    expect(seenTraceparents.at(-1)).toBe(`00-${callerTrace}-${clientSpan.spanContext().spanId}-01`);
  });

  it('a reconcile is a root span and its API calls (errors included) are CLIENT children with the HTTP conventions', async () => {
    spans.reset();
    const controller = new Controller({
      name: 'things',
      log: silentLogger,
      reconcile: async (key) => {
        await client.get(ConfigMaps, key, 'ns');
        await client.getOrUndefined(ConfigMaps, 'missing', 'ns');
      },
    });
    controller.start();
    controller.enqueue('a');
    controller.enqueue('b');
    await new Promise((r) => setTimeout(r, 200));
    await controller.stop();
    const finished = spans.getFinishedSpans();
    const reconciles = finished.filter((s) => s.name === 'reconcile things');
    expect(reconciles.map((s) => [s.attributes.key, s.parentSpanContext?.spanId])).toEqual([
      ['a', undefined],
      ['b', undefined],
    ]);
    for (const r of reconciles) {
      const calls = finished.filter((s) => s.parentSpanContext?.spanId === r.spanContext().spanId);
      expect(
        calls.map((c) => ({
          name: c.name,
          kind: c.kind,
          method: c.attributes['http.request.method'],
          url: c.attributes['url.full'],
          address: c.attributes['server.address'],
          code: c.attributes['http.response.status_code'],
          error: c.attributes['error.type'],
        })),
      ).toEqual([
        { name: 'GET /api/v1/namespaces/{namespace}/configmaps/{name}', kind: SpanKind.CLIENT, method: 'GET', url: expect.stringMatching(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/api/v1/namespaces/ns/configmaps/${r.attributes.key}$`)), address: '127.0.0.1', code: 200, error: undefined },
        { name: 'GET /api/v1/namespaces/{namespace}/configmaps/{name}', kind: SpanKind.CLIENT, method: 'GET', url: expect.stringMatching(/\/configmaps\/missing$/), address: '127.0.0.1', code: 404, error: '404' },
      ]);
    }
  });

  it('names API paths by template', () => {
    expect(urlTemplate('/api/v1/namespaces/a/pods/b/status')).toBe('/api/v1/namespaces/{namespace}/pods/{name}/status');
    expect(urlTemplate('/apis/discovery.k8s.io/v1/namespaces/a/endpointslices')).toBe('/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices');
    expect(urlTemplate('/api/v1/namespaces/a')).toBe('/api/v1/namespaces/{name}');
    expect(urlTemplate('/apis/coordination.k8s.io/v1/namespaces/s/leases/l')).toBe('/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}');
    expect(urlTemplate('/api/v1/nodes')).toBe('/api/v1/nodes');
  });
});

describe('exporters from the OTEL_* variables', () => {
  it('sends nothing anywhere by default', () => {
    expect(exportConfig({})).toEqual({ traces: [], otlpMetrics: false, tracesProtocol: 'http/protobuf', metricsProtocol: 'http/protobuf', metricIntervalMs: 60_000 });
  });

  it('exports both signals over OTLP once an endpoint is set, per-signal settings winning', () => {
    expect(exportConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf', OTEL_METRIC_EXPORT_INTERVAL: '5000' })).toEqual({
      traces: ['otlp'],
      otlpMetrics: true,
      tracesProtocol: 'http/protobuf',
      metricsProtocol: 'http/json',
      metricIntervalMs: 5000,
    });
    expect(exportConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toMatchObject({ traces: ['otlp'], otlpMetrics: false });
  });

  it('follows explicit exporter lists and OTEL_SDK_DISABLED', () => {
    expect(exportConfig({ OTEL_TRACES_EXPORTER: 'console' })).toMatchObject({ traces: ['console'], otlpMetrics: false });
    expect(exportConfig({ OTEL_TRACES_EXPORTER: 'otlp,console', OTEL_METRICS_EXPORTER: 'prometheus' })).toMatchObject({ traces: ['otlp', 'console'], otlpMetrics: false });
    expect(exportConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'otlp,prometheus' })).toMatchObject({ traces: [], otlpMetrics: true });
    expect(exportConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toMatchObject({ traces: [], otlpMetrics: false });
  });

  it('refuses what it cannot honour rather than exporting nowhere in silence', () => {
    expect(() => exportConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/grpc/);
    expect(() => exportConfig({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/zipkin/);
  });
});

describe('Prometheus exposition', () => {
  it('restores the exact names of upstream counters and leaves the others alone', () => {
    const names = new Set(['endpoint_slice_controller_syncs']);
    const text = [
      '# HELP endpoint_slice_controller_syncs_total Number of EndpointSlice syncs',
      '# TYPE endpoint_slice_controller_syncs_total counter',
      'endpoint_slice_controller_syncs_total{result="success"} 3',
      '# HELP workqueue_adds_total Total number of adds handled by workqueue',
      '# TYPE workqueue_adds_total counter',
      'workqueue_adds_total{name="endpoint_slice"} 4',
      'endpoint_slice_controller_syncs_total_other 1',
    ].join('\n');
    expect(restoreUpstreamCounterNames(text, names).split('\n')).toEqual([
      '# HELP endpoint_slice_controller_syncs Number of EndpointSlice syncs',
      '# TYPE endpoint_slice_controller_syncs counter',
      'endpoint_slice_controller_syncs{result="success"} 3',
      '# HELP workqueue_adds_total Total number of adds handled by workqueue',
      '# TYPE workqueue_adds_total counter',
      'workqueue_adds_total{name="endpoint_slice"} 4',
      'endpoint_slice_controller_syncs_total_other 1',
    ]);
  });
});
