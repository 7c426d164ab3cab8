import { describe, expect, it } from '@jest/globals';
import type { EndpointSlice, Node, Pod, Service } from '../../api/wire.js';
import { FakeSliceStore, allAddresses, makeNode, makePod, makePods, makeService, sliceSizes } from '../../testing/endpoint-objects.js';
import { type EndpointSliceReconcileInput, type EndpointSliceReconcileResult, reconcileEndpointSlices } from './reconciler.js';

const nodes: Node[] = [makeNode('node-a', 'zone-a'), makeNode('node-b', 'zone-b')];

function reconcile(service: Service, pods: Pod[], existingSlices: EndpointSlice[] = [], extra: Partial<EndpointSliceReconcileInput> = {}) {
  return reconcileEndpointSlices({ service, pods, nodes, existingSlices, ...extra });
}

function counts(result: EndpointSliceReconcileResult) {
  return { create: result.toCreate.length, update: result.toUpdate.length, delete: result.toDelete.length };
}

/** Runs a sync and applies it to the store; returns the write counts of that sync. */
function sync(store: FakeSliceStore, service: Service, pods: Pod[], extra: Partial<EndpointSliceReconcileInput> = {}) {
  return store.apply(reconcile(service, pods, store.list(), extra));
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Slices holding the given pods (by index into `pods`), as if written earlier by this controller. */
function seedSlices(service: Service, pods: Pod[], groups: number[][]): EndpointSlice[] {
  const store = new FakeSliceStore();
  for (const group of groups) {
    const result = reconcile(service, group.map((i) => pods[i]));
    store.apply({ toCreate: result.toCreate, toUpdate: [], toDelete: [] });
  }
  return store.list();
}

describe('reconcileEndpointSlices: slice sizes', () => {
  const service = makeService();

  it.each([
    [100, 100, [100]],
    [101, 100, [100, 1]],
    [1000, 1000, [1000]],
    [1001, 1000, [1000, 1]],
    [250, 100, [100, 100, 50]],
  ])('%i pods with max %i give slices %j', (podCount, max, sizes) => {
    const result = reconcile(service, makePods(podCount), [], { options: { maxEndpointsPerSlice: max } });
    expect(counts(result)).toEqual({ create: sizes.length, update: 0, delete: 0 });
    expect(sliceSizes(result.toCreate)).toEqual(sizes);
    expect(allAddresses(result.toCreate)).toHaveLength(podCount);
  });

  it('defaults to 100 per slice and clamps the option to 1..1000', () => {
    expect(sliceSizes(reconcile(service, makePods(150)).toCreate)).toEqual([100, 50]);
    expect(sliceSizes(reconcile(service, makePods(1500), [], { options: { maxEndpointsPerSlice: 5000 } }).toCreate)).toEqual([1000, 500]);
    expect(sliceSizes(reconcile(service, makePods(3), [], { options: { maxEndpointsPerSlice: 0 } }).toCreate)).toEqual([1, 1, 1]);
  });
});

describe('reconcileEndpointSlices: packing (upstream worked examples, max 100)', () => {
  const service = makeService();

  it('250 pods with slices of 62 and 61: one new slice of 100 and the 62 filled to 89', () => {
    const pods = makePods(250);
    const existing = seedSlices(service, pods, [range(0, 62), range(62, 123)]);
    const result = reconcile(service, pods, existing);
    expect(counts(result)).toEqual({ create: 1, update: 1, delete: 0 });
    expect(sliceSizes(result.toCreate)).toEqual([100]);
    expect(sliceSizes(result.toUpdate)).toEqual([89]);
    expect(result.toUpdate[0].metadata?.name).toBe(existing[0].metadata?.name);
  });

  it('300 pods with slices of 74 and 74: two new slices of 100 and 52', () => {
    const pods = makePods(300);
    const existing = seedSlices(service, pods, [range(0, 74), range(74, 148)]);
    const result = reconcile(service, pods, existing);
    expect(counts(result)).toEqual({ create: 2, update: 0, delete: 0 });
    expect(sliceSizes(result.toCreate)).toEqual([100, 52]);
  });

  it('slices of 80 and 20 that both change, plus 15 new pods: the fuller one takes them (95 and 20)', () => {
    const pods = makePods(115);
    const existing = seedSlices(service, pods, [range(0, 80), range(80, 100)]);
    const changed = pods.map((pod, i) => (i === 3 || i === 85 ? makePod(pod.metadata!.name!, i, { ready: false }) : pod));
    const result = reconcile(service, changed, existing);
    expect(counts(result)).toEqual({ create: 0, update: 2, delete: 0 });
    expect(sliceSizes(result.toUpdate)).toEqual([95, 20]);
  });

  it('10 slices of 30, then the port changes: 3 updates and 7 deletes', () => {
    const pods = makePods(300);
    const existing = seedSlices(service, pods, Array.from({ length: 10 }, (_, i) => range(i * 30, i * 30 + 30)));
    const moved = makeService({ ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 9090 }] });
    const result = reconcile(moved, pods, existing);
    expect(counts(result)).toEqual({ create: 0, update: 3, delete: 7 });
    expect(sliceSizes(result.toUpdate)).toEqual([100, 100, 100]);
    expect(result.toUpdate.every((slice) => slice.ports?.[0]?.port === 9090)).toBe(true);
  });

  it('250 pods, then the Service labels change: updates only', () => {
    const store = new FakeSliceStore();
    const pods = makePods(250);
    sync(store, service, pods);
    const relabelled = makeService({ labels: { team: 'blue' } });
    expect(sync(store, relabelled, pods)).toEqual({ create: 0, update: 3, delete: 0 });
    expect(store.list().every((slice) => slice.metadata?.labels?.team === 'blue')).toBe(true);
  });

  it('uses the unchanged slice that ends nearest to full, which then takes in a slice that fits (Switchboard)', () => {
    const pods = makePods(130);
    const existing = seedSlices(service, pods, [range(0, 60), range(60, 90), range(90, 120)]);
    // 10 new pods: 30+10 and 60+10 fit; the one ending nearest to full (60+10 = 70) is chosen (upstream), and then
    // one slice of 30 fits in its room (Switchboard's packing; had 30+10 been chosen, it would end at 70).
    const result = reconcile(service, pods, existing);
    expect(counts(result)).toEqual({ create: 0, update: 1, delete: 1 });
    expect(sliceSizes(result.toUpdate)).toEqual([100]);
    expect(allAddresses(result.toUpdate)).toHaveLength(100);
  });
});

