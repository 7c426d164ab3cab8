// Metrics under upstream's names, checked against upstream itself: kube-controller-manager (its three endpoint
// controllers, metrics on its secure port) and a `switchboard controller` run on one control plane of this suite's
// own over the same objects; both /metrics are scraped and every family both expose must have the same TYPE, label
// names and histogram buckets. The upstream names Switchboard promises must be on its side, and every family it
// exposes must be one the source registers (testing/metric-registrations.ts, which the dashboard test relies on).
// The endpoint write-latency histogram is checked against a Ready transition dated 40 s back.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { get as httpsGet } from 'node:https';
import { KubeClient } from '../runtime/client.js';
import { Endpoints as EndpointsResource, EndpointSlices, Namespaces, Pods, Services } from '../../api/resources.js';
import type { EndpointSlice, Pod } from '../../api/wire.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { freePort } from '../../cmd/up/controlplane/processes.js';
import { createNode, createPod } from '../../testing/endpoint-cluster.js';
import { parseExposition, type MetricFamily } from '../../testing/prometheus-text.js';
import { registeredMetrics } from '../../testing/metric-registrations.js';
import { eventually } from '../../e2e/jest/cluster.js';
import { leads, replicaFlags, requireBuiltSwitchboard, spawnSwitchboard, stopSwitchboard, type SwitchboardProcess } from '../../e2e/jest/switchboard-process.js';

const NS = 'upstream-metrics';
const OUR_SLICES = 'endpointslice-controller.metrics.switchboard.dev';
const log = (line: string) => process.stderr.write(`[upstream-metrics] ${line}\n`);

/** The upstream families Switchboard exposes under exactly upstream's name, type and labels. */
const UPSTREAM_NAMES = [
  'endpoint_slice_controller_syncs',
  'endpoint_slice_controller_changes',
  'endpoint_slice_controller_endpoints_added_per_sync',
  'endpoint_slice_controller_endpoints_removed_per_sync',
  'endpoint_slice_controller_endpointslices_changed_per_sync',
  'endpoint_slice_controller_endpoints_desired',
  'endpoint_slice_controller_num_endpoint_slices',
  'endpoint_slice_controller_desired_endpoint_slices',
  'endpoint_slice_controller_services_count_by_traffic_distribution',
  'endpoint_slice_mirroring_controller_changes',
  'endpoint_slice_mirroring_controller_endpoints_sync_duration',
  'endpoint_slice_mirroring_controller_addresses_skipped_per_sync',
  'workqueue_depth',
  'workqueue_adds_total',
  'workqueue_queue_duration_seconds',
  'workqueue_work_duration_seconds',
  'workqueue_unfinished_work_seconds',
  'workqueue_longest_running_processor_seconds',
];

function scrapeHttps(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // kube-controller-manager's self-signed serving certificate on loopback; /metrics is an always-allowed path here.
    httpsGet({ host: '127.0.0.1', port, path: '/metrics', rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`kube-controller-manager /metrics: ${res.statusCode} ${body}`))));
    }).on('error', reject);
  });
}

/** Type, label names and, for histograms, the bucket bounds (rounded: Go prints 1e-08 where JavaScript computes 1.0000000000000001e-8). */
const describeFamily = (f: MetricFamily | undefined) =>
  f ? { type: f.type, labels: [...f.labels].sort(), buckets: [...f.buckets].sort((a, b) => a - b).map((b) => Number(b.toPrecision(12))) } : undefined;

