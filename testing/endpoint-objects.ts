// Builders of wire objects for the endpoint controllers' tests, and a minimal stand-in for the API server's
// handling of EndpointSlice writes (names from generateName, uids, generations) to replay sequences of syncs.
import type { EndpointSlice, Node, Pod, Service } from '../api/wire.js';
import type { SliceWrites } from '../controllers/endpointutil/report.js';
import type { ServicePort } from '../controllers/endpointutil/types.js';

export const NAMESPACE = 'default';

export interface ServiceOptions {
  name?: string;
  namespace?: string;
  uid?: string;
  selector?: Record<string, string> | null;
  ports?: ServicePort[];
  clusterIP?: string;
  ipFamilies?: string[];
  publishNotReadyAddresses?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  trafficDistribution?: string;
  type?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export function makeService(options: ServiceOptions = {}): Service {
  const spec: NonNullable<Service['spec']> = {
    clusterIP: options.clusterIP ?? '10.96.0.10',
    ipFamilies: options.ipFamilies ?? ['IPv4'],
    ports: options.ports ?? [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
    type: options.type ?? 'ClusterIP',
  };
  if (options.selector !== null) spec.selector = options.selector ?? { app: 'web' };
  if (options.publishNotReadyAddresses) spec.publishNotReadyAddresses = true;
  if (options.trafficDistribution) spec.trafficDistribution = options.trafficDistribution;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: options.name ?? 'web',
      namespace: options.namespace ?? NAMESPACE,
      uid: options.uid ?? 'svc-uid-1',
      labels: options.labels,
      annotations: options.annotations,
      creationTimestamp: options.creationTimestamp ?? '2026-01-01T00:00:00Z',
      deletionTimestamp: options.deletionTimestamp,
    },
    spec,
  };
}

export interface PodOptions {
  ips?: string[];
  ready?: boolean;
  readySince?: string;
  node?: string;
  labels?: Record<string, string>;
  namespace?: string;
  hostname?: string;
  subdomain?: string;
  terminating?: boolean;
  phase?: string;
  containerPorts?: { name?: string; containerPort: number; protocol?: string }[];
  sidecarPorts?: { name?: string; containerPort: number; protocol?: string }[];
  uid?: string;
}

/** Pod `name` with IP 10.0.<n/250>.<n%250+1> derived from `index` unless `ips` is given. */
export function makePod(name: string, index: number, options: PodOptions = {}): Pod {
  const ips = options.ips ?? [`10.0.${Math.floor(index / 250)}.${(index % 250) + 1}`];
  const ready = options.ready ?? true;
  const pod: Pod = {
    metadata: {
      name,
      namespace: options.namespace ?? NAMESPACE,
      uid: options.uid ?? `uid-${name}`,
      labels: options.labels ?? { app: 'web' },
      deletionTimestamp: options.terminating ? '2026-01-02T00:00:00Z' : undefined,
    },
    spec: {
      nodeName: options.node ?? 'node-a',
      hostname: options.hostname,
      subdomain: options.subdomain,
      containers: [{ name: 'app', ports: options.containerPorts }],
      initContainers: options.sidecarPorts ? [{ name: 'sidecar', restartPolicy: 'Always', ports: options.sidecarPorts }] : undefined,
    },
    status: {
      phase: options.phase ?? 'Running',
      podIP: ips[0],
      podIPs: ips.map((ip) => ({ ip })),
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: options.readySince }],
    },
  };
  return pod;
}

export function makePods(count: number, options: PodOptions = {}, prefix = 'pod'): Pod[] {
  return Array.from({ length: count }, (_, i) => makePod(`${prefix}-${i}`, i, options));
}

export function makeNode(name: string, zone?: string, options: { cpu?: string; ready?: boolean; labels?: Record<string, string> } = {}): Node {
  return {
    metadata: { name, labels: { ...(zone ? { 'topology.kubernetes.io/zone': zone } : {}), ...(options.labels ?? {}) } },
    status: {
      allocatable: { cpu: options.cpu ?? '4' },
      conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }],
    },
  };
}

/** Applies write sets like the API server would and keeps the resulting slices, in creation order. */
export class FakeSliceStore {
  private readonly slices = new Map<string, EndpointSlice>();
  private counter = 0;
  readonly writes = { create: 0, update: 0, delete: 0 };

  constructor(initial: EndpointSlice[] = []) {
    for (const slice of initial) this.slices.set(slice.metadata?.name ?? '', slice);
  }

  apply(result: Pick<SliceWrites, 'toCreate' | 'toUpdate' | 'toDelete'>): { create: number; update: number; delete: number } {
    const counts = { create: result.toCreate.length, update: result.toUpdate.length, delete: result.toDelete.length };
    for (const slice of result.toCreate) {
      this.counter += 1;
      const name = `${slice.metadata?.generateName ?? ''}${this.counter.toString(36).padStart(5, 'x')}`;
      const stored = structuredClone(slice);
      stored.metadata = { ...stored.metadata, name, uid: `slice-uid-${this.counter}`, generation: 1, resourceVersion: String(this.counter) };
      delete stored.metadata.generateName;
      this.slices.set(name, stored);
    }
    for (const slice of result.toUpdate) {
      const name = slice.metadata?.name ?? '';
      const previous = this.slices.get(name);
      if (!previous) throw new Error(`update of missing slice ${name}`);
      const stored = structuredClone(slice);
      stored.metadata = { ...stored.metadata, uid: previous.metadata?.uid, generation: (previous.metadata?.generation ?? 0) + 1 };
      this.slices.set(name, stored);
    }
    for (const slice of result.toDelete) {
      if (!this.slices.delete(slice.metadata?.name ?? '')) throw new Error(`delete of missing slice ${slice.metadata?.name}`);
    }
    this.writes.create += counts.create;
    this.writes.update += counts.update;
    this.writes.delete += counts.delete;
    return counts;
  }

  list(): EndpointSlice[] {
    return [...this.slices.values()].map((slice) => structuredClone(slice));
  }
}

/** Sizes of the slices, largest first. */
export function sliceSizes(slices: readonly EndpointSlice[]): number[] {
  return slices.map((slice) => (slice.endpoints ?? []).length).sort((a, b) => b - a);
}

/** All endpoint addresses across slices, sorted. */
export function allAddresses(slices: readonly EndpointSlice[]): string[] {
  return slices.flatMap((slice) => (slice.endpoints ?? []).flatMap((endpoint) => endpoint.addresses)).sort();
}