describe('reconcileEndpointSlices: churn over sequences of changes', () => {
  const service = makeService();

  it('does nothing when nothing changed, and writes one slice per single-pod change', () => {
    const store = new FakeSliceStore();
    let pods = makePods(250);
    expect(sync(store, service, pods)).toEqual({ create: 3, update: 0, delete: 0 });
    expect(sync(store, service, pods)).toEqual({ create: 0, update: 0, delete: 0 });

    pods = pods.filter((_, i) => i !== 7); // a pod goes away
    expect(sync(store, service, pods)).toEqual({ create: 0, update: 1, delete: 0 });

    pods = [...pods, makePod('pod-new', 400)]; // a pod comes: it fills the slice with room
    expect(sync(store, service, pods)).toEqual({ create: 0, update: 1, delete: 0 });
    expect(sliceSizes(store.list())).toEqual([100, 100, 50]);

    pods = pods.map((pod, i) => (i === 20 ? makePod(pod.metadata!.name!, 20, { ready: false }) : pod)); // readiness flips
    expect(sync(store, service, pods)).toEqual({ create: 0, update: 1, delete: 0 });
    expect(sync(store, service, pods)).toEqual({ create: 0, update: 0, delete: 0 });
    expect(allAddresses(store.list())).toHaveLength(250);
  });

  it('a rolling replacement keeps the endpoint set exact and writes nothing once settled', () => {
    const store = new FakeSliceStore();
    let pods = makePods(120);
    sync(store, service, pods);
    for (let i = 0; i < 120; i += 10) {
      // Ten old pods go, ten new ones (new IPs) come.
      const batch = makePods(10, {}, `v2-${i}`).map((pod, j) => makePod(pod.metadata!.name!, 1000 + i + j));
      pods = [...pods.filter((pod) => !pod.metadata!.name!.startsWith('pod-') || Number(pod.metadata!.name!.slice(4)) >= i + 10), ...batch];
      sync(store, service, pods);
      expect(allAddresses(store.list())).toEqual(allAddresses(reconcile(service, pods).toCreate));
      expect(Math.max(...sliceSizes(store.list()))).toBeLessThanOrEqual(100);
    }
    const before = store.list();
    expect(sync(store, service, pods)).toEqual({ create: 0, update: 0, delete: 0 });
    expect(store.list()).toEqual(before);
  });

  it('leaves fragmented slices fragmented', () => {
    const pods = makePods(30);
    const existing = seedSlices(service, pods, [[...Array(10).keys()], [...Array(10).keys()].map((i) => i + 10), [...Array(10).keys()].map((i) => i + 20)]);
    expect(counts(reconcile(service, pods, existing))).toEqual({ create: 0, update: 0, delete: 0 });
  });

  it('a slice written anyway takes in a slice that fits, then deletes it (Switchboard): no endpoint is ever missing', () => {
    const pods = makePods(90);
    const existing = seedSlices(service, pods, [range(0, 60), range(60, 90)]);
    const before = JSON.parse(JSON.stringify(existing)) as EndpointSlice[];
    // Ten pods leave each slice: both are written anyway, and 20 fit in the other's room.
    const remaining = pods.filter((_, i) => !(i < 10 || (i >= 60 && i < 70)));
    const result = reconcile(service, remaining, existing);
    expect(counts(result)).toEqual({ create: 0, update: 1, delete: 1 });
    expect(sliceSizes(result.toUpdate)).toEqual([70]);
    expect(allAddresses(result.toUpdate)).toEqual(allAddresses(reconcile(service, remaining).toCreate));
    expect(existing).toEqual(before);

    // An unchanged slice taken in is the cache's object: its endpoints are copied, not shared.
    const grown = [...pods, makePod('pod-new', 500)];
    const absorbing = reconcile(service, grown, existing);
    expect(counts(absorbing)).toEqual({ create: 0, update: 1, delete: 1 });
    const inputEndpoints = new Set(existing.flatMap((slice) => slice.endpoints ?? []));
    expect(absorbing.toUpdate[0].endpoints!.some((endpoint) => inputEndpoints.has(endpoint))).toBe(false);
    expect(existing).toEqual(before);
  });

  it('a rolling update synced in coarse batches ends in one slice per 100 pods, so a flap writes one slice (Switchboard)', () => {
    // The 10,000-pod benchmark's pattern: a Service is synced rarely while a wave runs, so a wave's first new pods
    // start a slice of their own and later ones go where old pods left room. Without packing, the first wave's
    // pods end up split over two slices and a flap of them writes both.
    const store = new FakeSliceStore();
    let pods = makePods(100);
    sync(store, service, pods);
    const isOld = (pod: Pod) => pod.metadata!.name!.startsWith('pod-');
    for (let wave = 0; wave < 4; wave += 1) {
      const fresh = makePods(25, {}, `v2-${wave}`).map((pod, j) => makePod(pod.metadata!.name!, 1000 + wave * 25 + j));
      const dropOld = (count: number) => {
        const old = pods.filter(isOld).slice(0, count);
        pods = pods.filter((pod) => !old.includes(pod));
      };
      pods = [...pods, ...fresh.slice(0, 2)];
      sync(store, service, pods);
      pods = [...pods, ...fresh.slice(2)];
      dropOld(16);
      sync(store, service, pods);
      dropOld(9);
      sync(store, service, pods);
      expect(allAddresses(store.list())).toEqual(allAddresses(reconcile(service, pods).toCreate));
    }
    expect(sliceSizes(store.list())).toEqual([100]);
    const flapped = (ready: boolean) =>
      pods.map((pod) => (pod.metadata!.name!.startsWith('v2-0-') && Number(pod.metadata!.name!.slice(5)) < 10 ? makePod(pod.metadata!.name!, 1000 + Number(pod.metadata!.name!.slice(5)), { ready }) : pod));
    expect(sync(store, service, flapped(false))).toEqual({ create: 0, update: 1, delete: 0 });
    expect(sync(store, service, flapped(true))).toEqual({ create: 0, update: 1, delete: 0 });
  });

  it('deletes a slice whose endpoints all went away and keeps the others', () => {
    const store = new FakeSliceStore();
    const pods = makePods(150);
    sync(store, service, pods);
    const remaining = pods.slice(100); // the 100 pods of the first slice go
    const writes = sync(store, service, remaining);
    expect(writes).toEqual({ create: 0, update: 0, delete: 1 });
    expect(sliceSizes(store.list())).toEqual([50]);
  });
});

