// The `switchboard up` demo on a local control plane: a small workload that shows all four jobs, then
// a summary table. Nodes and Pods are made through the API with their status set by hand (there is no
// kubelet), exactly as the integration tests do.
import PQueue from 'p-queue';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { EndpointSlices, Endpoints, Namespaces, Nodes, Pods, Services } from '../../api/resources.js';
import type { EndpointSlice, Endpoints as EndpointsObject, Service } from '../../api/wire.js';
import { IPAddressPools } from '../../crds/ipaddresspool.js';
import { L2Advertisements } from '../../crds/l2advertisement.js';

export const DEMO_NAMESPACE = 'demo';
const ZONES = ['zone-a', 'zone-b', 'zone-c'];

export interface DemoRow {
  job: string;
  object: string;
  result: string;
}

export interface DemoContext {
  client: KubeClient;
  /** Answers ARP for the LoadBalancer address where it may; returns its table row. */
  arping?(address: string): Promise<DemoRow>;
  /** Sends requests through kube-proxy and the speakers where it may; returns their table rows. */
  traffic?(): Promise<DemoRow[]>;
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  say(line: string): void;
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `count` ready pods labelled app=<app> spread over the nodes, with IPs from 10.244.<base>.0 up. */
async function readyPods(client: KubeClient, app: string, count: number, base: number): Promise<void> {
  const pool = new PQueue({ concurrency: 16 });
  for (let i = 0; i < count; i++) {
    void pool.add(async () => {
      const name = `${app}-${i}`;
      const ip = `10.244.${base + Math.floor(i / 250)}.${(i % 250) + 1}`;
      await client.createIfAbsent(Pods, {
        metadata: { name, namespace: DEMO_NAMESPACE, labels: { app } },
        spec: { nodeName: `node-${i % ZONES.length}`, containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10', ports: [{ name: 'http', containerPort: 8080 }] }] },
      });
      await client.patch(Pods, name, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] } }, 'merge', { namespace: DEMO_NAMESPACE, subresource: 'status' });
    });
  }
  await pool.onIdle();
}

async function service(client: KubeClient, name: string, spec: Service['spec']): Promise<void> {
  await client.createIfAbsent(Services, { metadata: { name, namespace: DEMO_NAMESPACE }, spec });
}

async function slicesOf(client: KubeClient, name: string): Promise<EndpointSlice[]> {
  return (await client.list<EndpointSlice>(EndpointSlices, { namespace: DEMO_NAMESPACE, labelSelector: `kubernetes.io/service-name=${name}` })).items;
}

export async function runDemo(ctx: DemoContext): Promise<DemoRow[]> {
  const { client, say } = ctx;
  const rows: DemoRow[] = [];
  await client.createIfAbsent(Namespaces, { metadata: { name: DEMO_NAMESPACE } });
  for (const [i, zone] of ZONES.entries()) {
    await client.createIfAbsent(Nodes, { metadata: { name: `node-${i}`, labels: { 'topology.kubernetes.io/zone': zone } } });
  }

  say('demo: 250 ready pods behind Service "web", 1100 behind Service "big"…');
  // Pods first: one reconcile then packs all 250 (pods trickling in fill slices as they come, as upstream).
  await readyPods(client, 'web', 250, 0);
  await readyPods(client, 'big', 1100, 10);
  await service(client, 'web', { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
  await service(client, 'big', { selector: { app: 'big' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
  const webSlices = await until('250 endpoints in the slices of "web"', async () => {
    const slices = await slicesOf(client, 'web');
    return slices.reduce((n, s) => n + (s.endpoints?.length ?? 0), 0) === 250 ? slices : undefined;
  });
  const sizes = webSlices.map((s) => s.endpoints?.length ?? 0).sort((a, b) => b - a);
  rows.push({ job: 'EndpointSlices', object: 'svc/web (250 pods)', result: `${webSlices.length} slices of ${sizes.join('+')} endpoints` });
  const big = await until('the truncated Endpoints of "big"', async () => {
    const ep = await client.getOrUndefined<EndpointsObject>(Endpoints, 'big', DEMO_NAMESPACE);
    return ep?.metadata?.annotations?.['endpoints.kubernetes.io/over-capacity'] === 'truncated' ? ep : undefined;
  });
  const kept = (big.subsets ?? []).reduce((n, s) => n + (s.addresses?.length ?? 0) + (s.notReadyAddresses?.length ?? 0), 0);
  rows.push({ job: 'Endpoints', object: 'ep/big (1100 pods)', result: `${kept} addresses, over-capacity: truncated` });

  say('demo: a Service asking for nodePort 80, and a NodePort Service…');
  const rejected = await ctx.kubectl(
    ['create', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'bad-port', namespace: DEMO_NAMESPACE }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 80, nodePort: 80 }] } }),
  );
  rows.push({ job: 'NodePort (422)', object: 'svc/bad-port', result: rejected.stderr.trim() || `unexpectedly accepted: ${rejected.stdout.trim()}` });
  await service(client, 'web-nodeport', { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
  const np = await client.get<Service>(Services, 'web-nodeport', DEMO_NAMESPACE);
  rows.push({ job: 'ClusterIP + NodePort', object: 'svc/web-nodeport', result: `clusterIP ${np.spec?.clusterIP}, nodePort ${np.spec?.ports?.[0]?.nodePort}` });

  say('demo: an address pool and a LoadBalancer Service…');
  await client.createIfAbsent(IPAddressPools, { metadata: { name: 'demo-pool' }, spec: { addresses: ['192.0.2.0/28'] } });
  await client.createIfAbsent(L2Advertisements, { metadata: { name: 'demo' }, spec: { ipAddressPools: ['demo-pool'] } });
  await service(client, 'web-lb', { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
  const lb = await until('an address for "web-lb"', async () => {
    const svc = await client.get<Service>(Services, 'web-lb', DEMO_NAMESPACE);
    return svc.status?.loadBalancer?.ingress?.[0]?.ip;
  });
  rows.push({ job: 'L2 LoadBalancer', object: 'svc/web-lb', result: `ingress ${lb} (pool demo-pool)` });
  if (ctx.arping) rows.push(await ctx.arping(lb));
  if (ctx.traffic) rows.push(...(await ctx.traffic()));
  return rows;
}

export function formatRows(rows: DemoRow[]): string {
  const w = [Math.max(3, ...rows.map((r) => r.job.length)), Math.max(6, ...rows.map((r) => r.object.length))];
  const line = (a: string, b: string, c: string) => `  ${a.padEnd(w[0])}  ${b.padEnd(w[1])}  ${c}`;
  return [line('JOB', 'OBJECT', 'RESULT'), ...rows.map((r) => line(r.job, r.object, r.result))].join('\n');
}
