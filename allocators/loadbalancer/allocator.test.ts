import { describe, expect, it } from '@jest/globals';
import type { IPAddressPool } from '../../crds/ipaddresspool.js';
import type { Service } from '../../api/wire.js';
import {
  allocate,
  allocationCondition,
  assignmentsFromServices,
  ingressFor,
  type AllocatorInput,
  type AllocatorResult,
  type ServiceAllocation,
} from './allocator.js';
import { parsePools, poolCounters } from './pools.js';
import { pool, service, type ServiceOptions } from '../../testing/lb.js';

interface Run {
  pools: IPAddressPool[];
  services: Service[];
  current?: Map<string, string[]>;
  freedAt?: Map<string, number>;
  now?: number;
  loadBalancerClass?: string;
  handleUnsetClass?: boolean;
  conflicts?: Map<string, string>;
}

const run = (r: Run): AllocatorResult => {
  const input: AllocatorInput = {
    pools: parsePools(r.pools).pools,
    services: r.services,
    current: r.current ?? new Map(),
    freedAt: r.freedAt,
    now: r.now ?? 1000,
    loadBalancerClass: r.loadBalancerClass,
    handleUnsetClass: r.handleUnsetClass,
    conflicts: r.conflicts,
  };
  return allocate(input);
};

const get = (res: AllocatorResult, name: string, ns = 'default'): ServiceAllocation => {
  const a = res.services.get(`${ns}/${name}`);
  if (!a) throw new Error(`no allocation for ${ns}/${name}`);
  return a;
};
const ipsOf = (res: AllocatorResult, name: string): string[] => get(res, name).ips;
const svcs = (...specs: [string, ServiceOptions?][]): Service[] => specs.map(([n, o]) => service(n, o));
const MLB = (k: string) => `metallb.io/${k}`;
const LEGACY = (k: string) => `metallb.universe.tf/${k}`;