describe('metrics compared with kube-controller-manager', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  let kcmPort = 0;
  let switchboard: SwitchboardProcess | undefined;

  beforeAll(async () => {
    requireBuiltSwitchboard();
    cp = await new LocalControlPlane({ kubeControllerManager: false, log }).start();
    client = KubeClient.fromFile(cp.kubeconfig, 'switchboard-test');
    kcmPort = await freePort();
    await cp.startControllerManager('kcm-metrics', ['endpointslice-controller', 'endpointslice-mirroring-controller', 'endpoints-controller'], [
      `--secure-port=${kcmPort}`,
      '--bind-address=127.0.0.1',
      '--authorization-always-allow-paths=/healthz,/metrics',
    ]);
    await client.create(Namespaces, { metadata: { name: NS } });
  }, 240_000);

  afterAll(async () => {
    if (switchboard) await stopSwitchboard(switchboard, 'SIGKILL');
    client?.close();
    await cp?.stop();
  });

  it('exposes every family it shares with kube-controller-manager under the same type, labels and buckets', async () => {
    await createNode(client, 'node-a', { zone: 'z1' });
    await client.create(Services, { metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }], trafficDistribution: 'PreferClose' } });
    await client.create(Services, { metadata: { name: 'np', namespace: NS }, spec: { type: 'NodePort', selector: { app: 'np' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    await client.create(Services, { metadata: { name: 'manual', namespace: NS }, spec: { ports: [{ name: 'http', port: 80 }] } });
    await client.create(EndpointsResource, { metadata: { name: 'manual', namespace: NS }, subsets: [{ addresses: [{ ip: '10.90.1.1' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }] });
    for (let i = 0; i < 3; i++) await createPod(client, NS, { name: `web-${i}`, labels: { app: 'web' }, node: 'node-a', ips: [`10.90.0.${i + 1}`], ready: true });

    switchboard = spawnSwitchboard('upstream-metrics', [
      ...replicaFlags(cp.kubeconfig, NS, 'metrics'),
      `--endpoint-controllers-namespace=${NS}`,
      `--endpointslice-managed-by=${OUR_SLICES}`,
      '--mirroring-managed-by=endpointslicemirroring-controller.metrics.switchboard.dev',
      '--load-balancer-controller=false',
    ]);
    await eventually(() => leads(switchboard!), 30_000);
    const slicesBy = async (managedBy: string) =>
      (await client.list<EndpointSlice>(EndpointSlices, { namespace: NS, labelSelector: `endpointslice.kubernetes.io/managed-by=${managedBy}` })).items;
    await eventually(async () => (await slicesBy('endpointslice-controller.k8s.io')).length >= 1 && (await slicesBy(OUR_SLICES)).length >= 1, 30_000);

    // A pod of the NodePort Service that turns Ready with a transition dated 40 s back: its slice is written ~40 s
    // after that trigger time. (Created without a status first: a Ready transition older than one the controller
    // has already seen for the pod would not be a trigger, as upstream.)
    await client.create<Pod>(Pods, { metadata: { name: 'np-0', namespace: NS, labels: { app: 'np' } }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } });
    const dated = new Date(Date.now() - 40_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await client.patch<Pod>(Pods, 'np-0', { status: { phase: 'Running', podIP: '10.90.2.1', podIPs: [{ ip: '10.90.2.1' }], conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: dated }] } }, 'merge', {
      namespace: NS,
      subresource: 'status',
    });
    const port = Number(/"port":(\d+)/.exec(switchboard.output.find((l) => l.includes('"serving metrics and health"')) ?? '')?.[1]);
    const scrapeOurs = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const latency = await eventually(async () => {
      const text = await scrapeOurs();
      const np40 = /switchboard_endpoint_write_latency_seconds_bucket\{[^}]*object="EndpointSlice"[^}]*service_type="NodePort"[^}]*le="(\d+)"\} (\d+)/g;
      const buckets = new Map([...text.matchAll(np40)].map((m) => [Number(m[1]), Number(m[2])]));
      // One write in (30 s, 60 s]: the pod's (the Service's own first sync counts from its creation, a few s back).
      return (buckets.get(60) ?? 0) - (buckets.get(30) ?? 0) === 1 ? buckets : false;
    }, 30_000).catch(async (err: unknown) => {
      log((await scrapeOurs()).split('\n').filter((l) => l.includes('write_latency')).join('\n'));
      throw err;
    });
    expect({ over60: (latency.get(120) ?? 0) - (latency.get(60) ?? 0), within30: latency.get(30) }).toEqual({ over60: 0, within30: 1 });

    // Let both settle (kube-controller-manager batches nothing here, but its informers start a moment later).
    await new Promise((r) => setTimeout(r, 3000));
    const theirs = parseExposition(await scrapeHttps(kcmPort));
    const ours = parseExposition(await scrapeOurs());

    const shared = [...ours.keys()].filter((name) => theirs.has(name));
    log(`shared families: ${shared.sort().join(', ')}`);
    const mismatches = shared
      .map((name) => ({ name, ours: describeFamily(ours.get(name)), theirs: describeFamily(theirs.get(name)) }))
      .filter((c) => JSON.stringify(c.ours) !== JSON.stringify(c.theirs));
    expect(mismatches).toEqual([]);

    const missing = UPSTREAM_NAMES.filter((name) => !ours.has(name));
    expect({ missingOnOurSide: missing }).toEqual({ missingOnOurSide: [] });
    // Compared, not merely present: each is exposed by kube-controller-manager too.
    expect({ notExposedByKcm: UPSTREAM_NAMES.filter((name) => !theirs.has(name)) }).toEqual({ notExposedByKcm: [] });
    // The old suffixed names are gone.
    expect([...ours.keys()].filter((n) => /^endpoint_slice_(mirroring_)?controller_(syncs|changes)_total$/.test(n))).toEqual([]);

    // What the dashboard test trusts: every family scraped is one the source scan finds, with that type.
    const registered = registeredMetrics();
    const unknown = [...ours]
      .filter(([name]) => name !== 'target_info')
      .filter(([name, f]) => registered.get(name) !== f.type)
      .map(([name, f]) => `${name} (${f.type}; scan: ${registered.get(name) ?? 'absent'})`);
    expect(unknown).toEqual([]);
  });
});