describe('reconcileEndpointSlices: placeholder slice', () => {
  it('creates an empty placeholder for a Service without pods, and keeps it without writes', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    const first = reconcile(service, []);
    expect(counts(first)).toEqual({ create: 1, update: 0, delete: 0 });
    expect(first.toCreate[0]).toMatchObject({ addressType: 'IPv4', endpoints: [], ports: [] });
    store.apply(first);
    expect(sync(store, service, [])).toEqual({ create: 0, update: 0, delete: 0 });
  });

  it('turns the placeholder into the first real slice, and back, by updates only', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, []);
    const placeholderName = store.list()[0].metadata?.name;
    expect(sync(store, service, makePods(3))).toEqual({ create: 0, update: 1, delete: 0 });
    expect(store.list()[0].metadata?.name).toBe(placeholderName);
    expect(store.list()[0].ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(sync(store, service, [])).toEqual({ create: 0, update: 1, delete: 0 });
    expect(store.list()).toHaveLength(1);
    expect(store.list()[0]).toMatchObject({ endpoints: [], ports: [] });
  });

  it('creates one placeholder per family for a dual-stack Service', () => {
    const result = reconcile(makeService({ ipFamilies: ['IPv4', 'IPv6'] }), []);
    expect(result.toCreate.map((slice) => slice.addressType).sort()).toEqual(['IPv4', 'IPv6']);
  });

  it('treats endpoints: null like an empty list when comparing the placeholder', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, []);
    const stored = store.list().map((slice) => ({ ...slice, endpoints: null as unknown as EndpointSlice['endpoints'] }));
    expect(counts(reconcile(service, [], stored))).toEqual({ create: 0, update: 0, delete: 0 });
  });
});