describe('allocate: choosing addresses', () => {
  it('hands out the first usable address (not the network address) and explains itself', () => {
    const res = run({ pools: [pool('p', ['10.0.0.0/24'])], services: svcs(['a'], ['b']) });
    expect(get(res, 'a')).toEqual({
      key: 'default/a',
      outcome: 'assigned',
      reason: 'Allocated',
      message: 'Assigned IP ["10.0.0.1"] from pool "p"',
      ips: ['10.0.0.1'],
      pool: 'p',
      changed: true,
      events: [{ type: 'Normal', reason: 'IPAllocated', message: 'Assigned IP ["10.0.0.1"]' }],
    });
    expect(ipsOf(res, 'b')).toEqual(['10.0.0.2']);
    expect(res.assignments).toEqual(new Map([['default/a', ['10.0.0.1']], ['default/b', ['10.0.0.2']]]));
    expect(allocationCondition(get(res, 'a'))).toEqual({
      type: 'switchboard.dev/LoadBalancerIPAllocated',
      status: 'True',
      reason: 'Allocated',
      message: 'Assigned IP ["10.0.0.1"] from pool "p"',
    });
    expect(ingressFor(get(res, 'a'))).toEqual([{ ip: '10.0.0.1', ipMode: 'VIP' }]);
  });

  it('walks pools in a deterministic order: priority, then name, generic pools last', () => {
    const pools = [
      pool('zz-generic', ['10.0.9.0/24']),
      pool('aa-generic', ['10.0.8.0/24']),
      pool('ns-only', ['10.0.7.0/24'], { serviceAllocation: { namespaces: ['team'] } }),
      pool('prio-5', ['10.0.6.0/24'], { serviceAllocation: { priority: 5, namespaces: ['team'] } }),
    ];
    const res = run({ pools, services: [service('in-team', { namespace: 'team' }), service('other')] });
    expect(get(res, 'in-team', 'team').pool).toBe('prio-5');
    expect(get(res, 'other').pool).toBe('aa-generic');
    // Service order does not matter.
    const reversed = run({ pools: [...pools].reverse(), services: [service('other'), service('in-team', { namespace: 'team' })] });
    expect(reversed.assignments).toEqual(res.assignments);
  });

  it('uses an autoAssign:false pool only when asked, by address-pool annotation or requested IP', () => {
    const pools = [pool('manual', ['10.1.0.0/24'], { autoAssign: false }), pool('auto', ['10.2.0.0/24'])];
    const res = run({
      pools,
      services: svcs(['plain'], ['by-pool', { annotations: { [MLB('address-pool')]: 'manual' } }], ['by-ip', { loadBalancerIP: '10.1.0.77' }]),
    });
    expect(ipsOf(res, 'plain')).toEqual(['10.2.0.1']);
    expect(ipsOf(res, 'by-pool')).toEqual(['10.1.0.1']);
    expect(ipsOf(res, 'by-ip')).toEqual(['10.1.0.77']);
  });

  it('reads both annotation prefixes, prefers the stable one, and warns about the legacy one', () => {
    const res = run({
      pools: [pool('p', ['10.0.0.0/24']), pool('q', ['10.0.1.0/24'])],
      services: svcs(
        ['legacy', { annotations: { [LEGACY('loadBalancerIPs')]: '10.0.0.50' } }],
        ['both', { annotations: { [MLB('address-pool')]: 'q', [LEGACY('address-pool')]: 'p' } }],
      ),
    });
    expect(ipsOf(res, 'legacy')).toEqual(['10.0.0.50']);
    expect(get(res, 'legacy').events).toContainEqual({
      type: 'Warning',
      reason: 'deprecatedAnnotation',
      message: 'annotation "metallb.universe.tf/loadBalancerIPs" is deprecated, use "metallb.io/loadBalancerIPs"',
    });
    expect(get(res, 'both').pool).toBe('q');
    expect(get(res, 'both').events.map((e) => e.reason)).toEqual(['IPAllocated']);
  });

  it('takes requested addresses from the loadBalancerIPs annotation for both families', () => {
    const res = run({
      pools: [pool('dual', ['10.0.0.0/24', '2001:db8::/120'])],
      services: svcs(['d', { families: ['IPv6', 'IPv4'], policy: 'RequireDualStack', annotations: { [MLB('loadBalancerIPs')]: '2001:db8::9, 10.0.0.9' } }]),
    });
    expect(ipsOf(res, 'd')).toEqual(['10.0.0.9', '2001:db8::9']);
  });

  it('leaves Services pending with a reason for every way a request can fail', () => {
    const pools = [pool('p', ['10.0.0.0/24']), pool('q', ['10.0.1.0/24'], { serviceAllocation: { namespaces: ['only'] } })];
    const res = run({
      pools,
      services: svcs(
        ['both-set', { loadBalancerIP: '10.0.0.5', annotations: { [MLB('loadBalancerIPs')]: '10.0.0.6' } }],
        ['garbage', { annotations: { [MLB('loadBalancerIPs')]: '10.0.0.300' } }],
        ['three', { annotations: { [MLB('loadBalancerIPs')]: '10.0.0.1,10.0.0.2,10.0.0.3' } }],
        ['outside', { loadBalancerIP: '192.0.2.1' }],
        ['network', { loadBalancerIP: '10.0.0.0' }],
        ['wrong-family', { loadBalancerIP: '2001:db8::1' }],
        ['mismatch', { loadBalancerIP: '10.0.0.5', annotations: { [MLB('address-pool')]: 'q' } }],
        ['unknown-pool', { annotations: { [MLB('address-pool')]: 'nope' } }],
        ['not-allowed', { annotations: { [MLB('address-pool')]: 'q' } }],
        ['no-cluster-ip', { families: [] }],
      ),
    });
    const summary = (n: string) => {
      const a = get(res, n);
      return [a.outcome, a.reason, a.message, a.events.map((e) => `${e.type} ${e.reason}`).join(',')];
    };
    expect(summary('both-set')).toEqual([
      'pending',
      'InvalidRequest',
      'invalid requested loadbalancer IPs: service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP',
      'Warning LoadBalancerFailed',
    ]);
    expect(summary('garbage')[2]).toBe('invalid requested loadbalancer IPs: invalid metallb.io/loadBalancerIPs: "10.0.0.300" is not an IP address');
    expect(summary('three')[2]).toBe('invalid requested loadbalancer IPs: invalid metallb.io/loadBalancerIPs: at most 2 addresses, one per IP family');
    expect(summary('outside')).toEqual(['pending', 'RequestedIPNotInPool', 'requested IP 192.0.2.1 is not in any IPAddressPool', 'Warning AllocationFailed']);
    expect(summary('network')[2]).toBe(
      'requested IP 10.0.0.0 is not handed out by IPAddressPool "p": it is the network address of 10.0.0.0/24 (set allowNetworkAndBroadcast to use it)',
    );
    expect(summary('wrong-family').slice(1, 3)).toEqual(['FamilyMismatch', 'requested loadBalancer IP(s) ["2001:db8::1"] does not match the ipFamily of the service (IPv4)']);
    expect(get(res, 'wrong-family').events[0].message).toBe(
      'Failed to allocate IP for "default/wrong-family": requested loadBalancer IP(s) ["2001:db8::1"] does not match the ipFamily of the service (IPv4)',
    );
    expect(summary('mismatch').slice(1, 3)).toEqual([
      'RequestedPoolMismatch',
      'requested loadBalancer IP(s) ["10.0.0.5"] is not compatible with requested address pool q',
    ]);
    expect(summary('unknown-pool').slice(1, 3)).toEqual(['PoolNotFound', 'unknown pool "nope" (no valid IPAddressPool has that name)']);
    expect(summary('not-allowed').slice(1, 3)).toEqual(['PoolNotCompatible', 'IPAddressPool "q" serves only the namespaces of its serviceAllocation, not "default"']);
    expect(summary('no-cluster-ip').slice(1, 4)).toEqual([
      'NoClusterIP',
      'the Service has no ClusterIP, so its IP family cannot be determined',
      'Warning noclusterIPsIPFamily',
    ]);
    expect(allocationCondition(get(res, 'outside'))).toMatchObject({ status: 'False', reason: 'RequestedIPNotInPool' });
  });

  it('says why no pool matches, and when the matching pools are full', () => {
    const pools = [
      pool('manual', ['10.1.0.0/24'], { autoAssign: false }),
      pool('off', ['10.2.0.0/24'], { disabled: true }),
      pool('web-only', ['10.3.0.0/30'], { serviceAllocation: { serviceSelectors: [{ matchLabels: { tier: 'web' } }] } }),
    ];
    const res = run({ pools, services: svcs(['db', { labels: { tier: 'db' } }], ['w1', { labels: { tier: 'web' } }], ['w2', { labels: { tier: 'web' } }], ['w3', { labels: { tier: 'web' } }]) });
    expect(get(res, 'db')).toMatchObject({
      outcome: 'pending',
      reason: 'NoPoolMatches',
      message:
        'no available IPs: no IPAddressPool may serve this Service (IPAddressPool "web-only" serves only Services matching its serviceAllocation.serviceSelectors; "manual" has autoAssign false; "off" is disabled)',
    });
    expect(ipsOf(res, 'w1')).toEqual(['10.3.0.1']);
    expect(ipsOf(res, 'w2')).toEqual(['10.3.0.2']);
    expect(get(res, 'w3')).toMatchObject({ outcome: 'pending', reason: 'PoolExhausted', message: 'no available IPs in pool "web-only"' });
    expect(get(res, 'w3').events).toEqual([{ type: 'Warning', reason: 'AllocationFailed', message: 'Failed to allocate IP for "default/w3": no available IPs in pool "web-only"' }]);
    expect(get(run({ pools: [], services: svcs(['x']) }), 'x').message).toBe('no available IPs: no IPAddressPool may serve this Service (there are no valid pools)');
  });

  it('ignores Services of another loadBalancerClass and handles its own class', () => {
    const pools = [pool('p', ['10.0.0.0/24'])];
    const services = svcs(['none'], ['theirs', { loadBalancerClass: 'other.io/lb' }], ['ours', { loadBalancerClass: 'switchboard.dev/l2' }], ['cip', { type: 'ClusterIP' }]);
    const res = run({ pools, services, loadBalancerClass: 'switchboard.dev/l2' });
    expect([...res.services.keys()].sort()).toEqual(['default/none', 'default/ours']);
    expect([...run({ pools, services }).services.keys()]).toEqual(['default/none']);
    // Another implementation is the default: only our class.
    expect([...run({ pools, services, loadBalancerClass: 'switchboard.dev/l2', handleUnsetClass: false }).services.keys()]).toEqual(['default/ours']);
    const held = [service('none', { ingress: ['10.0.0.9'] }), service('ours', { loadBalancerClass: 'switchboard.dev/l2', ingress: ['10.0.0.8'] })];
    expect([...assignmentsFromServices(held, 'switchboard.dev/l2', false).keys()]).toEqual(['default/ours']);
  });
});

