import { describe, expect, it } from '@jest/globals';
import type { Endpoints, Pod, Service } from '../../api/wire.js';
import { makePod, makePods, makeService } from '../../testing/endpoint-objects.js';
import { countAddresses } from '../endpointutil/subsets.js';
import type { EndpointSubset } from '../endpointutil/types.js';
import { type EndpointsReconcileInput, type EndpointsReconcileResult, reconcileEndpoints, truncateSubsets } from './reconciler.js';
import { StaleEndpointsTracker } from './stale-tracker.js';

function reconcile(service: Service | undefined, pods: Pod[], existing?: Endpoints, extra: Partial<EndpointsReconcileInput> = {}) {
  return reconcileEndpoints({ namespace: 'default', name: 'web', service, pods, existing, ...extra });
}

/** The object a create or update would write (and the API server would return, with a resourceVersion). */
function written(result: EndpointsReconcileResult): Endpoints {
  if (result.action.type !== 'create' && result.action.type !== 'update') throw new Error(`no write: ${result.action.type}`);
  return { ...result.action.endpoints, metadata: { ...result.action.endpoints.metadata, resourceVersion: '1' } };
}

const ips = (addresses: { ip: string }[] | undefined) => (addresses ?? []).map((a) => a.ip);

describe('reconcileEndpoints: content', () => {
  it('creates the Endpoints with ready and not-ready addresses in one subset per port set', () => {
    const pods = [makePod('a', 0), makePod('b', 1, { ready: false })];
    const result = reconcile(makeService({ labels: { team: 'blue' } }), pods);
    expect(result.action.type).toBe('create');
    const endpoints = written(result);
    expect(endpoints.metadata).toMatchObject({
      name: 'web',
      namespace: 'default',
      labels: { team: 'blue', 'endpoints.kubernetes.io/managed-by': 'endpoint-controller' },
      annotations: {},
    });
    expect(endpoints.subsets).toEqual([
      {
        addresses: [{ ip: '10.0.0.1', nodeName: 'node-a', targetRef: { kind: 'Pod', namespace: 'default', name: 'a', uid: 'uid-a' } }],
        notReadyAddresses: [{ ip: '10.0.0.2', nodeName: 'node-a', targetRef: { kind: 'Pod', namespace: 'default', name: 'b', uid: 'uid-b' } }],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      },
    ]);
    expect(result.counts).toEqual({ ready: 1, notReady: 1 });
  });

  it('omits terminating pods unless not-ready addresses are published, and then lists them as ready', () => {
    const pods = [makePod('up', 0), makePod('leaving', 1, { terminating: true }), makePod('unready', 2, { ready: false })];
    const plain = written(reconcile(makeService(), pods)).subsets!;
    expect(ips(plain[0].addresses)).toEqual(['10.0.0.1']);
    expect(ips(plain[0].notReadyAddresses)).toEqual(['10.0.0.3']);
    const published = written(reconcile(makeService({ publishNotReadyAddresses: true }), pods)).subsets!;
    expect(ips(published[0].addresses)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(published[0].notReadyAddresses).toBeUndefined();
  });

  it('carries the primary family only, verbatim', () => {
    const pods = [makePod('a', 0, { ips: ['fd00::0001', '10.0.0.1'] }), makePod('b', 1, { ips: ['10.0.0.2'] })];
    const result = reconcile(makeService({ ipFamilies: ['IPv6', 'IPv4'], clusterIP: 'fd00:10::1' }), pods);
    expect(ips(written(result).subsets![0].addresses)).toEqual(['fd00::0001']);
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'b', code: 'PodNoIPOfFamily' }));
  });

  it('gives a headless Service without ports port-less subsets; a ClusterIP one without ports gets none', () => {
    const pods = [makePod('a', 0, { hostname: 'a', subdomain: 'web' }), makePod('b', 1)];
    const headless = written(reconcile(makeService({ clusterIP: 'None', ports: [] }), pods));
    expect(headless.subsets).toEqual([
      {
        addresses: [
          { ip: '10.0.0.1', hostname: 'a', nodeName: 'node-a', targetRef: { kind: 'Pod', namespace: 'default', name: 'a', uid: 'uid-a' } },
          { ip: '10.0.0.2', nodeName: 'node-a', targetRef: { kind: 'Pod', namespace: 'default', name: 'b', uid: 'uid-b' } },
        ],
      },
    ]);
    expect(headless.metadata?.labels).toMatchObject({ 'service.kubernetes.io/headless': '' });
    expect(written(reconcile(makeService({ ports: [] }), pods)).subsets).toEqual([]);
  });

  it('splits pods whose named port resolves differently into separate subsets', () => {
    const service = makeService({ ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' }] });
    const pods = [
      makePod('a', 0, { containerPorts: [{ name: 'web', containerPort: 8080 }] }),
      makePod('b', 1, { containerPorts: [{ name: 'web', containerPort: 9090 }] }),
      makePod('c', 2, { containerPorts: [] }),
    ];
    const result = reconcile(service, pods);
    const subsets = written(result).subsets!;
    expect(subsets.map((s) => [s.ports?.[0].port, ips(s.addresses)])).toEqual(
      expect.arrayContaining([[8080, ['10.0.0.1']], [9090, ['10.0.0.2']]]),
    );
    expect(subsets).toHaveLength(2);
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'c', code: 'PodPortNotFound' }));
  });

  it('leaves out terminal pods and reports pods without IPs', () => {
    const pending = makePod('pending', 9);
    pending.status = { phase: 'Pending' };
    const result = reconcile(makeService(), [makePod('done', 0, { phase: 'Succeeded' }), pending, makePod('ok', 1)]);
    expect(ips(written(result).subsets![0].addresses)).toEqual(['10.0.0.2']);
    expect(result.skipped).toContainEqual(expect.objectContaining({ name: 'pending', code: 'PodNoIP' }));
  });
});

