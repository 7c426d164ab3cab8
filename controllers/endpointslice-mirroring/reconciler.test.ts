import { describe, expect, it } from '@jest/globals';
import type { EndpointSlice, Endpoints, Service } from '../../api/wire.js';
import { FakeSliceStore, allAddresses, makeService, sliceSizes } from '../../testing/endpoint-objects.js';
import type { EndpointSubset, SubsetAddress } from '../endpointutil/types.js';
import { type MirroringReconcileInput, type MirroringReconcileResult, reconcileMirroredSlices, shouldMirror } from './reconciler.js';

const selectorless = makeService({ selector: null });

function makeEndpoints(subsets: EndpointSubset[], meta: Partial<NonNullable<Endpoints['metadata']>> = {}): Endpoints {
  return { metadata: { name: 'web', namespace: 'default', uid: 'ep-uid', ...meta }, subsets };
}

function addresses(count: number, offset = 0): SubsetAddress[] {
  return Array.from({ length: count }, (_, i) => ({ ip: `10.3.${Math.floor((i + offset) / 250)}.${((i + offset) % 250) + 1}` }));
}

const http = { name: 'http', port: 80, protocol: 'TCP' };

function reconcile(endpoints: Endpoints | undefined, existingSlices: EndpointSlice[] = [], extra: Partial<MirroringReconcileInput> = {}) {
  return reconcileMirroredSlices({ endpoints, service: selectorless, existingSlices, ...extra });
}

function counts(result: MirroringReconcileResult) {
  return { create: result.toCreate.length, update: result.toUpdate.length, delete: result.toDelete.length };
}

function sync(store: FakeSliceStore, endpoints: Endpoints | undefined, extra: Partial<MirroringReconcileInput> = {}) {
  return store.apply(reconcile(endpoints, store.list(), extra));
}