describe('allocate: sharing', () => {
  const pools = [pool('p', ['10.0.0.0/24'])];
  const shared = (key: string, port: number, o: ServiceOptions = {}): ServiceOptions => ({
    ...o,
    annotations: { [MLB('allow-shared-ip')]: key, [MLB('loadBalancerIPs')]: '10.0.0.10', ...o.annotations },
    ports: [{ port, protocol: o.ports?.[0]?.protocol }],
  });

  it('shares an address between Services with the same key and disjoint (protocol, port), across namespaces', () => {
    const res = run({
      pools,
      services: [
        service('dns-tcp', shared('k', 53)),
        service('dns-udp', shared('k', 53, { ports: [{ port: 53, protocol: 'UDP' }] })),
        service('web', { ...shared('k', 80), namespace: 'elsewhere' }),
      ],
    });
    expect(ipsOf(res, 'dns-tcp')).toEqual(['10.0.0.10']);
    expect(ipsOf(res, 'dns-udp')).toEqual(['10.0.0.10']);
    expect(get(res, 'web', 'elsewhere').ips).toEqual(['10.0.0.10']);
    expect(poolCounters(parsePools(pools).pools[0], res.usage.get('p') ?? [])).toMatchObject({ assignedIPv4: 1, availableIPv4: 253 });
  });

  it('refuses sharing on a port clash, a different key, a missing key, or different Local backends', () => {
    const res = run({
      pools,
      services: [
        service('first', { ...shared('k', 80, { local: true, selector: { app: 'x' } }), created: '2026-01-01T00:00:00Z' }),
        service('same-port', shared('k', 80, { local: true, selector: { app: 'x' } })),
        service('other-key', shared('j', 81)),
        service('no-key', { loadBalancerIP: '10.0.0.10', ports: [{ port: 82 }] }),
        service('other-selector', shared('k', 83, { local: true, selector: { app: 'y' } })),
        service('cluster-policy', shared('k', 84)),
        service('same-selector', shared('k', 85, { local: true, selector: { app: 'x' } })),
      ],
    });
    const msg = (n: string) => [get(res, n).reason, get(res, n).message];
    expect(ipsOf(res, 'first')).toEqual(['10.0.0.10']);
    expect(msg('same-port')).toEqual(['SharingConflict', 'port TCP/80 is already in use on "10.0.0.10" by default/first']);
    expect(msg('other-key')).toEqual(['SharingConflict', 'address 10.0.0.10 is in use by default/first with sharing key "k", not "j"']);
    expect(msg('no-key')).toEqual(['SharingConflict', 'address 10.0.0.10 is in use by default/first; this Service does not allow sharing (no allow-shared-ip annotation)']);
    expect(msg('other-selector')[1]).toMatch(/^address 10.0.0.10 is in use by default\/first with other backends/);
    expect(msg('cluster-policy')[0]).toBe('SharingConflict');
    expect(ipsOf(res, 'same-selector')).toEqual(['10.0.0.10']);
  });

  it('co-locates automatically allocated Services with the same key', () => {
    const res = run({
      pools,
      services: [
        service('a', { annotations: { [MLB('allow-shared-ip')]: 'k' }, ports: [{ port: 80 }], created: '2026-01-01T00:00:00Z' }),
        service('b', { annotations: { [MLB('allow-shared-ip')]: 'k' }, ports: [{ port: 443 }] }),
        service('c', { annotations: { [MLB('allow-shared-ip')]: 'k' }, ports: [{ port: 443 }] }),
        service('d'),
      ],
    });
    expect([ipsOf(res, 'a'), ipsOf(res, 'b'), ipsOf(res, 'c'), ipsOf(res, 'd')]).toEqual([['10.0.0.1'], ['10.0.0.1'], ['10.0.0.2'], ['10.0.0.3']]);
  });

  it('lets a Service alone on its address change its sharing key in place', () => {
    const current = new Map([['default/a', ['10.0.0.10']]]);
    const res = run({ pools, services: [service('a', shared('new-key', 80))], current });
    expect(get(res, 'a')).toMatchObject({ ips: ['10.0.0.10'], changed: false, events: [] });
  });
});