describe('reconcileEndpoints: no-op detection', () => {
  const service = makeService({ labels: { team: 'blue' } });
  const pods = makePods(3);

  it('does not write when subsets and labels are unchanged', () => {
    const current = written(reconcile(service, pods, undefined, { triggerTime: '2026-01-01T00:00:00Z' }));
    expect(reconcile(service, pods, current).action).toEqual({ type: 'none' });
  });

  it('ignores targetRef resourceVersion, order, and the headless and managed-by labels', () => {
    const current = written(reconcile(service, pods));
    const subset = current.subsets![0];
    const shuffled: Endpoints = {
      ...current,
      metadata: { ...current.metadata, labels: { ...current.metadata?.labels, 'service.kubernetes.io/headless': '' } },
      subsets: [{ ...subset, addresses: [...subset.addresses!].reverse().map((a) => ({ ...a, targetRef: { ...a.targetRef, resourceVersion: '99' } })) }],
    };
    expect(reconcile(service, pods, shuffled).action).toEqual({ type: 'none' });
  });

  it('writes when labels, subsets or the capacity annotation differ, keeping other annotations', () => {
    const current = written(reconcile(service, pods));
    expect(reconcile(makeService({ labels: { team: 'red' } }), pods, current).action.type).toBe('update');
    expect(reconcile(service, pods.slice(1), current).action.type).toBe('update');
    const stray: Endpoints = { ...current, metadata: { ...current.metadata, annotations: { keep: 'me', 'endpoints.kubernetes.io/over-capacity': 'truncated' } } };
    const fixed = written(reconcile(service, pods, stray));
    expect(fixed.metadata?.annotations).toEqual({ keep: 'me' });
    expect(fixed.metadata?.resourceVersion).toBe('1');
  });
});

