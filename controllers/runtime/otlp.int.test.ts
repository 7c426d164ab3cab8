// OpenTelemetry over OTLP from a real `switchboard controller` on the shared control plane: only the standard
// variables are set (OTEL_EXPORTER_OTLP_ENDPOINT, a per-signal protocol, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES),
// and a small OTLP/HTTP receiver in the test decodes what arrives: traces as protobuf (the default protocol, decoded
// with the OpenTelemetry project's own generated protobuf classes), metrics as JSON. The EndpointSlice reconcile of
// a Service must arrive as a root span with the API calls it made as CLIENT children carrying the HTTP semantic
// conventions, and the metrics must carry the upstream names.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { KubeClient } from './client.js';
import { Nodes, Services } from '../../api/resources.js';
import { createNode, createPod } from '../../testing/endpoint-cluster.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, randomSuffix, testClient } from '../../e2e/jest/cluster.js';
import { leads, replicaFlags, requireBuiltSwitchboard, spawnSwitchboard, stopSwitchboard, type SwitchboardProcess } from '../../e2e/jest/switchboard-process.js';

interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface KeyValue {
  key: string;
  value: AnyValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
}
interface TraceRequest {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}
interface MetricsRequest {
  resourceMetrics?: { resource?: { attributes?: KeyValue[] }; scopeMetrics?: { metrics?: { name: string }[] }[] }[];
}
interface ProtoMessage {
  decode(bytes: Uint8Array): unknown;
  toObject(message: unknown, options: Record<string, unknown>): unknown;
}

// opentelemetry-proto's ExportTraceServiceRequest, as generated for the exporters (otlp-transformer ships it).
const ExportTraceServiceRequest = (
  createRequire(import.meta.url)('@opentelemetry/otlp-transformer/build/src/generated/root.js') as {
    opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: ProtoMessage } } } } };
  }
).opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

const attr = (attributes: KeyValue[] | undefined, key: string): string | number | boolean | undefined => {
  const v = attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : v?.boolValue);
};

describe('OTLP export', () => {
  let client: KubeClient;
  let ns: string;
  let node: string;
  let receiver: Server;
  let controller: SwitchboardProcess | undefined;
  const spans: OtlpSpan[] = [];
  const resources: KeyValue[][] = [];
  const metricNames = new Set<string>();
  const contentTypes = new Set<string>();

  beforeAll(async () => {
    requireBuiltSwitchboard();
    client = testClient();
    ns = await createNamespace(client, 'otlp');
    node = `otlp-${randomSuffix()}`;
    await createNode(client, node);
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        contentTypes.add(`${req.url} ${req.headers['content-type']}`);
        if (req.url === '/v1/traces') {
          const request = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(body), { longs: String, bytes: String }) as TraceRequest;
          for (const rs of request.resourceSpans ?? []) {
            resources.push(rs.resource?.attributes ?? []);
            for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
          }
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        } else if (req.url === '/v1/metrics') {
          const request = JSON.parse(body.toString('utf8')) as MetricsRequest;
          for (const rm of request.resourceMetrics ?? []) for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) metricNames.add(m.name);
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        } else {
          res.writeHead(404).end();
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  });

  afterAll(async () => {
    if (controller) await stopSwitchboard(controller, 'SIGKILL');
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
    await deleteNamespace(client, ns);
    await client.delete(Nodes, node).catch(() => undefined);
    client.close();
  });

  it('sends a reconcile span with its API calls as CLIENT children, and the metrics, to the OTLP endpoint', async () => {
    const port = (receiver.address() as { port: number }).port;
    await client.create(Services, { metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    await createPod(client, ns, { name: 'web-0', labels: { app: 'web' }, node, ips: ['10.81.0.1'], ready: true });
    controller = spawnSwitchboard(
      'otlp',
      [
        ...replicaFlags(controlPlaneInfo().kubeconfig, ns, 'otlp'),
        `--endpoint-controllers-namespace=${ns}`,
        '--endpointslice-managed-by=endpointslice-controller.otlp.switchboard.dev',
        '--mirroring-managed-by=endpointslicemirroring-controller.otlp.switchboard.dev',
        '--endpoints-controller=false',
        '--load-balancer-controller=false',
      ],
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'switchboard-otlp-test',
        OTEL_RESOURCE_ATTRIBUTES: `deployment.environment.name=test,k8s.namespace.name=${ns}`,
        OTEL_BSP_SCHEDULE_DELAY: '200',
        OTEL_METRIC_EXPORT_INTERVAL: '1000',
      },
    );
    await eventually(() => leads(controller!), 30_000);

    const key = `${ns}/web`;
    const { reconcile, children } = await eventually(() => {
      for (const span of spans.filter((s) => s.name === 'reconcile endpoint_slice' && attr(s.attributes, 'key') === key)) {
        const calls = spans.filter((s) => s.parentSpanId === span.spanId);
        if (calls.some((c) => attr(c.attributes, 'http.request.method') === 'POST')) return { reconcile: span, children: calls };
      }
      return false;
    }, 30_000);

    expect(reconcile.parentSpanId ?? '').toBe(''); // a root: not the child of the reconcile before it
    const create = children.find((c) => attr(c.attributes, 'http.request.method') === 'POST')!;
    const server = new URL(controlPlaneInfo().server);
    expect({
      name: create.name,
      kind: create.kind,
      traceId: create.traceId,
      url: attr(create.attributes, 'url.full'),
      address: attr(create.attributes, 'server.address'),
      port: attr(create.attributes, 'server.port'),
      code: attr(create.attributes, 'http.response.status_code'),
    }).toEqual({
      name: `POST /apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices`,
      kind: SPAN_KIND_CLIENT,
      traceId: reconcile.traceId,
      url: expect.stringContaining(`${server.origin}/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?`),
      address: server.hostname,
      port: Number(server.port),
      code: 201,
    });
    expect(children.every((c) => c.kind === SPAN_KIND_CLIENT)).toBe(true);
    // Leader election and informers call the API outside any reconcile: their spans are roots, not children.
    expect(spans.some((s) => s.kind === SPAN_KIND_CLIENT && !s.parentSpanId && attr(s.attributes, 'url.template') === '/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}')).toBe(true);
    expect(spans.some((s) => s.kind === SPAN_KIND_SERVER)).toBe(false); // no webhook in this run

    const resource = resources[0];
    expect({ service: attr(resource, 'service.name'), env: attr(resource, 'deployment.environment.name'), ns: attr(resource, 'k8s.namespace.name') }).toEqual({
      service: 'switchboard-otlp-test',
      env: 'test',
      ns,
    });

    // The SDK logs its warnings and errors (a refused export, say) as JSON lines: none here.
    expect(controller.output.filter((l) => l.includes('"logger":"opentelemetry"'))).toEqual([]);
    await eventually(() => ['endpoint_slice_controller_syncs', 'workqueue_adds', 'workqueue_queue_duration_seconds', 'switchboard_api_request_duration_seconds', 'switchboard_endpoint_write_latency_seconds'].every((n) => metricNames.has(n)), 15_000);
    // Per-signal protocols: traces as protobuf (the default), metrics as JSON (their own variable).
    expect([...contentTypes].sort()).toEqual(['/v1/metrics application/json', '/v1/traces application/x-protobuf']);
  });
});
