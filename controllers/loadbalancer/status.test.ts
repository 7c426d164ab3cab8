// What the controller writes (Service status, annotation, pool status), the webhook's verdicts, and the
// allocator memory across restarts: the pure parts of controllers/loadbalancer.
import { describe, expect, it } from '@jest/globals';
import { Store } from '../runtime/store.js';
import type { Node, Service } from '../../api/wire.js';
import { SERVICE_CONDITION_TYPE, allocate } from '../../allocators/loadbalancer/allocator.js';
import { pool, service } from '../../testing/lb.js';
import { parsePools, poolStatus } from '../../allocators/loadbalancer/pools.js';
import { ANNOTATION_ALLOCATED_FROM_POOL } from '../../allocators/loadbalancer/service-request.js';
import { freedAfterRestart } from './allocator-state.js';
import { removeCondition, setCondition } from './conditions.js';
import { allocationInputs, poolStatusFor } from './controller.js';
import { releaseWriteFor, serviceWriteFor } from './service-status.js';
import { nodeAddressWarnings, reviewL2Advertisement, reviewPool } from './webhook.js';
import { WrittenView } from './written-view.js';

const T0 = new Date('2026-03-01T10:00:00Z');
const T1 = new Date('2026-03-01T10:05:00Z');
const allocationOf = (pools: ReturnType<typeof pool>[], svc: Service) =>
  allocate({ pools: parsePools(pools).pools, services: [svc], current: new Map(), now: 0 }).services.get('default/web')!;

describe('Service writes', () => {
  const pools = [pool('p', ['10.0.0.0/30'])];

  it('writes ingress with ipMode, the condition and the pool annotation, then nothing once the Service says it', () => {
    const svc = service('web');
    const a = allocationOf(pools, svc);
    const w = serviceWriteFor(svc, a, 'VIP', T0);
    expect(w.status?.loadBalancer?.ingress).toEqual([{ ip: '10.0.0.1', ipMode: 'VIP' }]);
    expect(w.status?.conditions).toEqual([
      { type: SERVICE_CONDITION_TYPE, status: 'True', reason: 'Allocated', message: 'Assigned IP ["10.0.0.1"] from pool "p"', lastTransitionTime: '2026-03-01T10:00:00Z' },
    ]);
    expect(w.poolAnnotation).toBe('p');
    const written: Service = { ...svc, metadata: { ...svc.metadata, annotations: { [ANNOTATION_ALLOCATED_FROM_POOL]: 'p' } }, status: w.status };
    expect(serviceWriteFor(written, a, 'VIP', T1)).toEqual({});
    expect(serviceWriteFor(written, a, 'Proxy', T1).status?.loadBalancer?.ingress).toEqual([{ ip: '10.0.0.1', ipMode: 'Proxy' }]);
  });

  it('clears the ingress of a pending Service and keeps the transition time while the status stays', () => {
    const svc = service('web', { ingress: ['10.9.9.9'] });
    const a = allocationOf([], svc);
    const w = serviceWriteFor(svc, a, 'VIP', T0);
    expect(w.status?.loadBalancer?.ingress).toEqual([]);
    expect(w.status?.conditions?.[0]).toMatchObject({ status: 'False', reason: 'NoPoolMatches', lastTransitionTime: '2026-03-01T10:00:00Z' });
    const again = setCondition(w.status?.conditions, { type: SERVICE_CONDITION_TYPE, status: 'False', reason: 'PoolExhausted', message: 'x' }, T1);
    expect(again[0].lastTransitionTime).toBe('2026-03-01T10:00:00Z');
    expect(setCondition(again, { type: SERVICE_CONDITION_TYPE, status: 'True', reason: 'Allocated', message: 'y' }, T1, 3)[0]).toMatchObject({
      lastTransitionTime: '2026-03-01T10:05:00Z',
      observedGeneration: 3,
    });
  });

  it('removes only what Switchboard wrote when a Service leaves', () => {
    const foreign = service('web', { type: 'ClusterIP', ingress: ['10.0.0.1'] });
    expect(releaseWriteFor(foreign)).toEqual({});
    const ours: Service = {
      ...foreign,
      metadata: { ...foreign.metadata, annotations: { [ANNOTATION_ALLOCATED_FROM_POOL]: 'p' } },
      status: { loadBalancer: { ingress: [{ ip: '10.0.0.1' }] }, conditions: [{ type: 'Other', status: 'True', reason: 'R', message: '', lastTransitionTime: 'x' }, { type: SERVICE_CONDITION_TYPE, status: 'True', reason: 'Allocated', message: '', lastTransitionTime: 'x' }] },
    };
    expect(releaseWriteFor(ours)).toEqual({
      status: { loadBalancer: {}, conditions: [{ type: 'Other', status: 'True', reason: 'R', message: '', lastTransitionTime: 'x' }] },
      poolAnnotation: null,
    });
    expect(removeCondition(undefined, 'x')).toEqual([]);
  });

  it('passes only on changes the allocator reads', () => {
    const svc = service('web');
    expect(allocationInputs({ ...svc, status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } } })).toBe(allocationInputs(svc));
    expect(allocationInputs({ ...svc, metadata: { ...svc.metadata, annotations: { 'metallb.universe.tf/allow-shared-ip': 'k' } } })).not.toBe(allocationInputs(svc));
    expect(allocationInputs(service('web', { local: true }))).not.toBe(allocationInputs(svc));
  });
});

