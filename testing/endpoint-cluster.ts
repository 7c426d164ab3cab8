// Helpers for the endpoint controllers' integration tests: Nodes and Pods made through the API with the status a
// kubelet would set (there is none), the controllers run in-process, and slices reduced to comparable snapshots.
import { KubeClient } from '../controllers/runtime/client.js';
import { createLogger, type Logger } from '../controllers/runtime/log.js';
import { Manager } from '../controllers/runtime/manager.js';
import { Nodes, Pods } from '../api/resources.js';
import type { EndpointSlice, Node, Pod } from '../api/wire.js';
import { LABEL_MANAGED_BY } from '../controllers/endpointutil/constants.js';
import { portSetKey } from '../controllers/endpointutil/ports.js';
import type { SliceEndpoint } from '../controllers/endpointutil/types.js';

export async function createNode(client: KubeClient, name: string, options: { zone?: string; cpu?: string; ready?: boolean } = {}): Promise<Node> {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name };
  if (options.zone) labels['topology.kubernetes.io/zone'] = options.zone;
  await client.create<Node>(Nodes, { metadata: { name, labels } });
  const status: Node['status'] = {
    conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True', reason: 'Test', lastHeartbeatTime: now(), lastTransitionTime: now() }],
  };
  if (options.cpu) status.allocatable = status.capacity = { cpu: options.cpu, memory: '8Gi', pods: '110' };
  return client.patch<Node>(Nodes, name, { status }, 'merge', { subresource: 'status' });
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

export interface PodState {
  ips?: string[];
  ready?: boolean;
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
}

export interface PodSpecLite extends PodState {
  name: string;
  labels: Record<string, string>;
  node?: string;
  hostname?: string;
  subdomain?: string;
  ports?: ContainerPort[];
  /** Ports of a restartable init container (a sidecar). */
  sidecarPorts?: ContainerPort[];
}

type ContainerPort = { name?: string; containerPort: number; protocol?: string };

export async function createPod(client: KubeClient, namespace: string, pod: PodSpecLite): Promise<Pod> {
  await client.create<Pod>(Pods, {
    metadata: { name: pod.name, namespace, labels: pod.labels },
    spec: {
      nodeName: pod.node,
      hostname: pod.hostname,
      subdomain: pod.subdomain,
      terminationGracePeriodSeconds: 30,
      containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', ports: pod.ports }],
      initContainers: pod.sidecarPorts ? [{ name: 'sidecar', image: 'registry.k8s.io/pause:3.10', restartPolicy: 'Always', ports: pod.sidecarPorts }] : undefined,
    },
  });
  return setPodStatus(client, namespace, pod.name, pod);
}

/** What a kubelet would report: phase, IPs and the Ready condition (merge patch: lists are replaced). */
export function setPodStatus(client: KubeClient, namespace: string, name: string, state: PodState): Promise<Pod> {
  const ips = state.ips ?? [];
  const status: Pod['status'] = {
    phase: state.phase ?? (ips.length ? 'Running' : 'Pending'),
    podIP: ips[0] ?? null,
    podIPs: ips.length ? ips.map((ip) => ({ ip })) : null,
    conditions: [{ type: 'Ready', status: state.ready === false || ips.length === 0 ? 'False' : 'True', lastTransitionTime: now() }],
  } as Pod['status']; // null clears a field in a merge patch; the wire type has no null
  return client.patch<Pod>(Pods, name, { status }, 'merge', { namespace, subresource: 'status' });
}