describe('reconcileEndpointSlices: address families', () => {
  it('reconciles each family into its own slices with canonical addresses', () => {
    const service = makeService({ ipFamilies: ['IPv4', 'IPv6'] });
    const pods = [
      makePod('a', 0, { ips: ['10.0.0.1', 'fd00::0001'] }),
      makePod('b', 1, { ips: ['10.0.0.2', 'FD00:0:0:0::2'] }),
      makePod('c', 2, { ips: ['10.0.0.3'] }),
    ];
    const result = reconcile(service, pods);
    const byType = Object.fromEntries(result.toCreate.map((slice) => [slice.addressType, allAddresses([slice])]));
    expect(byType).toEqual({ IPv4: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], IPv6: ['fd00::1', 'fd00::2'] });
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'c', code: 'PodNoIPOfFamily' }));
  });

  it('deletes slices of a family the Service no longer has, and of the legacy IP type', () => {
    const dual = makeService({ ipFamilies: ['IPv4', 'IPv6'] });
    const pods = [makePod('a', 0, { ips: ['10.0.0.1', 'fd00::1'] })];
    const store = new FakeSliceStore();
    sync(store, dual, pods);
    const legacy = { ...store.list()[0], metadata: { ...store.list()[0].metadata, name: 'legacy' }, addressType: 'IP' };
    const single = makeService({ ipFamilies: ['IPv4'] });
    const result = reconcile(single, pods, [...store.list(), legacy]);
    expect(counts(result)).toEqual({ create: 0, update: 0, delete: 2 });
    expect(result.toDelete.map((slice) => slice.addressType).sort()).toEqual(['IP', 'IPv6']);
  });

  it('without ipFamilies uses the ClusterIP family, or both families when headless', () => {
    const pods = [makePod('a', 0, { ips: ['10.0.0.1', 'fd00::1'] })];
    const headful = reconcile(makeService({ ipFamilies: [], clusterIP: 'fd00:10::1' }), pods);
    expect(headful.toCreate.map((slice) => slice.addressType)).toEqual(['IPv6']);
    const headless = reconcile(makeService({ ipFamilies: [], clusterIP: 'None' }), pods);
    expect(headless.toCreate.map((slice) => slice.addressType).sort()).toEqual(['IPv4', 'IPv6']);
  });
});

