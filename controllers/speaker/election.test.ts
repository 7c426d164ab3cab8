import { describe, expect, it } from '@jest/globals';
import type { L2Advertisement } from '../../crds/l2advertisement.js';
import type { Lease, Node, Service } from '../../api/wire.js';
import { errorString } from '../../api/status.js';
import { service } from '../../testing/lb.js';
import { advertisementsForPool, interfacesOf, parseL2Advertisements, validateL2Advertisement, type ParsedL2Advertisement } from './advertisements.js';
import { EXCLUDE_FROM_LB_LABEL, announcedCondition, assessNodes, elect, electionHash, servingEndpoints, type ElectionRequest, type NodeView } from './election.js';
import { SpeakerLiveness } from './node-lease.js';

const ad = (name: string, spec: L2Advertisement['spec'] = {}): L2Advertisement => ({ metadata: { name }, spec });
const parsedAds = (...ads: L2Advertisement[]): ParsedL2Advertisement[] => {
  const p = parseL2Advertisements(ads);
  expect(p.invalid).toEqual(new Map());
  return p.advertisements;
};
const node = (name: string, labels: Record<string, string> = {}, networkUnavailable = false): Node => ({
  metadata: { name, labels },
  status: { conditions: networkUnavailable ? [{ type: 'NetworkUnavailable', status: 'True' }] : [{ type: 'NetworkUnavailable', status: 'False' }] },
});
const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `node-${i}`);
const views = (nodeNames: string[], live: string[] = nodeNames): Map<string, NodeView> =>
  assessNodes(nodeNames.map((n) => node(n)), new Set(live));