/** Deletes at once (a pod bound to a Node otherwise stays Terminating until its kubelet confirms). */
export async function forceDeletePod(client: KubeClient, namespace: string, name: string): Promise<void> {
  await client.request('DELETE', client.path(Pods, namespace, name), { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0 });
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export interface RunningControllers<C> {
  manager: Manager;
  controllers: C;
  /** Log lines (JSON) the controllers wrote. */
  logs: string[];
  stop(): Promise<void>;
}

/** Controllers in this process, leader election off, as `switchboard controller` would run them. */
export async function runControllers<C>(kubeconfig: string, register: (manager: Manager) => C, log?: Logger): Promise<RunningControllers<C>> {
  const logs: string[] = [];
  const client = KubeClient.fromFile(kubeconfig, 'switchboard');
  const logger = log ?? createLogger('switchboard', { level: 'info', write: (line) => logs.push(line) });
  const manager = new Manager({
    client,
    log: logger,
    component: 'switchboard-controller',
    leaderElection: { enabled: false, namespace: '', leaseName: '', leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 },
  });
  const controllers = register(manager);
  const abort = new AbortController();
  const running = manager.run(abort.signal);
  return {
    manager,
    controllers,
    logs,
    stop: async () => {
      abort.abort();
      await running;
      client.close();
    },
  };
}

/** An endpoint reduced to the fields both controllers must agree on, as one comparable string. */
function endpointText(endpoint: SliceEndpoint): string {
  const ref = endpoint.targetRef;
  const hintNames = (list: { name: string }[] | undefined) => (list ? list.map((h) => h.name).sort() : null);
  return JSON.stringify({
    addresses: [...(endpoint.addresses ?? [])].sort(),
    ready: endpoint.conditions?.ready ?? null,
    serving: endpoint.conditions?.serving ?? null,
    terminating: endpoint.conditions?.terminating ?? null,
    hostname: endpoint.hostname ?? null,
    nodeName: endpoint.nodeName ?? null,
    zone: endpoint.zone ?? null,
    targetRef: ref ? [ref.kind, ref.namespace, ref.name, ref.uid] : null,
    forZones: hintNames(endpoint.hints?.forZones),
    forNodes: hintNames(endpoint.hints?.forNodes),
  });
}

/**
 * What a controller published for one Service, order-free: per (address type, port set) the sorted endpoints,
 * the number of slices per address type, and the slices' labels (managed-by left out) and owners.
 */
export interface SliceSnapshot {
  slices: Record<string, number>;
  groups: Record<string, string[]>;
  labels: string[];
  owners: string[];
}

export function sliceSnapshot(slices: readonly EndpointSlice[]): SliceSnapshot {
  const snapshot: SliceSnapshot = { slices: {}, groups: {}, labels: [], owners: [] };
  const labels = new Set<string>();
  const owners = new Set<string>();
  for (const slice of slices) {
    snapshot.slices[slice.addressType] = (snapshot.slices[slice.addressType] ?? 0) + 1;
    const group = `${slice.addressType} ${portSetKey(slice.ports)}`;
    snapshot.groups[group] = [...(snapshot.groups[group] ?? []), ...(slice.endpoints ?? []).map(endpointText)].sort();
    const { [LABEL_MANAGED_BY]: _managedBy, ...rest } = slice.metadata?.labels ?? {};
    labels.add(JSON.stringify(Object.entries(rest).sort()));
    for (const ref of slice.metadata?.ownerReferences ?? []) owners.add(`${ref.kind}/${ref.name}/${ref.uid}/${ref.controller}`);
  }
  snapshot.labels = [...labels].sort();
  snapshot.owners = [...owners].sort();
  // Keys in a fixed order, so that equal snapshots have equal JSON.
  snapshot.slices = Object.fromEntries(Object.entries(snapshot.slices).sort());
  snapshot.groups = Object.fromEntries(Object.entries(snapshot.groups).sort());
  return snapshot;
}

/** The endpoints of a snapshot, decoded, for expectations. */
export function snapshotEndpoints(snapshot: SliceSnapshot): { addresses: string[]; ready: boolean | null; terminating: boolean | null }[] {
  return Object.values(snapshot.groups).flatMap((list) => list.map((text) => JSON.parse(text) as { addresses: string[]; ready: boolean | null; terminating: boolean | null }));
}