describe('reconcileEndpoints: truncation at 1000 addresses', () => {
  const service = makeService();

  it.each([
    [1000, false],
    [1001, true],
  ])('%i ready addresses: truncated=%s', (count, truncated) => {
    const result = reconcile(service, makePods(count));
    const endpoints = written(result);
    expect(result.truncated).toBe(truncated);
    expect(countAddresses(endpoints.subsets).ready).toBe(1000);
    expect(endpoints.metadata?.annotations?.['endpoints.kubernetes.io/over-capacity']).toBe(truncated ? 'truncated' : undefined);
    expect(result.counts.ready).toBe(count);
  });

  it('keeps every ready address and shares the rest among not-ready lists', () => {
    const pods = [...makePods(950), ...makePods(100, { ready: false }, 'unready').map((p, i) => makePod(p.metadata!.name!, 2000 + i, { ready: false }))];
    const endpoints = written(reconcile(service, pods));
    expect(countAddresses(endpoints.subsets)).toEqual({ ready: 950, notReady: 50 });
    // The kept not-ready addresses are the first 50 of the sorted list.
    const notReady = ips(endpoints.subsets![0].notReadyAddresses);
    expect(notReady).toEqual(ips(written(reconcile(service, pods.slice(950))).subsets![0].notReadyAddresses).slice(0, 50));
  });

  it('shares slots across subsets in proportion, rounding up, capped by what is left', () => {
    const address = (i: number) => ({ ip: `10.1.${Math.floor(i / 250)}.${i % 250}` });
    const subsets: EndpointSubset[] = [
      { addresses: Array.from({ length: 500 }, (_, i) => address(i)), notReadyAddresses: Array.from({ length: 301 }, (_, i) => address(1000 + i)), ports: [{ port: 1, protocol: 'TCP' }] },
      { addresses: Array.from({ length: 300 }, (_, i) => address(2000 + i)), notReadyAddresses: Array.from({ length: 100 }, (_, i) => address(3000 + i)), ports: [{ port: 2, protocol: 'TCP' }] },
    ];
    // 800 ready fit; 200 slots for 401 not-ready: ceil(301/401·200)=151, then min(ceil(100/401·200)=50, 49)=49.
    const truncated = truncateSubsets(subsets)!;
    expect(truncated.map((s) => [s.addresses?.length, s.notReadyAddresses?.length])).toEqual([[500, 151], [300, 49]]);
  });

  it('drops all not-ready addresses when the ready ones alone exceed the capacity', () => {
    const address = (i: number) => ({ ip: `10.2.${Math.floor(i / 250)}.${i % 250}` });
    const subsets: EndpointSubset[] = [
      { addresses: Array.from({ length: 900 }, (_, i) => address(i)), notReadyAddresses: [address(5000)], ports: [{ port: 1, protocol: 'TCP' }] },
      { addresses: Array.from({ length: 300 }, (_, i) => address(1000 + i)), ports: [{ port: 2, protocol: 'TCP' }] },
      { notReadyAddresses: [address(6000)], ports: [{ port: 3, protocol: 'TCP' }] },
    ];
    // ceil(900/1200·1000)=750, ceil(300/1200·1000)=250; the third subset would be empty and is dropped.
    const truncated = truncateSubsets(subsets)!;
    expect(truncated.map((s) => [s.addresses?.length, s.notReadyAddresses?.length])).toEqual([[750, undefined], [250, undefined]]);
    expect(truncated[0].addresses).toEqual(subsets[0].addresses!.slice(0, 750));
  });

  it('rewrites an over-capacity object on every sync and removes the annotation once below', () => {
    const over = written(reconcile(service, makePods(1200)));
    expect(reconcile(service, makePods(1200), over).action.type).toBe('update');
    const below = written(reconcile(service, makePods(10), over));
    expect(below.metadata?.annotations?.['endpoints.kubernetes.io/over-capacity']).toBeUndefined();
    expect(reconcile(service, makePods(10), below).action).toEqual({ type: 'none' });
  });
});