describe('reconcileEndpointSlices: ports', () => {
  const named = makeService({ ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' }] });
  const podWithPort = (name: string, i: number, port?: number, protocol = 'TCP') =>
    makePod(name, i, { containerPorts: port ? [{ name: 'web', containerPort: port, protocol }] : [] });

  it('groups pods by their resolved named port; a pod without it lands in a port-less group', () => {
    const pods = [podWithPort('a', 0, 8080), podWithPort('b', 1, 8080), podWithPort('c', 2, 9090), podWithPort('d', 3)];
    const result = reconcile(named, pods);
    const groups = result.toCreate.map((slice) => [slice.ports?.map((p) => p.port) ?? [], allAddresses([slice]).length]);
    expect(groups).toEqual(expect.arrayContaining([[[8080], 2], [[9090], 1], [[], 1]]));
    expect(groups).toHaveLength(3);
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'd', code: 'PodPortNotFound' }));
  });

  it('needs the same protocol, and also looks at sidecar init containers', () => {
    const udpOnly = podWithPort('udp', 0, 8080, 'UDP');
    const sidecar = makePod('side', 1, { containerPorts: [], sidecarPorts: [{ name: 'web', containerPort: 7070 }] });
    const result = reconcile(named, [udpOnly, sidecar]);
    const ports = result.toCreate.map((slice) => slice.ports?.map((p) => p.port) ?? []);
    expect(ports).toEqual(expect.arrayContaining([[], [7070]]));
  });

  it('300 pods with 5 port variants give 5 slices of 60', () => {
    const pods = Array.from({ length: 300 }, (_, i) => podWithPort(`p${i}`, i, 8000 + (i % 5)));
    const result = reconcile(named, pods);
    expect(sliceSizes(result.toCreate)).toEqual([60, 60, 60, 60, 60]);
  });

  it('carries name, protocol and appProtocol; a headless Service without ports gets ports []', () => {
    const service = makeService({ ports: [{ name: 'grpc', port: 90, protocol: 'TCP', targetPort: 9000, appProtocol: 'kubernetes.io/h2c' }] });
    expect(reconcile(service, makePods(1)).toCreate[0].ports).toEqual([{ name: 'grpc', port: 9000, protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' }]);
    const headless = makeService({ clusterIP: 'None', ports: [] });
    expect(reconcile(headless, makePods(2)).toCreate[0]).toMatchObject({ ports: [], endpoints: [{}, {}] });
  });

  it('does not rewrite a slice whose ports are listed in another order', () => {
    const service = makeService({
      ports: [
        { name: 'a', port: 1, protocol: 'TCP', targetPort: 1001 },
        { name: 'b', port: 2, protocol: 'UDP', targetPort: 1002 },
      ],
    });
    const pods = makePods(3);
    const existing = seedSlices(service, pods, [[0, 1, 2]]).map((slice) => ({ ...slice, ports: [...(slice.ports ?? [])].reverse() }));
    expect(counts(reconcile(service, pods, existing))).toEqual({ create: 0, update: 0, delete: 0 });
  });
});

describe('reconcileEndpointSlices: endpoints', () => {
  const endpointOf = (result: EndpointSliceReconcileResult, podName: string) =>
    result.toCreate.flatMap((slice) => slice.endpoints).find((endpoint) => endpoint.targetRef?.name === podName);

  it('sets conditions for ready, not-ready and terminating pods', () => {
    const pods = [makePod('ready', 0), makePod('unready', 1, { ready: false }), makePod('leaving', 2, { terminating: true }), makePod('leaving-unready', 3, { terminating: true, ready: false })];
    const result = reconcile(makeService(), pods);
    expect(endpointOf(result, 'ready')?.conditions).toEqual({ ready: true, serving: true, terminating: false });
    expect(endpointOf(result, 'unready')?.conditions).toEqual({ ready: false, serving: false, terminating: false });
    expect(endpointOf(result, 'leaving')?.conditions).toEqual({ ready: false, serving: true, terminating: true });
    expect(endpointOf(result, 'leaving-unready')?.conditions).toEqual({ ready: false, serving: false, terminating: true });
  });

  it('with publishNotReadyAddresses every endpoint is ready, even terminating ones', () => {
    const pods = [makePod('unready', 1, { ready: false }), makePod('leaving', 2, { terminating: true, ready: false })];
    const result = reconcile(makeService({ publishNotReadyAddresses: true }), pods);
    expect(endpointOf(result, 'unready')?.conditions).toEqual({ ready: true, serving: false, terminating: false });
    expect(endpointOf(result, 'leaving')?.conditions).toEqual({ ready: true, serving: false, terminating: true });
  });

  it('leaves out Succeeded and Failed pods, even Ready ones', () => {
    const pods = [makePod('done', 0, { phase: 'Succeeded' }), makePod('failed', 1, { phase: 'Failed' }), makePod('up', 2)];
    expect(allAddresses(reconcile(makeService(), pods).toCreate)).toEqual(['10.0.0.3']);
  });

  it('removes the endpoint of a pod whose phase turned terminal without a readiness change', () => {
    const store = new FakeSliceStore();
    const service = makeService();
    sync(store, service, [makePod('job', 0, { ready: false }), makePod('web', 1)]);
    expect(sync(store, service, [makePod('job', 0, { ready: false, phase: 'Failed' }), makePod('web', 1)])).toEqual({ create: 0, update: 1, delete: 0 });
    expect(allAddresses(store.list())).toEqual(['10.0.0.2']);
  });

  it('fills targetRef, nodeName and zone, and the hostname only when the subdomain is the Service name', () => {
    const pods = [makePod('db-0', 0, { hostname: 'db-0', subdomain: 'web', node: 'node-b' }), makePod('db-1', 1, { hostname: 'db-1', subdomain: 'other' })];
    const result = reconcile(makeService(), pods);
    expect(endpointOf(result, 'db-0')).toEqual({
      addresses: ['10.0.0.1'],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: 'Pod', namespace: 'default', name: 'db-0', uid: 'uid-db-0' },
      nodeName: 'node-b',
      zone: 'zone-b',
      hostname: 'db-0',
    });
    expect(endpointOf(result, 'db-1')?.hostname).toBeUndefined();
  });

  it('updates an endpoint in place when the pod is recreated with the same name and IP', () => {
    const store = new FakeSliceStore();
    const service = makeService();
    sync(store, service, [makePod('sts-0', 0)]);
    expect(sync(store, service, [makePod('sts-0', 0, { uid: 'new-uid' })])).toEqual({ create: 0, update: 1, delete: 0 });
    expect(store.list()[0].endpoints[0].targetRef?.uid).toBe('new-uid');
  });

  it('ignores pods the selector does not match', () => {
    const pods = [makePod('a', 0), makePod('b', 1, { labels: { app: 'db' } })];
    expect(allAddresses(reconcile(makeService(), pods).toCreate)).toEqual(['10.0.0.1']);
  });
});

describe('reconcileEndpointSlices: slice metadata', () => {
  it('labels, owner reference and name prefix', () => {
    const service = makeService({ labels: { team: 'blue', 'kubernetes.io/service-name': 'spoof' } });
    const result = reconcile(service, makePods(1));
    expect(result.toCreate[0].metadata).toEqual({
      generateName: 'web-',
      namespace: 'default',
      labels: { team: 'blue', 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'svc-uid-1', controller: true, blockOwnerDeletion: true }],
      annotations: {},
    });
    expect(result.skipped).toContainEqual(expect.objectContaining({ code: 'SliceLabelReserved', name: 'kubernetes.io/service-name' }));
  });

  it('adds the headless label for a headless Service and uses the managed-by parameter', () => {
    const result = reconcile(makeService({ clusterIP: 'None' }), makePods(1), [], { options: { managedBy: 'switchboard.example' } });
    expect(result.toCreate[0].metadata?.labels).toMatchObject({ 'service.kubernetes.io/headless': '', 'endpointslice.kubernetes.io/managed-by': 'switchboard.example' });
  });

  it('restores labels that were edited on a slice', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, makePods(2));
    const edited = store.list().map((slice) => ({ ...slice, metadata: { ...slice.metadata, labels: { ...slice.metadata?.labels, extra: 'x' } } }));
    const result = reconcile(service, makePods(2), edited);
    expect(counts(result)).toEqual({ create: 0, update: 1, delete: 0 });
    expect(result.toUpdate[0].metadata?.labels?.extra).toBeUndefined();
  });

  it('writes the trigger time on written slices and removes it when there is none', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, makePods(2), { triggerTime: '2026-03-04T05:06:07.250Z' });
    expect(store.list()[0].metadata?.annotations).toEqual({ 'endpoints.kubernetes.io/last-change-trigger-time': '2026-03-04T05:06:07.25Z' });
    const withOther = store.list().map((slice) => ({ ...slice, metadata: { ...slice.metadata, annotations: { ...slice.metadata?.annotations, keep: 'me' } } }));
    const result = reconcile(service, makePods(1), withOther);
    expect(result.toUpdate[0].metadata?.annotations).toEqual({ keep: 'me' });
  });

  it('deletes slices owned by an older Service of the same name; they are not recycled', () => {
    const old = makeService({ uid: 'old-uid' });
    const store = new FakeSliceStore();
    sync(store, old, makePods(2));
    const result = reconcile(makeService({ uid: 'new-uid' }), makePods(2), store.list());
    expect(counts(result)).toEqual({ create: 1, update: 0, delete: 1 });
    expect(result.toCreate[0].metadata?.ownerReferences?.[0].uid).toBe('new-uid');
  });

  it('creates nothing for a Service being deleted but still updates and deletes', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, makePods(150));
    const dying = makeService({ deletionTimestamp: '2026-01-03T00:00:00Z' });
    // Pod 0 leaves and 150 come: one slice is topped up, one new slice of 100 would be created, the rest of the
    // newcomers fill the slice of 50.
    const result = reconcile(dying, makePods(300).slice(1), store.list());
    expect(result.toCreate).toEqual([]);
    expect(sliceSizes(result.toUpdate)).toEqual([100, 99]);
  });
});