const everywhere = { any: true, nodes: new Set<string>() };
const request = (addresses: string[], o: Partial<ElectionRequest> = {}): ElectionRequest => ({
  service: service('web'),
  addresses,
  advertisements: parsedAds(ad('all')),
  endpoints: everywhere,
  ...o,
});
const addressList = (n: number): string[] => Array.from({ length: n }, (_, i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`);
const winners = (nodesByName: Map<string, NodeView>, addresses: string[]): Map<string, string | undefined> =>
  new Map(addresses.map((a) => [a, elect(request([a]), nodesByName).winner]));

describe('L2Advertisement', () => {
  it('validates like the webhook', () => {
    const errors = validateL2Advertisement(
      ad('x', {
        ipAddressPools: ['a', 'a'],
        interfaces: ['eth0', 'this-name-is-too-long', 'eth0'],
        nodeSelectors: [{ matchExpressions: [{ key: 'k', operator: 'In' }] }],
        preferredNodeSelectors: [{ weight: 0, preference: {} }],
      }),
    ).map((e) => errorString(e));
    expect(errors).toEqual([
      'spec.ipAddressPools[1]: Duplicate value: "a"',
      "spec.nodeSelectors[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
      'spec.interfaces[2]: Duplicate value: "eth0"',
      'spec.interfaces[1]: Invalid value: "this-name-is-too-long": must be a network interface name: 1 to 15 characters without \'/\', \':\' or spaces',
      'spec.preferredNodeSelectors[0].weight: Invalid value: 0: must be an integer between 1 and 100',
    ]);
    expect(parseL2Advertisements([ad('bad', { interfaces: ['a/b'] })]).invalid.get('bad')).toHaveLength(1);
  });

  it('selects pools by name, by label, or all when neither is given; unions interfaces', () => {
    const ads = parsedAds(
      ad('by-name', { ipAddressPools: ['p', 'missing'], interfaces: ['eth1'] }),
      ad('by-label', { ipAddressPoolSelectors: [{ matchLabels: { l2: 'yes' } }], interfaces: ['eth2', 'eth1'] }),
      ad('any', {}),
    );
    expect(advertisementsForPool(ads, { name: 'p' }).map((a) => a.name)).toEqual(['any', 'by-name']);
    expect(advertisementsForPool(ads, { name: 'q', labels: { l2: 'yes' } }).map((a) => a.name)).toEqual(['any', 'by-label']);
    const specific = ads.filter((a) => a.name !== 'any');
    expect(interfacesOf(specific)).toEqual(['eth1', 'eth2']);
    expect(interfacesOf(ads)).toBeUndefined();
  });
});

describe('liveness and endpoints', () => {
  const lease = (holder: string, renew: string, seconds = 15): Lease => ({ metadata: { name: `speaker-${holder}` }, spec: { holderIdentity: holder, renewTime: renew, leaseDurationSeconds: seconds } });

  it('counts a speaker live while its Lease is fresh (MicroTime accepted), judged from when first seen', () => {
    const now = Date.parse('2026-01-01T00:00:20Z');
    const liveness = new SpeakerLiveness();
    for (const l of [
      lease('fresh', '2026-01-01T00:00:10.123456Z'),
      lease('stale', '2026-01-01T00:00:04Z'),
      { ...lease('released', '2026-01-01T00:00:19Z'), spec: { holderIdentity: '', renewTime: '2026-01-01T00:00:19Z', leaseDurationSeconds: 15 } },
      { metadata: { name: 'broken' }, spec: { holderIdentity: 'broken' } },
    ]) liveness.observe(l, now);
    expect([...liveness.live(now)]).toEqual(['fresh']);
    expect([...liveness.live(Date.parse('2026-01-01T00:00:25.200Z'))]).toEqual([]);
  });

  it('collects the nodes of serving endpoints (ready unset, ready, or serving while terminating)', () => {
    const e = servingEndpoints([
      {
        addressType: 'IPv4',
        endpoints: [
          { addresses: ['1.1.1.1'], nodeName: 'a', conditions: {} },
          { addresses: ['1.1.1.2'], nodeName: 'b', conditions: { ready: false, serving: true, terminating: true } },
          { addresses: ['1.1.1.3'], nodeName: 'c', conditions: { ready: false, serving: false } },
        ],
      },
    ]);
    expect(e.any).toBe(true);
    expect([...e.nodes].sort()).toEqual(['a', 'b']);
    expect(servingEndpoints([]).any).toBe(false);
  });
});

describe('election', () => {
  it('is the same on every node: independent of the order nodes are listed in', () => {
    const nodeNames = names(7);
    const forward = winners(views(nodeNames), addressList(200));
    const backward = winners(views([...nodeNames].reverse()), addressList(200));
    expect(backward).toEqual(forward);
    // The tie-break is MetalLB's: the smallest sha256(node#ip).
    const first = addressList(1)[0];
    const expected = [...nodeNames].sort((a, b) => (electionHash(a, first) < electionHash(b, first) ? -1 : 1))[0];
    expect(forward.get(first)).toBe(expected);
  });

  it('is stable: adding a node moves only the addresses it wins, removing one moves only its own', () => {
    const addresses = addressList(600);
    const before = winners(views(names(5)), addresses);
    const added = winners(views(names(6)), addresses);
    const moved = addresses.filter((a) => before.get(a) !== added.get(a));
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.every((a) => added.get(a) === 'node-5')).toBe(true);
    // A node whose speaker stops renewing its Lease loses exactly its addresses.
    const dead = winners(views(names(5), names(5).filter((n) => n !== 'node-2')), addresses);
    for (const a of addresses) {
      if (before.get(a) === 'node-2') expect(dead.get(a)).not.toBe('node-2');
      else expect(dead.get(a)).toBe(before.get(a));
    }
    // Spread: every node wins some addresses.
    expect(new Set(before.values()).size).toBe(5);
  });

  it('elects the same node for Services sharing an address', () => {
    const nodesByName = views(names(9));
    const a = elect(request(['10.0.0.7']), nodesByName);
    const b = elect(request(['10.0.0.7', '2001:db8::7'], { service: service('other') }), nodesByName);
    expect(b.winner).toBe(a.winner);
  });

  it('skips nodes that may not announce, and says why', () => {
    const nodes = [
      node('cp-1', { [EXCLUDE_FROM_LB_LABEL]: '' }),
      node('net-down', {}, true),
      node('gone'),
      node('wrong-zone', { zone: 'b' }),
      node('ok-1', { zone: 'a' }),
      node('ok-2', { zone: 'a' }),
    ];
    const nodesByName = assessNodes(nodes, new Set(['cp-1', 'net-down', 'wrong-zone', 'ok-1', 'ok-2']));
    const ads = parsedAds(ad('zone-a', { nodeSelectors: [{ matchLabels: { zone: 'a' } }] }));
    const r = elect(request(['10.0.0.1'], { advertisements: ads }), nodesByName);
    expect(r.eligible).toEqual(['ok-1', 'ok-2']);
    expect(r.excluded).toEqual([
      { node: 'cp-1', reason: 'ExcludedByLabel' },
      { node: 'gone', reason: 'SpeakerNotLive' },
      { node: 'net-down', reason: 'NetworkUnavailable' },
      { node: 'wrong-zone', reason: 'NoMatchingAdvertisement' },
    ]);
    expect(announcedCondition(r)).toEqual({
      type: 'Announced',
      status: 'True',
      reason: 'Elected',
      message: `announcing from node ${JSON.stringify(r.winner)} with protocol "layer2"`,
    });
    // --ignore-exclude-lb
    expect(assessNodes(nodes, new Set(['cp-1']), { ignoreExcludeLabel: true }).get('cp-1')?.exclusion).toBeUndefined();
    const none = elect(request(['10.0.0.1'], { advertisements: ads }), assessNodes(nodes.slice(0, 4), new Set(['cp-1', 'net-down', 'wrong-zone'])));
    expect(none.winner).toBeUndefined();
    expect(announcedCondition(none)).toMatchObject({ status: 'False', reason: 'NoEligibleNode' });
    expect(none).toMatchObject({
      reason: 'NoEligibleNode',
      message:
        'no node may announce 10.0.0.1: 1 labelled node.kubernetes.io/exclude-from-external-load-balancers (cp-1); 1 without a live speaker (gone); 1 with NetworkUnavailable=True (net-down); 1 not selected by the nodeSelectors of any L2Advertisement (wrong-zone)',
    });
  });

  it('restricts externalTrafficPolicy Local to nodes with serving local endpoints; nobody announces without endpoints', () => {
    const nodesByName = views(names(6));
    const local: Service = service('web', { local: true });
    const r = elect(request(['10.0.0.1'], { service: local, endpoints: { any: true, nodes: new Set(['node-4']) } }), nodesByName);
    expect(r.winner).toBe('node-4');
    expect(r.excluded.filter((e) => e.reason === 'NoLocalEndpoints')).toHaveLength(5);
    expect(elect(request(['10.0.0.1'], { endpoints: { any: false, nodes: new Set() } }), nodesByName)).toMatchObject({
      reason: 'NoServingEndpoints',
      eligible: [],
    });
  });

  it('makes the classic silent failures visible: no advertisement, shared IP with serviceSelectors', () => {
    const nodesByName = views(names(3));
    expect(elect(request(['10.0.0.1'], { advertisements: [] }), nodesByName)).toMatchObject({
      reason: 'NoL2Advertisement',
      message: 'no L2Advertisement covers the pool of 10.0.0.1; the address is allocated but not announced',
    });
    const selective = parsedAds(ad('web-only', { serviceSelectors: [{ matchLabels: { tier: 'web' } }] }));
    expect(elect(request(['10.0.0.1'], { advertisements: selective }), nodesByName)).toMatchObject({
      reason: 'NoL2Advertisement',
      message: 'no L2Advertisement whose serviceSelectors match the Service covers the pool of 10.0.0.1; the address is allocated but not announced',
    });
    const sharing = service('web', { labels: { tier: 'web' }, annotations: { 'metallb.io/allow-shared-ip': 'k' } });
    expect(elect(request(['10.0.0.1'], { advertisements: selective, service: sharing }), nodesByName).reason).toBe('SharedIPWithServiceSelector');
    expect(elect(request([]), nodesByName).reason).toBe('NoEligibleNode');
  });

  it('skips nodes known to lack the advertised interface and reports the interfaces of the winner', () => {
    const ads = parsedAds(ad('eth1-only', { interfaces: ['eth1'] }));
    const nodeInterfaces = new Map([
      ['node-0', new Set(['eth0'])],
      ['node-1', new Set(['eth0', 'eth1'])],
    ]);
    const r = elect(request(['10.0.0.1'], { advertisements: ads, nodeInterfaces }), views(['node-0', 'node-1']));
    expect(r).toMatchObject({ winner: 'node-1', interfaces: ['eth1'], excluded: [{ node: 'node-0', reason: 'MissingInterface' }] });
  });

  it('skips nodes with no interface able to answer when the advertisement allows every interface', () => {
    const nodeInterfaces = new Map([['node-0', new Set<string>()]]);
    const r = elect(request(['10.0.0.1'], { nodeInterfaces }), views(['node-0', 'node-1']));
    expect(r).toMatchObject({ winner: 'node-1', interfaces: undefined, excluded: [{ node: 'node-0', reason: 'MissingInterface' }] });
    const none = elect(request(['10.0.0.1'], { nodeInterfaces: new Map([['node-1', new Set<string>()], ...nodeInterfaces]) }), views(['node-0', 'node-1']));
    expect(none.message).toBe('no node may announce 10.0.0.1: 2 without an advertised interface on the address’s subnet (node-0, node-1)');
  });

  it('prefers nodes by preferredNodeSelectors weight before the hash', () => {
    const labelled = assessNodes([node('a'), node('b', { fast: 'yes' }), node('c', { fast: 'yes', ssd: 'yes' })], new Set(['a', 'b', 'c']));
    const ads = parsedAds(
      ad('pref', {
        preferredNodeSelectors: [
          { weight: 10, preference: { matchLabels: { fast: 'yes' } } },
          { weight: 5, preference: { matchLabels: { ssd: 'yes' } } },
        ],
      }),
    );
    for (const a of addressList(20)) expect(elect(request([a], { advertisements: ads }), labelled).winner).toBe('c');
  });
});