describe('reconcileEndpoints: lifecycle and bad input', () => {
  it('deletes the Endpoints of a deleted Service, but never a leader-election lock', () => {
    expect(reconcile(undefined, [], undefined).action).toEqual({ type: 'delete', namespace: 'default', name: 'web' });
    const lock: Endpoints = { metadata: { name: 'web', namespace: 'default', annotations: { 'control-plane.alpha.kubernetes.io/leader': '{}' } } };
    const result = reconcile(undefined, [], lock);
    expect(result.action).toEqual({ type: 'none' });
    expect(result.skipped).toContainEqual(expect.objectContaining({ code: 'EndpointsLeaderElection' }));
    expect(reconcile(makeService(), makePods(2), lock).action).toEqual({ type: 'none' });
  });

  it('leaves ExternalName and selector-less Services alone', () => {
    expect(reconcile(makeService({ type: 'ExternalName' }), makePods(1)).action).toEqual({ type: 'none' });
    expect(reconcile(makeService({ selector: null }), makePods(1)).action).toEqual({ type: 'none' });
    const handMade: Endpoints = { metadata: { name: 'web', namespace: 'default', resourceVersion: '7', labels: { team: 'x' } }, subsets: [] };
    expect(reconcile(makeService({ selector: null }), [], handMade).action).toEqual({ type: 'none' });
  });

  it('deletes its own Endpoints, in the version it saw, once the selector is removed', () => {
    const ours = { ...written(reconcile(makeService(), makePods(2))), metadata: { name: 'web', namespace: 'default', uid: 'e-1', resourceVersion: '9', labels: { 'endpoints.kubernetes.io/managed-by': 'endpoint-controller' } } };
    expect(reconcile(makeService({ selector: null }), [], ours).action).toEqual({
      type: 'delete',
      namespace: 'default',
      name: 'web',
      precondition: { uid: 'e-1', resourceVersion: '9' },
    });
    const skipMirror = { ...ours, metadata: { ...ours.metadata, labels: { ...ours.metadata.labels, 'endpointslice.kubernetes.io/skip-mirror': 'true' } } };
    expect(reconcile(makeService({ selector: null }), [], skipMirror).action).toEqual({ type: 'none' });
    expect(reconcile(makeService({ selector: null }), [], ours, { options: { managedByLabel: null } }).action).toEqual({ type: 'none' });
  });

  it('sets and clears the trigger time; the managed-by label can be turned off', () => {
    const service = makeService();
    const first = written(reconcile(service, makePods(1), undefined, { triggerTime: '2026-02-03T04:05:06Z' }));
    expect(first.metadata?.annotations).toEqual({ 'endpoints.kubernetes.io/last-change-trigger-time': '2026-02-03T04:05:06Z' });
    const second = written(reconcile(service, makePods(2), first, { options: { managedByLabel: null } }));
    expect(second.metadata?.annotations).toEqual({});
    expect(second.metadata?.labels).toEqual({});
  });

  it('never throws on broken input', () => {
    const broken = [{} as Pod, { metadata: { namespace: 'default', labels: { app: 'web' } }, status: { podIPs: [{ ip: 'nope' }] } } as Pod];
    const service = makeService({ ports: [{ name: 'x', port: -1, protocol: 'TCP' }] });
    expect(() => reconcile(service, broken, { subsets: [{}] } as Endpoints)).not.toThrow();
    expect(() => reconcile({} as Service, broken)).not.toThrow();
  });
});

describe('StaleEndpointsTracker', () => {
  const KEY = 'default/web';
  const v1: Endpoints = { metadata: { name: 'web', namespace: 'default', resourceVersion: '1' } };
  const v2: Endpoints = { metadata: { name: 'web', namespace: 'default', resourceVersion: '2' } };

  it('flags the version our update replaced, but not after a no-op update', () => {
    const tracker = new StaleEndpointsTracker();
    tracker.recordUpdate(v1, v1);
    expect(tracker.isStale(KEY, v1)).toBe(false);
    tracker.recordUpdate(v1, v2);
    expect(tracker.isStale(KEY, v1)).toBe(true);
    expect(tracker.isStale(KEY, v2)).toBe(false);
    tracker.forget('default', 'web');
    expect(tracker.isStale(KEY, v1)).toBe(false);
  });

  // Issue 13: a sync before the echo of our own create created it again (409), one before a delete's echo deleted it again.
  it('flags a missing object we created, and the version we deleted, until their events arrive', () => {
    const tracker = new StaleEndpointsTracker();
    tracker.recordCreate(v1);
    expect(tracker.isStale(KEY, undefined)).toBe(true);
    expect(tracker.isStale(KEY, v1)).toBe(false);
    tracker.observed(v1, false);
    expect(tracker.isStale(KEY, undefined)).toBe(false);

    tracker.recordDelete(v2);
    expect(tracker.isStale(KEY, v2)).toBe(true);
    tracker.observed(v2, true);
    expect(tracker.isStale(KEY, v2)).toBe(false);
  });
});