describe('reconcileEndpointSlices: Services without endpoints of their own', () => {
  it('ExternalName Services get nothing', () => {
    const result = reconcile(makeService({ type: 'ExternalName' }), makePods(3));
    expect(result.outcome).toBe('external-name');
    expect(counts(result)).toEqual({ create: 0, update: 0, delete: 0 });
  });

  it('removing the selector deletes the slices this controller made (Switchboard, unlike upstream #118376)', () => {
    const service = makeService({ ipFamilies: ['IPv4', 'IPv6'] });
    const store = new FakeSliceStore();
    sync(store, service, makePods(150, { ips: undefined }));
    expect(store.list().length).toBeGreaterThan(1);
    const result = reconcile(makeService({ ipFamilies: ['IPv4', 'IPv6'], selector: null }), makePods(150), store.list());
    expect(result.outcome).toBe('selector-removed');
    expect(counts(result)).toEqual({ create: 0, update: 0, delete: store.list().length });
    store.apply(result);
    expect(store.list()).toEqual([]);
  });
});

describe('reconcileEndpointSlices: bad input never throws', () => {
  it('reports unusable and colliding Service ports and publishes the rest', () => {
    const service = makeService({
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
        { name: 'http', port: 81, protocol: 'TCP', targetPort: 8081 },
        { name: 'zero', port: 0, protocol: 'TCP' },
        { name: 'weird', port: 82, protocol: 'HTTP' },
        { name: 'Bad_Name', port: 83, protocol: 'TCP' },
        { name: 'far', port: 84, protocol: 'TCP', targetPort: 70000 },
      ],
    });
    const result = reconcile(service, makePods(2));
    expect(result.toCreate[0].ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(result.skipped.filter((s) => s.kind === 'ServicePort').map((s) => s.code)).toEqual([
      'ServicePortCollision',
      'ServicePortInvalid',
      'ServicePortInvalid',
      'ServicePortInvalid',
      'ServicePortInvalid',
    ]);
  });

  it('reports pods without IPs or with garbage IPs', () => {
    const noIP = makePod('pending', 0);
    noIP.status = { phase: 'Pending' };
    const garbage = makePod('garbage', 1, { ips: ['not-an-ip'] });
    const result = reconcile(makeService(), [noIP, garbage, makePod('ok', 2)]);
    expect(allAddresses(result.toCreate)).toEqual(['10.0.0.3']);
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'pending', code: 'PodNoIP' }));
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'garbage', code: 'PodInvalidIP' }));
  });

  it('leaves out pods on unknown nodes and asks for a retry, unless not-ready addresses are published', () => {
    const pods = [makePod('lost', 0, { node: 'gone' }), makePod('ok', 1)];
    const result = reconcile(makeService(), pods);
    expect(allAddresses(result.toCreate)).toEqual(['10.0.0.2']);
    expect(result.retry).toBe(true);
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'lost', code: 'PodNodeNotFound' }));

    const published = reconcile(makeService({ publishNotReadyAddresses: true }), pods);
    expect(allAddresses(published.toCreate)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(published.retry).toBe(false);
    const lost = published.toCreate[0].endpoints.find((e) => e.targetRef?.name === 'lost');
    expect(lost?.zone).toBeUndefined();
    expect(lost?.nodeName).toBe('gone');
  });

  it('repairs hand-edited slices carrying our managed-by label', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, makePods(4));
    const [slice] = store.list();
    const bogus = { addresses: ['192.0.2.99'], conditions: { ready: true } };
    const duplicate = { ...slice, metadata: { ...slice.metadata, name: 'hand-made', uid: 'hand-uid' }, endpoints: [slice.endpoints[0], bogus] };
    const edited = { ...slice, endpoints: [...slice.endpoints, bogus, slice.endpoints[1]] };
    const result = reconcile(service, makePods(4), [edited, duplicate]);
    // The edited slice loses the bogus and the repeated endpoint; the copy loses everything and is deleted.
    expect(counts(result)).toEqual({ create: 0, update: 1, delete: 1 });
    expect(allAddresses(result.toUpdate)).toEqual(allAddresses([slice]));
    expect(result.toDelete[0].metadata?.name).toBe('hand-made');
  });

  it('deletes a hand-made slice with our labels but no owner reference', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, makePods(2));
    const orphan = { ...store.list()[0], metadata: { ...store.list()[0].metadata, name: 'orphan', ownerReferences: [] } };
    const result = reconcile(service, makePods(2), [...store.list(), orphan]);
    expect(result.toDelete.map((s) => s.metadata?.name)).toEqual(['orphan']);
  });

  it('leaves alone slices that are not ours, unnamed, or already being deleted', () => {
    const service = makeService();
    const store = new FakeSliceStore();
    sync(store, service, makePods(2));
    const [ours] = store.list();
    const foreign = { ...ours, metadata: { ...ours.metadata, name: 'foreign', labels: { 'kubernetes.io/service-name': 'other' } } };
    const unnamed = { ...ours, metadata: { ...ours.metadata, name: undefined } };
    const dying = { ...ours, metadata: { ...ours.metadata, name: 'dying', deletionTimestamp: '2026-01-01T00:00:00Z' } };
    const result = reconcile(service, makePods(2), [ours, foreign, unnamed, dying]);
    expect(counts(result)).toEqual({ create: 0, update: 0, delete: 0 });
    expect(result.skipped.map((s) => s.code)).toEqual(expect.arrayContaining(['SliceNotOurs', 'SliceUnnamed']));
  });

  it('survives objects with missing parts', () => {
    const empty = {} as Pod;
    const bare = { metadata: { name: 'bare', namespace: 'default', labels: { app: 'web' } } } as Pod;
    const weirdSlice = { metadata: { name: 'w', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } } } as unknown as EndpointSlice;
    expect(() => reconcile(makeService(), [empty, bare], [weirdSlice])).not.toThrow();
    expect(() => reconcileEndpointSlices({ service: {} as Service, pods: [empty], nodes: [{} as Node], existingSlices: [{} as EndpointSlice] })).not.toThrow();
  });
});