describe('pool status', () => {
  it('writes counters, observedGeneration and conditions once, and reports an overlap as Valid=False', () => {
    const a = { ...pool('a', ['10.0.0.0/29']), metadata: { name: 'a', generation: 2, creationTimestamp: '2026-01-01T00:00:00Z' } };
    const b = pool('b', ['10.0.0.4/30'], {}, '2026-01-02T00:00:00Z');
    const parsed = parsePools([a, b]);
    const draft = poolStatus('a', parsed, new Map([['a', [{ family: 'IPv4', value: 0x0a000001n }]]]));
    const status = poolStatusFor(a, draft, T0);
    expect(status).toMatchObject({ assignedIPv4: 1, availableIPv4: 5, assignedIPv6: 0, availableIPv6: 0, observedGeneration: 2 });
    expect(poolStatusFor({ ...a, status }, draft, T1)).toBeUndefined();
    const invalid = poolStatusFor(b, poolStatus('b', parsed, new Map()), T0);
    expect(invalid?.conditions?.find((c) => c.type === 'Valid')).toMatchObject({
      status: 'False',
      reason: 'InvalidSpec',
      message: 'spec.addresses[0]: Invalid value: "10.0.0.4/30": overlaps with already defined "10.0.0.0/29" in IPAddressPool "a"',
    });
  });
});

describe('validating webhook', () => {
  const existing = [pool('base', ['192.168.0.0/24'])];

  it('denies an overlapping pool with a 422 that reads like native validation', () => {
    const r = reviewPool({ uid: 'u1', operation: 'CREATE', object: pool('new', ['192.168.0.128/25', 'bogus']) }, existing, []).response;
    expect(r.allowed).toBe(false);
    expect(r.status).toEqual({
      status: 'Failure',
      message:
        'IPAddressPool.switchboard.dev "new" is invalid: [spec.addresses[1]: Invalid value: "bogus": must be a CIDR (a single address is written /32 or /128) or a range a-b, spec.addresses[0]: Invalid value: "192.168.0.128/25": overlaps with already defined "192.168.0.0/24" in IPAddressPool "base"]',
      reason: 'Invalid',
      details: {
        name: 'new',
        group: 'switchboard.dev',
        kind: 'IPAddressPool',
        causes: [
          { reason: 'FieldValueInvalid', message: 'Invalid value: "bogus": must be a CIDR (a single address is written /32 or /128) or a range a-b', field: 'spec.addresses[1]' },
          { reason: 'FieldValueInvalid', message: 'Invalid value: "192.168.0.128/25": overlaps with already defined "192.168.0.0/24" in IPAddressPool "base"', field: 'spec.addresses[0]' },
        ],
      },
      code: 422,
    });
  });

  it('allows updates of a pool over its own old version, deletes always, and warns about node addresses', () => {
    expect(reviewPool({ uid: 'u', operation: 'UPDATE', object: pool('base', ['192.168.0.0/23']) }, existing, []).response.allowed).toBe(true);
    expect(reviewPool({ uid: 'u', operation: 'DELETE' }, existing, []).response.allowed).toBe(true);
    const node: Node = { metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '10.1.0.5' }, { type: 'Hostname', address: 'n1' }] } };
    const r = reviewPool({ uid: 'u', operation: 'CREATE', object: pool('lan', ['10.1.0.0/24']) }, existing, [node]).response;
    expect([r.allowed, r.warnings]).toEqual([true, ['spec.addresses holds 10.1.0.5, the InternalIP of node "n1"']]);
    expect(nodeAddressWarnings(pool('lan', ['10.2.0.0/24']), [node])).toEqual([]);
  });

  it('denies invalid advertisements', () => {
    const r = reviewL2Advertisement({ uid: 'u', operation: 'CREATE', object: { metadata: { name: 'ad' }, spec: { ipAddressPools: ['a', 'a'] } } }).response;
    expect(r.status?.message).toBe('L2Advertisement.switchboard.dev "ad" is invalid: spec.ipAddressPools[1]: Duplicate value: "a"');
    expect(reviewL2Advertisement({ uid: 'u', operation: 'CREATE', object: { metadata: { name: 'ok' }, spec: {} } }).response.allowed).toBe(true);
  });
});

describe('allocator memory', () => {
  it('puts addresses freed while the controller was away at the back of the reuse order', () => {
    const memory = { freedAt: new Map([['10.0.0.9', 5]]), held: new Set(['10.0.0.1', '10.0.0.2', '10.0.0.3']) };
    expect(freedAfterRestart(memory, ['10.0.0.1', '10.0.0.9'], 100)).toEqual(new Map([['10.0.0.2', 100], ['10.0.0.3', 100]]));
  });

  it('reads through its own writes until the cache catches up', () => {
    const store = new Store<Service>();
    const v1: Service = { metadata: { name: 'a', namespace: 'n', resourceVersion: '1' } };
    store.upsert(v1);
    let now = 0;
    const view = new WrittenView(store, () => now);
    const v2: Service = { metadata: { name: 'a', namespace: 'n', resourceVersion: '2' }, spec: { type: 'LoadBalancer' } };
    view.wrote('n/a', v1, v2);
    expect(view.get('n/a')).toBe(v2);
    expect(view.list()).toEqual([v2]);
    now = 20_000;
    expect(view.get('n/a')).toBe(v1); // never delivered: trust the cache again
    const created: Service = { metadata: { name: 'b', namespace: 'n', resourceVersion: '7' } };
    view.wrote('n/b', undefined, created);
    const updated: Service = { metadata: { name: 'b', namespace: 'n', resourceVersion: '8' }, status: {} };
    view.wrote('n/b', undefined, updated);
    expect(view.keys().sort()).toEqual(['n/a', 'n/b']);
    store.upsert(created); // the watch delivers the create: still older than what we wrote
    expect(view.get('n/b')).toBe(updated);
    store.upsert({ ...created, metadata: { ...created.metadata, resourceVersion: '9' } }); // someone else's write
    expect(view.get('n/b')?.metadata?.resourceVersion).toBe('9');
  });
});