describe('reconcileMirroredSlices: content', () => {
  it('mirrors addresses with only the ready condition, canonical IPs and copied references', () => {
    const endpoints = makeEndpoints([
      {
        addresses: [{ ip: '10.0.0.1', hostname: 'h1', nodeName: 'node-a', targetRef: { kind: 'Pod', name: 'a', namespace: 'default', uid: 'u1' } }],
        notReadyAddresses: [{ ip: '010.000.000.002' }],
        ports: [{ ...http, appProtocol: 'http' }],
      },
    ]);
    const result = reconcile(endpoints);
    expect(counts(result)).toEqual({ create: 1, update: 0, delete: 0 });
    const [slice] = result.toCreate;
    expect(slice.addressType).toBe('IPv4');
    expect(slice.ports).toEqual([{ name: 'http', port: 80, protocol: 'TCP', appProtocol: 'http' }]);
    expect(slice.endpoints).toEqual([
      { addresses: ['10.0.0.1'], conditions: { ready: true }, hostname: 'h1', nodeName: 'node-a', targetRef: { kind: 'Pod', name: 'a', namespace: 'default', uid: 'u1' } },
      { addresses: ['10.0.0.2'], conditions: { ready: false } },
    ]);
  });

  it('copies labels and annotations except the excluded ones, and is owned by the Endpoints', () => {
    const endpoints = makeEndpoints([{ addresses: addresses(1), ports: [http] }], {
      labels: { team: 'blue', 'kubernetes.io/service-name': 'spoof', 'endpointslice.kubernetes.io/managed-by': 'me' },
      annotations: {
        note: 'kept',
        'endpoints.kubernetes.io/last-change-trigger-time': '2026-01-01T00:00:00Z',
        'kubectl.kubernetes.io/last-applied-configuration': '{}',
      },
    });
    const [slice] = reconcile(endpoints, [], { options: { managedBy: 'mirror.example' } }).toCreate;
    expect(slice.metadata).toEqual({
      generateName: 'web-',
      namespace: 'default',
      labels: { team: 'blue', 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'mirror.example' },
      annotations: { note: 'kept' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Endpoints', name: 'web', uid: 'ep-uid', controller: true, blockOwnerDeletion: true }],
    });
    expect(reconcile(endpoints).toCreate[0].metadata?.labels?.['endpointslice.kubernetes.io/managed-by']).toBe('endpointslicemirroring-controller.k8s.io');
  });

  it('splits a subset with both families into an IPv4 and an IPv6 slice', () => {
    const result = reconcile(makeEndpoints([{ addresses: [{ ip: '10.0.0.1' }, { ip: 'fd00::0a' }], ports: [http] }]));
    expect(result.toCreate.map((s) => [s.addressType, allAddresses([s])])).toEqual([
      ['IPv4', ['10.0.0.1']],
      ['IPv6', ['fd00::a']],
    ]);
  });

  it('repacks the subsets first, so duplicates and ready/not-ready twins collapse', () => {
    const endpoints = makeEndpoints([
      { addresses: [{ ip: '10.0.0.1' }], ports: [http] },
      { addresses: [{ ip: '10.0.0.1' }], notReadyAddresses: [{ ip: '10.0.0.1' }], ports: [http] },
    ]);
    const [slice] = reconcile(endpoints).toCreate;
    expect(slice.endpoints).toEqual([{ addresses: ['10.0.0.1'], conditions: { ready: false } }]);
  });
});

describe('reconcileMirroredSlices: limits', () => {
  it.each([
    [1000, [1000], 0],
    [1001, [1000], 1],
  ])('a subset of %i addresses mirrors %j and skips %i', (count, sizes, skippedCount) => {
    const result = reconcile(makeEndpoints([{ addresses: addresses(count), ports: [http] }]));
    expect(sliceSizes(result.toCreate)).toEqual(sizes);
    expect(result.stats.addressesSkipped).toBe(skippedCount);
    if (skippedCount) {
      expect(result.events).toEqual([
        { type: 'Warning', reason: 'TooManyAddressesToMirror', message: 'A max of 1000 addresses can be mirrored to EndpointSlices per Endpoints subset. 1 addresses were skipped' },
      ]);
      expect(result.skipped).toContainEqual(expect.objectContaining({ code: 'AddressOverCapacity' }));
    } else {
      expect(result.events).toEqual([]);
    }
  });

  it('takes ready addresses first when cutting a subset', () => {
    const endpoints = makeEndpoints([{ addresses: addresses(3), notReadyAddresses: addresses(3, 100), ports: [http] }]);
    const [slice] = reconcile(endpoints, [], { options: { maxEndpointsPerSubset: 4 } }).toCreate;
    expect(slice.endpoints.map((e) => e.conditions?.ready)).toEqual([true, true, true, false]);
  });

  it('caps per subset, not per Endpoints object', () => {
    const endpoints = makeEndpoints([
      { addresses: addresses(600), ports: [http] },
      { addresses: addresses(600, 1000), ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] },
    ]);
    const result = reconcile(endpoints);
    expect(sliceSizes(result.toCreate)).toEqual([600, 600]);
    expect(result.events).toEqual([]);
  });

  it('skips invalid and special IPs with an InvalidIPAddress event', () => {
    const endpoints = makeEndpoints([{ addresses: [{ ip: 'bogus' }, { ip: '127.0.0.1' }, { ip: '10.0.0.1' }], ports: [http] }]);
    const result = reconcile(endpoints);
    expect(allAddresses(result.toCreate)).toEqual(['10.0.0.1']);
    expect(result.events).toEqual([{ type: 'Warning', reason: 'InvalidIPAddress', message: 'Skipped 2 invalid IP addresses when mirroring to EndpointSlices' }]);
    expect(result.skipped.filter((s) => s.code === 'AddressInvalidIP').map((s) => s.name)).toEqual(['127.0.0.1', 'bogus']);
  });
});

describe('reconcileMirroredSlices: when not to mirror', () => {
  const endpoints = makeEndpoints([{ addresses: addresses(2), ports: [http] }]);

  function mirrored(): EndpointSlice[] {
    const store = new FakeSliceStore();
    sync(store, endpoints);
    return store.list();
  }

  it.each<[string, Endpoints | undefined, Service | undefined, MirroringReconcileResult['outcome']]>([
    ['the Endpoints is gone', undefined, selectorless, 'endpoints-missing'],
    ['skip-mirror is "true"', makeEndpoints([], { labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } }), selectorless, 'not-mirrored'],
    ['it is a leader-election lock', makeEndpoints([], { annotations: { 'control-plane.alpha.kubernetes.io/leader': '{}' } }), selectorless, 'not-mirrored'],
    ['the Service is gone', endpoints, undefined, 'service-missing'],
    ['the Service has a selector', endpoints, makeService(), 'service-has-selector'],
  ])('deletes every mirrored slice when %s', (_, ep, service, outcome) => {
    const existing = mirrored();
    const result = reconcileMirroredSlices({ endpoints: ep, service, existingSlices: existing });
    expect(result.outcome).toBe(outcome);
    expect(counts(result)).toEqual({ create: 0, update: 0, delete: existing.length });
  });

  it('only the value "true" of skip-mirror counts', () => {
    expect(shouldMirror(makeEndpoints([], { labels: { 'endpointslice.kubernetes.io/skip-mirror': 'false' } }))).toBe(true);
    expect(shouldMirror(undefined)).toBe(false);
  });
});