describe('reconcileEndpointSlices: hints', () => {
  const zonalNodes = [makeNode('node-a', 'zone-a'), makeNode('node-b', 'zone-b')];
  const zonalPods = (count: number) => makePods(count).map((pod, i) => makePod(pod.metadata!.name!, i, { node: i % 2 === 0 ? 'node-a' : 'node-b' }));
  const hintsOf = (slices: EndpointSlice[]) => slices.flatMap((slice) => slice.endpoints.map((e) => e.hints));

  it('PreferClose hints every ready endpoint to its zone; not-ready ones get none', () => {
    const pods = [...zonalPods(2), makePod('unready', 9, { ready: false })];
    const result = reconcile(makeService({ trafficDistribution: 'PreferClose' }), pods, [], { nodes: zonalNodes });
    const byPod = Object.fromEntries(result.toCreate[0].endpoints.map((e) => [e.targetRef?.name, e.hints]));
    expect(byPod).toEqual({ 'pod-0': { forZones: [{ name: 'zone-a' }] }, 'pod-1': { forZones: [{ name: 'zone-b' }] }, unready: undefined });
  });

  it('PreferSameNode also hints the node', () => {
    const result = reconcile(makeService({ trafficDistribution: 'PreferSameNode' }), zonalPods(1), [], { nodes: zonalNodes });
    expect(result.toCreate[0].endpoints[0].hints).toEqual({ forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-a' }] });
  });

  it('rewrites unchanged slices to add or strip hints when trafficDistribution changes', () => {
    const store = new FakeSliceStore();
    sync(store, makeService(), zonalPods(4), { nodes: zonalNodes });
    expect(sync(store, makeService({ trafficDistribution: 'PreferClose' }), zonalPods(4), { nodes: zonalNodes })).toEqual({ create: 0, update: 1, delete: 0 });
    expect(hintsOf(store.list()).every((h) => h?.forZones?.length === 1)).toBe(true);
    expect(sync(store, makeService({ trafficDistribution: 'PreferClose' }), zonalPods(4), { nodes: zonalNodes })).toEqual({ create: 0, update: 0, delete: 0 });
    expect(sync(store, makeService(), zonalPods(4), { nodes: zonalNodes })).toEqual({ create: 0, update: 1, delete: 0 });
    expect(hintsOf(store.list()).every((h) => h === undefined)).toBe(true);
  });

  it('topology mode Auto shares endpoints out by zone CPU and reports enabling once', () => {
    const service = makeService({ annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } });
    const result = reconcile(service, zonalPods(6), [], { nodes: zonalNodes });
    expect(result.events).toEqual([{ type: 'Normal', reason: 'TopologyAwareHintsEnabled', message: 'Topology Aware Hints has been enabled, addressType: IPv4' }]);
    expect(result.topologyHintsPopulated).toBe(true);
    expect(result.zoneEndpointCounts.IPv4).toEqual({ 'zone-a': 3, 'zone-b': 3 });
    for (const endpoint of result.toCreate[0].endpoints) expect(endpoint.hints).toEqual({ forZones: [{ name: endpoint.zone }] });
    const again = reconcile(service, zonalPods(6), [], { nodes: zonalNodes, topologyHintsPopulated: true });
    expect(again.events).toEqual([]);
  });

  it('topology mode Auto moves hints from an over-supplied zone to an under-supplied one', () => {
    const service = makeService({ annotations: { 'service.kubernetes.io/topology-mode': 'auto' } });
    // Equal CPU, but 8 endpoints in zone-a and 2 in zone-b: zone-b needs 5 ± threshold.
    const pods = makePods(10).map((pod, i) => makePod(pod.metadata!.name!, i, { node: i < 8 ? 'node-a' : 'node-b' }));
    const result = reconcile(service, pods, [], { nodes: zonalNodes });
    expect(result.zoneEndpointCounts.IPv4).toEqual({ 'zone-a': 5, 'zone-b': 5 });
    const hinted = result.toCreate[0].endpoints.map((e) => e.hints?.forZones?.[0].name);
    expect(hinted.filter((z) => z === 'zone-b')).toHaveLength(5);
  });

  it('topology mode Auto without usable Node information removes hints with a Warning', () => {
    const service = makeService({ annotations: { 'service.kubernetes.io/topology-aware-hints': 'Auto' } });
    const result = reconcile(service, zonalPods(4), [], { nodes: [makeNode('node-a', 'zone-a'), makeNode('node-b')], topologyHintsPopulated: true });
    expect(result.events).toEqual([
      {
        type: 'Warning',
        reason: 'TopologyAwareHintsDisabled',
        message: 'Insufficient Node information: allocatable CPU or zone not specified on one or more nodes, addressType: IPv4',
      },
    ]);
    expect(result.topologyHintsPopulated).toBe(false);
    expect(hintsOf(result.toCreate).every((h) => h === undefined)).toBe(true);
  });

  it('dropping the annotation from a Service with hints records TopologyAwareHintsDisabled', () => {
    const result = reconcile(makeService(), zonalPods(2), [], { nodes: zonalNodes, topologyHintsPopulated: true });
    expect(result.events).toEqual([{ type: 'Warning', reason: 'TopologyAwareHintsDisabled', message: 'Topology Aware Hints has been disabled, addressType: IPv4' }]);
    expect(result.topologyHintsPopulated).toBe(false);
  });
});

describe('reconcileEndpointSlices: its input is the informer cache', () => {
  /** Frozen all the way down: in a module (strict mode) any write to it throws. */
  function deepFreeze<T>(value: T): T {
    if (value !== null && typeof value === 'object') {
      for (const field of Object.values(value)) deepFreeze(field);
      Object.freeze(value);
    }
    return value;
  }

  it('never writes to the cached slices, pods or Service: updates, fills, new slices and topology hints all copy', () => {
    const service = makeService({ annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } });
    const zonedNodes = [makeNode('node-a', 'zone-a', { cpu: '4' }), makeNode('node-b', 'zone-b', { cpu: '4' })];
    const pods = makePods(260).map((pod, i) => makePod(pod.metadata!.name!, i, { node: i % 2 ? 'node-b' : 'node-a' }));
    const store = new FakeSliceStore();
    store.apply(reconcileEndpointSlices({ service, pods: pods.slice(0, 150), nodes: zonedNodes, existingSlices: [] }));
    // A pod turns not ready (an update), 110 more arrive (a fill and a new slice), and hints are computed for all.
    const changed = [makePod(pods[3].metadata!.name!, 3, { node: 'node-b', ready: false }), ...pods.slice(4)];
    const input = deepFreeze({ service, pods: changed, nodes: zonedNodes, existingSlices: store.list() });
    const result = reconcileEndpointSlices(input);
    expect(result.toUpdate.length + result.toCreate.length).toBeGreaterThan(1);
    expect([...result.toUpdate, ...result.toCreate].some((slice) => slice.endpoints.some((endpoint) => endpoint.hints))).toBe(true);
  });
});