describe('allocate: dual-stack', () => {
  const dualPool = pool('dual', ['10.0.0.0/24', '2001:db8::/120']);
  const v4Pool = pool('v4', ['10.1.0.0/24']);

  it('takes both families from one pool, IPv4 first in the ingress list whatever the ipFamilies order', () => {
    const res = run({ pools: [v4Pool, dualPool], services: svcs(['d', { families: ['IPv6', 'IPv4'], policy: 'RequireDualStack' }]) });
    expect(get(res, 'd')).toMatchObject({ ips: ['10.0.0.1', '2001:db8::1'], pool: 'dual' });
  });

  it('leaves RequireDualStack pending when no pool holds both families, and when the Service has one ClusterIP', () => {
    const res = run({
      pools: [v4Pool],
      services: svcs(['d', { families: ['IPv4', 'IPv6'], policy: 'RequireDualStack' }], ['single', { families: ['IPv4'], policy: 'RequireDualStack' }]),
    });
    expect(get(res, 'd')).toMatchObject({
      reason: 'NoPoolMatches',
      message: 'no available IPs: no IPAddressPool that may serve this Service has both IPv4 and IPv6 addresses (dual-stack addresses come from one pool)',
    });
    expect(get(res, 'single')).toMatchObject({ reason: 'DualStackUnavailable', events: [expect.objectContaining({ reason: 'not enough clusterips' })] });
  });

  it('PreferDualStack falls back to one family, then adds the other when the pool gains it', () => {
    const svc = service('p', { families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' });
    const first = run({ pools: [pool('grow', ['10.0.0.0/24'])], services: [svc] });
    expect(get(first, 'p')).toMatchObject({ ips: ['10.0.0.1'], pool: 'grow' });
    const still = run({ pools: [pool('grow', ['10.0.0.0/24'])], services: [svc], current: first.assignments });
    expect(get(still, 'p')).toMatchObject({ ips: ['10.0.0.1'], changed: false, events: [{ type: 'Normal', reason: 'AdditionalAssignFailed' }] });
    const later = run({ pools: [pool('grow', ['10.0.0.0/24', '2001:db8::/120'])], services: [svc], current: first.assignments });
    expect(get(later, 'p')).toMatchObject({
      ips: ['10.0.0.1', '2001:db8::1'],
      changed: true,
      events: [{ type: 'Normal', reason: 'IPAllocated', message: 'Assigned additional IP "2001:db8::1"' }],
    });
  });

  it('PreferDualStack prefers a pool with both families over an earlier single-family one', () => {
    const res = run({ pools: [pool('a-v4', ['10.1.0.0/24']), pool('b-dual', ['10.0.0.0/24', '2001:db8::/120'])], services: svcs(['p', { families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' }]) });
    expect(get(res, 'p').pool).toBe('b-dual');
  });
});

describe('allocate: stickiness and change', () => {
  const pools = [pool('p', ['10.0.0.0/24'])];

  it('keeps held addresses across a restart, before any pending Service is considered', () => {
    // After a restart the assignments come from the Services' status; the pending Service is older and asks for the held address.
    const holder = service('holder', { ingress: ['10.0.0.7'], created: '2026-05-01T00:00:00Z' });
    const greedy = service('greedy', { loadBalancerIP: '10.0.0.7', created: '2026-01-01T00:00:00Z' });
    const current = assignmentsFromServices([holder, greedy]);
    expect(current).toEqual(new Map([['default/holder', ['10.0.0.7']]]));
    const res = run({ pools, services: [greedy, holder], current });
    expect(get(res, 'holder')).toMatchObject({ ips: ['10.0.0.7'], changed: false, events: [] });
    expect(get(res, 'greedy')).toMatchObject({ outcome: 'pending', reason: 'SharingConflict', message: expect.stringContaining('default/holder') });
    // A newcomer does not get the held address either.
    expect(ipsOf(run({ pools, services: [holder, service('new')], current }), 'new')).toEqual(['10.0.0.1']);
  });

  it('does not hand a freed address to the next Service: never-used first, then least recently freed', () => {
    const tiny = [pool('tiny', ['10.0.0.1-10.0.0.3'])];
    const one = run({ pools: tiny, services: svcs(['a'], ['b']), now: 100 });
    expect([ipsOf(one, 'a'), ipsOf(one, 'b')]).toEqual([['10.0.0.1'], ['10.0.0.2']]);
    // a is deleted: its address is recorded as freed, and c gets a never-used one.
    const two = run({ pools: tiny, services: svcs(['b'], ['c']), current: one.assignments, freedAt: one.freedAt, now: 200 });
    expect(two.services.get('default/a')).toMatchObject({ outcome: 'released', reason: 'ServiceDeleted', changed: true });
    expect(two.freedAt).toEqual(new Map([['10.0.0.1', 200]]));
    expect(ipsOf(two, 'c')).toEqual(['10.0.0.3']);
    // b is deleted too (freed later than a's address): d gets a's address, the least recently freed.
    const three = run({ pools: tiny, services: svcs(['c'], ['d']), current: two.assignments, freedAt: two.freedAt, now: 300 });
    expect(ipsOf(three, 'd')).toEqual(['10.0.0.1']);
    expect(three.freedAt).toEqual(new Map([['10.0.0.2', 300]]));
  });

  it('bounds the free-time record by dropping the oldest entries', () => {
    const freedAt = new Map([['10.0.0.5', 1], ['10.0.0.6', 2], ['10.0.0.7', 3]]);
    const res = allocate({ pools: parsePools(pools).pools, services: [], current: new Map(), freedAt, now: 9, freedRecordLimit: 2 });
    expect(res.freedAt).toEqual(new Map([['10.0.0.6', 2], ['10.0.0.7', 3]]));
  });

  it('moves Services off a shrunk pool, and clears them when no pool is left', () => {
    const current = new Map([['default/a', ['10.0.0.200']], ['default/b', ['10.0.0.5']]]);
    const res = run({ pools: [pool('p', ['10.0.0.0/25']), pool('q', ['10.9.0.0/24'])], services: svcs(['a'], ['b']), current });
    expect(get(res, 'b')).toMatchObject({ ips: ['10.0.0.5'], changed: false });
    expect(get(res, 'a')).toMatchObject({ ips: ['10.0.0.1'], pool: 'p', changed: true });
    expect(get(res, 'a').events).toEqual([
      {
        type: 'Normal',
        reason: 'ClearAssignment',
        message: 'current IP for "default/a" not allowed by config, will attempt for new IP assignment: IP 10.0.0.200 is not in any IPAddressPool',
      },
      { type: 'Normal', reason: 'IPAllocated', message: 'Assigned IP ["10.0.0.1"]' },
    ]);
    expect(res.freedAt.get('10.0.0.200')).toBe(1000);
    const gone = run({ pools: [], services: svcs(['a'], ['b']), current });
    expect(get(gone, 'b')).toMatchObject({ outcome: 'pending', ips: [], changed: true, reason: 'NoPoolMatches' });
    expect(gone.assignments.size).toBe(0);
  });

  it('moves a Service whose pool no longer admits its namespace', () => {
    const current = new Map([['default/a', ['10.0.0.5']]]);
    const res = run({ pools: [pool('p', ['10.0.0.0/24'], { serviceAllocation: { namespaces: ['other'] } }), pool('q', ['10.9.0.0/24'])], services: svcs(['a']), current });
    expect(get(res, 'a')).toMatchObject({ ips: ['10.9.0.1'], events: [expect.objectContaining({ reason: 'ClearAssignment' }), expect.objectContaining({ reason: 'IPAllocated' })] });
  });

  it('drains a disabled pool: holders keep their address, nobody gets a new one', () => {
    const drained = [pool('p', ['10.0.0.0/24'], { disabled: true }), pool('q', ['10.9.0.0/24'])];
    const current = new Map([['default/holder', ['10.0.0.5']]]);
    const res = run({ pools: drained, services: svcs(['holder'], ['new'], ['asks', { loadBalancerIP: '10.0.0.9' }]), current });
    expect(get(res, 'holder')).toMatchObject({ ips: ['10.0.0.5'], changed: false });
    expect(ipsOf(res, 'new')).toEqual(['10.9.0.1']);
    expect(get(res, 'asks')).toMatchObject({ reason: 'PoolDisabled', message: 'IPAddressPool "p" is disabled (draining): no new allocations' });
  });

  it('releases the address when the Service stops being a LoadBalancer', () => {
    const current = new Map([['default/a', ['10.0.0.5']]]);
    const res = run({ pools, services: [service('a', { type: 'ClusterIP' })], current, now: 42 });
    expect(get(res, 'a')).toEqual({ key: 'default/a', outcome: 'released', reason: 'NotLoadBalancer', message: 'the Service is no longer of type LoadBalancer', ips: [], changed: true, events: [] });
    expect(res.freedAt).toEqual(new Map([['10.0.0.5', 42]]));
    expect(res.assignments.size).toBe(0);
  });

  it('follows a changed request: another IP, another pool', () => {
    const current = new Map([['default/a', ['10.0.0.5']], ['default/b', ['10.0.0.6']]]);
    const res = run({
      pools: [pool('p', ['10.0.0.0/24']), pool('q', ['10.9.0.0/24'])],
      services: svcs(['a', { loadBalancerIP: '10.0.0.50' }], ['b', { annotations: { [MLB('address-pool')]: 'q' } }]),
      current,
    });
    expect(get(res, 'a')).toMatchObject({ ips: ['10.0.0.50'], changed: true });
    expect(get(res, 'b')).toMatchObject({ ips: ['10.9.0.1'], pool: 'q', changed: true });
    expect(res.freedAt).toEqual(new Map([['10.0.0.5', 1000], ['10.0.0.6', 1000]]));
  });

  it('keeps the address of a Service whose request annotation became invalid, with a warning', () => {
    const current = new Map([['default/a', ['10.0.0.5']]]);
    const res = run({ pools, services: svcs(['a', { annotations: { [MLB('loadBalancerIPs')]: 'nonsense' } }]), current });
    expect(get(res, 'a')).toMatchObject({ outcome: 'assigned', ips: ['10.0.0.5'], changed: false, events: [expect.objectContaining({ type: 'Warning', reason: 'LoadBalancerFailed' })] });
  });

  it('resolves two Services claiming one address (e.g. after a bug) in favour of the older', () => {
    const current = new Map([['default/young', ['10.0.0.5']], ['default/old', ['10.0.0.5']]]);
    const res = run({
      pools,
      services: [service('young', { created: '2026-03-01T00:00:00Z' }), service('old', { created: '2026-01-01T00:00:00Z' })],
      current,
    });
    expect(ipsOf(res, 'old')).toEqual(['10.0.0.5']);
    expect(get(res, 'young')).toMatchObject({ ips: ['10.0.0.1'], events: [expect.objectContaining({ reason: 'ClearAssignment' }), expect.objectContaining({ reason: 'IPAllocated' })] });
  });

  it('is deterministic and idempotent: feeding the result back changes nothing', () => {
    const services = Array.from({ length: 40 }, (_, i) => service(`s${i}`, { created: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z` }));
    const pools2 = [pool('small', ['10.0.0.0/28']), pool('big', ['10.1.0.0/24'])];
    const a = run({ pools: pools2, services });
    const b = run({ pools: [...pools2].reverse(), services: [...services].reverse() });
    expect(b.assignments).toEqual(a.assignments);
    const again = run({ pools: pools2, services, current: a.assignments, freedAt: a.freedAt });
    expect([...again.services.values()].filter((s) => s.changed || s.events.length > 0)).toEqual([]);
  });

  it('allocates from a huge IPv6 pool without walking it', () => {
    const res = run({ pools: [pool('v6', ['2001:db8::/64'])], services: Array.from({ length: 200 }, (_, i) => service(`s${i}`, { families: ['IPv6'] })) });
    expect(ipsOf(res, 's0')).toHaveLength(1);
    expect(new Set([...res.assignments.values()].flat()).size).toBe(200);
  });
});

describe('allocate: addresses another host holds (pool status.conflicts)', () => {
  const conflicts = new Map([['10.0.0.1', 'address 10.0.0.1 is in use on the LAN by 02:00:00:00:00:99']]);

  it('never hands one out', () => {
    const res = run({ pools: [pool('p', ['10.0.0.0/24'])], services: svcs(['a']), conflicts });
    expect(ipsOf(res, 'a')).toEqual(['10.0.0.2']);
  });

  it('moves a Service holding one (it was never announced) to another address of its pool, and says why', () => {
    const res = run({ pools: [pool('p', ['10.0.0.0/24'])], services: svcs(['a']), current: new Map([['default/a', ['10.0.0.1']]]), conflicts });
    expect(get(res, 'a')).toMatchObject({ outcome: 'assigned', ips: ['10.0.0.2'], changed: true });
    expect(get(res, 'a').events[0]).toEqual({
      type: 'Normal',
      reason: 'ClearAssignment',
      message: 'current IP for "default/a" not allowed by config, will attempt for new IP assignment: address 10.0.0.1 is in use on the LAN by 02:00:00:00:00:99',
    });
  });

  it('skips one among freed addresses too', () => {
    const res = run({ pools: [pool('p', ['10.0.0.1/32', '10.0.0.2/32'])], services: svcs(['a']), freedAt: new Map([['10.0.0.1', 1], ['10.0.0.2', 2]]), conflicts });
    expect(ipsOf(res, 'a')).toEqual(['10.0.0.2']);
  });

  it('leaves a Service that asks for one by name pending, with reason AddressConflict', () => {
    const res = run({ pools: [pool('p', ['10.0.0.0/24'])], services: svcs(['a', { annotations: { [MLB('loadBalancerIPs')]: '10.0.0.1' } }]), conflicts });
    expect(get(res, 'a')).toMatchObject({ outcome: 'pending', reason: 'AddressConflict', message: conflicts.get('10.0.0.1') });
  });
});