describe('reconcileMirroredSlices: changes', () => {
  const base = makeEndpoints([{ addresses: addresses(3), ports: [http] }], { labels: { team: 'blue' }, annotations: { note: 'a' } });

  it('does nothing when slice, labels and annotations match; trigger-time changes alone do not count', () => {
    const store = new FakeSliceStore();
    sync(store, base);
    expect(sync(store, base)).toEqual({ create: 0, update: 0, delete: 0 });
    const retriggered = { ...base, metadata: { ...base.metadata, annotations: { ...base.metadata?.annotations, 'endpoints.kubernetes.io/last-change-trigger-time': '2026-05-05T00:00:00Z' } } };
    expect(sync(store, retriggered)).toEqual({ create: 0, update: 0, delete: 0 });
  });

  it('rewrites the slice under its name when addresses, labels or annotations change', () => {
    const store = new FakeSliceStore();
    sync(store, base);
    const name = store.list()[0].metadata?.name;
    expect(sync(store, { ...base, subsets: [{ addresses: addresses(4), ports: [http] }] })).toEqual({ create: 0, update: 1, delete: 0 });
    expect(sync(store, { ...base, metadata: { ...base.metadata, labels: { team: 'red' } } })).toEqual({ create: 0, update: 1, delete: 0 });
    expect(store.list()).toHaveLength(1);
    expect(store.list()[0].metadata?.name).toBe(name);
    expect(store.list()[0].metadata?.labels?.team).toBe('red');
  });

  it('keeps the first slice of a group and deletes the others', () => {
    const store = new FakeSliceStore();
    sync(store, base);
    const [first] = store.list();
    const copy = { ...first, metadata: { ...first.metadata, name: 'copy', uid: 'copy-uid' } };
    const result = reconcile(base, [first, copy]);
    expect(counts(result)).toEqual({ create: 0, update: 0, delete: 1 });
    expect(result.toDelete[0].metadata?.name).toBe('copy');
  });

  it('turns a port change into an update of the old slice rather than create + delete', () => {
    const store = new FakeSliceStore();
    sync(store, base);
    const moved = { ...base, subsets: [{ addresses: addresses(3), ports: [{ ...http, port: 8080 }] }] };
    expect(sync(store, moved)).toEqual({ create: 0, update: 1, delete: 0 });
    expect(store.list()[0].ports?.[0].port).toBe(8080);
  });

  it('deletes a group that lost all its addresses and creates nothing while the Endpoints is being deleted', () => {
    const store = new FakeSliceStore();
    sync(store, base);
    expect(sync(store, { ...base, subsets: [] })).toEqual({ create: 0, update: 0, delete: 1 });
    expect(store.list()).toEqual([]);
    const dying = { ...base, metadata: { ...base.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
    expect(counts(reconcile(dying, store.list()))).toEqual({ create: 0, update: 0, delete: 0 });
  });

  it('never throws on broken input and leaves slices that are not ours alone', () => {
    const foreign = { metadata: { name: 'x', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [] } as EndpointSlice;
    const broken = { metadata: { name: 'web', namespace: 'default' }, subsets: [{ addresses: [{} as SubsetAddress], ports: [{} as never] }, {}] } as Endpoints;
    let result: MirroringReconcileResult | undefined;
    expect(() => {
      result = reconcile(broken, [foreign]);
    }).not.toThrow();
    expect(result?.toDelete).toEqual([]);
    expect(result?.skipped).toContainEqual(expect.objectContaining({ code: 'SliceNotOurs', name: 'x' }));
  });
});
