// The speaker's parts without a network or an API server: the announcement plan, peer liveness on the local clock,
// the lease fence, interface choice and the announcer over fake packet sockets.
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { ApiError, type KubeClient } from '../runtime/client.js';
import { microTime } from '../runtime/leader-election.js';
import { createLogger, silentLogger, type Logger } from '../runtime/log.js';
import type { EndpointSlice, Lease, Node, Service } from '../../api/wire.js';
import { parsePools } from '../../allocators/loadbalancer/pools.js';
import { pool, service } from '../../testing/lb.js';
import { parseL2Advertisements } from './advertisements.js';
import { Announcer, MAX_REQUEST_AGE_MS } from './announcer.js';
import { buildArpRequest, buildGratuitousArp, buildNeighborSolicitation, ipv6MulticastMac, parseFrame, solicitedNodeMulticast } from './frames.js';
import { chooseInterfaces, DEFAULT_EXCLUDE_PATTERNS, type SystemInterface } from './interfaces.js';
import { ANSWERING_ANNOTATION, INTERFACES_ANNOTATION, NodeLease, SpeakerLiveness, leaseNameFor } from './node-lease.js';
import { FENCED_BY_ANNOTATION } from './lease-fence.js';
import { deputyFor, planAnnouncements, serviceAddresses, type PlanInputs } from './plan.js';
import type { RawSocket, RawSocketOptions } from './raw-socket.js';

const node = (name: string): Node => ({ metadata: { name, labels: {} } });
const ready = (nodeName: string): EndpointSlice => ({ metadata: { name: 's' }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.0.1'], conditions: { ready: true }, nodeName }] });

describe('announcement plan', () => {
  const inputs = (o: Partial<PlanInputs> = {}): PlanInputs => ({
    self: 'n1',
    services: [service('web', { ingress: ['2001:db8::5', '192.0.2.5'], families: ['IPv6', 'IPv4'], policy: 'RequireDualStack' })],
    slicesOf: () => [ready('n1')],
    nodes: ['n1', 'n2', 'n3'].map(node),
    live: new Set(['n1', 'n2', 'n3']),
    pools: parsePools([pool('lan', ['192.0.2.0/24', '2001:db8::/64'])]).pools,
    advertisements: parseL2Advertisements([{ metadata: { name: 'all' } }]).advertisements,
    published: new Map(),
    ...o,
  });

  it('elects one node per Service, keyed on the first (IPv4) address, and gives the winner a table entry per address', () => {
    expect(serviceAddresses(inputs().services[0])).toEqual(['192.0.2.5', '2001:db8::5']);
    const winners = ['n1', 'n2', 'n3'].map((self) => planAnnouncements(inputs({ self })));
    const winner = winners[0].services.get('default/web')?.result.winner;
    expect(winners.filter((p) => p.table.size > 0)).toHaveLength(1);
    expect([...winners[['n1', 'n2', 'n3'].indexOf(winner ?? '')].table.keys()]).toEqual(['192.0.2.5', '2001:db8::5']);
  });

  it('skips nodes whose published interfaces cannot reach the address, and never announces without an advertisement', () => {
    const published = new Map([
      ['n1', [{ name: 'eth0', cidrs: ['10.0.0.1/24'] }]],
      ['n2', [{ name: 'eth0', cidrs: ['10.0.0.2/24'] }]],
      ['n3', [{ name: 'eth9', cidrs: ['192.0.2.13/24'] }]],
    ]);
    expect(planAnnouncements(inputs({ published })).services.get('default/web')?.result).toMatchObject({ winner: 'n3', reason: 'Elected' });
    expect(planAnnouncements(inputs({ advertisements: [] })).services.get('default/web')?.result.reason).toBe('NoL2Advertisement');
  });

  it('gives an address shared by Services with different elections to the one with the smallest key', () => {
    const shared = [
      service('a', { ingress: ['192.0.2.7'], annotations: { 'metallb.io/allow-shared-ip': 'k' } }),
      service('b', { ingress: ['2001:db8::7', '192.0.2.7'], families: ['IPv4', 'IPv6'], policy: 'RequireDualStack', annotations: { 'metallb.io/allow-shared-ip': 'k' } }),
    ];
    const plans = ['n1', 'n2', 'n3'].map((self) => planAnnouncements(inputs({ self, services: shared })));
    for (const address of ['192.0.2.7', '2001:db8::7']) expect(plans.filter((p) => p.table.has(address))).toHaveLength(1);
  });

  it('ignores Services without addresses, of another class, or not LoadBalancer', () => {
    const services: Service[] = [service('none'), service('other', { ingress: ['192.0.2.8'], loadBalancerClass: 'x/y' }), service('cip', { type: 'ClusterIP', ingress: ['192.0.2.9'] })];
    expect(planAnnouncements(inputs({ services })).services.size).toBe(0);
  });

  it('names one deputy among live nodes for a Service nobody announces', () => {
    const live = new Set(['n1', 'n2', 'n3']);
    const deputy = deputyFor('default/web', live);
    expect(live.has(deputy ?? '')).toBe(true);
    live.delete(deputy ?? '');
    expect(deputyFor('default/web', live)).not.toBe(deputy);
    expect(deputyFor('default/web', new Set())).toBeUndefined();
  });
});

const lease = (holder: string, renewMs: number, o: { name?: string; interfaces?: string; answering?: string; fencedBy?: string } = {}): Lease => ({
  metadata: {
    name: o.name ?? leaseNameFor(holder),
    annotations: {
      ...(o.interfaces ? { [INTERFACES_ANNOTATION]: o.interfaces } : {}),
      ...(o.answering ? { [ANSWERING_ANNOTATION]: o.answering } : {}),
      ...(o.fencedBy ? { [FENCED_BY_ANNOTATION]: o.fencedBy } : {}),
    },
  },
  spec: { holderIdentity: holder, leaseDurationSeconds: 2, renewTime: microTime(renewMs) },
});

describe('peer liveness', () => {
  it('judges leases on this node’s clock: first sight counts from a past renewTime, later renewals from when they are seen', () => {
    const l = new SpeakerLiveness();
    expect(l.observe(lease('dead', 0), 10_000)).toBe(true);
    expect(l.live(10_000)).toEqual(new Set());
    l.observe(lease('fresh', 9_500), 10_000);
    expect(l.live(10_000)).toEqual(new Set(['fresh']));
    expect(l.nextExpiry(10_000)).toBe(11_500);
    // A peer whose clock runs 60 s ahead: its renewTime is in our future, so we count from now.
    expect(l.observe(lease('ahead', 70_000), 10_000)).toBe(true);
    expect(l.live(11_900)).toEqual(new Set(['ahead']));
    // A renewal of a live lease changes nothing; one of an expired lease brings it back.
    expect(l.observe(lease('ahead', 71_000), 11_000)).toBe(false);
    expect(l.observe(lease('fresh', 12_000), 12_000)).toBe(true);
    expect(l.live(12_500)).toEqual(new Set(['ahead', 'fresh']));
    l.forget(lease('fresh', 0));
    expect(l.live(12_500)).toEqual(new Set(['ahead']));
  });

  it('reads what each node published about its interfaces', () => {
    const l = new SpeakerLiveness();
    l.observe(lease('a', 0, { interfaces: '[{"name":"eth0","cidrs":["192.0.2.1/24"]}]' }), 0);
    l.observe(lease('b', 0, { interfaces: 'not json' }), 0);
    expect(l.published()).toEqual(new Map([['a', [{ name: 'eth0', cidrs: ['192.0.2.1/24'] }]]]));
    expect(leaseNameFor('x'.repeat(300))).toMatch(/^speaker-[0-9a-f]{32}$/);
  });

  it('reads which addresses the other live nodes answer: a handover waits for them', () => {
    const l = new SpeakerLiveness();
    l.observe(lease('self', 10_000, { answering: '["192.0.2.1"]' }), 10_000);
    l.observe(lease('peer', 10_000, { answering: '["192.0.2.2","2001:db8::2"]' }), 10_000);
    l.observe(lease('gone', 0, { answering: '["192.0.2.3"]' }), 10_000);
    l.observe(lease('odd', 10_000, { answering: '{"not":"a list"}' }), 10_000);
    expect(l.answeredByOthers('self', 10_500)).toEqual(new Map([['192.0.2.2', 'peer'], ['2001:db8::2', 'peer']]));
    expect(l.answeredByOthers('self', 12_500)).toEqual(new Map()); // the peer's lease expired: it has stopped
  });

  it('suspects a dead Lease until it is fenced; a fenced Lease is dead at once, but what it lists blocks for a duration after we first saw it', () => {
    const l = new SpeakerLiveness();
    // Seen at 10 s with a renewTime of 9 s (its clock may be behind ours) and a 2 s duration: dead in our view at 11 s.
    l.observe(lease('peer', 9_000, { answering: '["192.0.2.2"]' }), 10_000);
    l.observe(lease('self', 10_000), 10_000);
    expect(l.suspects('self', 10_900)).toEqual([]);
    expect(l.suspects('self', 11_100).map((x) => x.spec?.holderIdentity)).toEqual(['peer']);
    expect(l.answeredByOthers('self', 11_100)).toEqual(new Map()); // dead, unfenced: the speaker gates on suspects instead
    // The fence lands (same renewTime, the annotation added): dead to everyone, no longer a suspect...
    l.observe(lease('peer', 9_000, { answering: '["192.0.2.2"]', fencedBy: 'self t rv=1' }), 11_200);
    expect(l.suspects('self', 11_200)).toEqual([]);
    expect(l.live(11_200)).toEqual(new Set(['self']));
    // ...but its addresses block until one duration after we FIRST saw that renewal (10 s + 2 s), not after its stamp.
    expect(l.answeredByOthers('self', 11_900)).toEqual(new Map([['192.0.2.2', 'peer']]));
    expect(l.nextExpiry(11_500)).toBe(12_000);
    expect(l.answeredByOthers('self', 12_000)).toEqual(new Map());
    // A fenced Lease is dead even within its duration of being seen.
    l.observe(lease('other', 12_000, { fencedBy: 'x' }), 12_000);
    expect(l.live(12_100).has('other')).toBe(false);
    // Its holder's renewal clears the fence: live again.
    l.observe(lease('other', 12_500), 12_500);
    expect(l.live(12_600).has('other')).toBe(true);
  });
});

describe('node lease fence', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('answers only while renewals succeed in time, and releases the lease on a graceful stop', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    let failing = false;
    const writes: Lease[] = [];
    const deleted: string[] = [];
    const fake = {
      path: () => '/apis/coordination.k8s.io/v1/namespaces/ns/leases/speaker-n1',
      request: async (_m: string, _p: string, body: Lease) => {
        if (failing) throw new Error('connection refused');
        writes.push(body);
        return { ...body, metadata: { ...body.metadata, resourceVersion: String(writes.length) } };
      },
      getOrUndefined: async () => undefined,
      create: async (_rt: unknown, body: Lease) => {
        if (failing) throw new ApiError(503, {}, 'POST', '/');
        writes.push(body);
        return { ...body, metadata: { ...body.metadata, resourceVersion: '1', uid: 'u1' } };
      },
      delete: async (_rt: unknown, name: string) => void deleted.push(name),
    } as unknown as KubeClient; // the four methods NodeLease uses
    const fences: boolean[] = [];
    let answering = ['192.0.2.200'];
    const renewals: string[][] = [];
    const nl = new NodeLease({
      client: fake,
      namespace: 'ns',
      node: 'n1',
      durationMs: 2000,
      renewIntervalMs: 500,
      log: silentLogger,
      interfaces: () => [{ name: 'eth0', cidrs: ['192.0.2.1/24'] }],
      answering: () => answering,
      onFenceChange: (f) => fences.push(f),
      onRenewed: (published) => renewals.push([...published]),
    });
    const stop = new AbortController();
    const running = nl.run(stop.signal);
    await jest.advanceTimersByTimeAsync(10);
    expect([nl.live, fences]).toEqual([true, [false]]);
    expect(writes[0].metadata?.annotations?.[INTERFACES_ANNOTATION]).toBe('[{"name":"eth0","cidrs":["192.0.2.1/24"]}]');
    expect(writes[0].spec).toMatchObject({ holderIdentity: 'n1', leaseDurationSeconds: 2 });
    expect(writes[0].metadata?.annotations?.[ANSWERING_ANNOTATION]).toBe('["192.0.2.200"]');
    expect([...nl.answering]).toEqual(['192.0.2.200']);
    // A change of what it answers is published at once, not at the next interval.
    answering = [];
    const before = writes.length;
    nl.renewSoon();
    await jest.advanceTimersByTimeAsync(1);
    expect(writes.length).toBe(before + 1);
    expect(writes.at(-1)!.metadata?.annotations?.[ANSWERING_ANNOTATION]).toBe('[]');
    expect(renewals.at(-1)).toEqual([]);
    // Something received before its window opened is never answered, even once live again.
    const openedAt = 1_000_000; // the first renewal started at the fake clock's start
    expect([nl.liveSince(openedAt), nl.liveSince(openedAt - 10)]).toEqual([true, false]);
    await jest.advanceTimersByTimeAsync(1000);
    expect(writes.length).toBeGreaterThanOrEqual(3);
    failing = true;
    const lastGood = Date.now();
    await jest.advanceTimersByTimeAsync(1500);
    expect(nl.live).toBe(true);
    await jest.advanceTimersByTimeAsync(500);
    expect([nl.live, fences]).toEqual([false, [false, true]]);
    expect(Date.now() - lastGood).toBeLessThanOrEqual(2000);
    const fencedAt = Date.now();
    failing = false;
    await jest.advanceTimersByTimeAsync(600);
    expect([nl.live, fences]).toEqual([true, [false, true, false]]);
    expect([nl.liveSince(fencedAt), nl.liveSince(Date.now())]).toEqual([false, true]);
    stop.abort();
    await running;
    await nl.release();
    expect([nl.live, deleted]).toEqual([false, ['speaker-n1']]);
  });
});

describe('interface choice', () => {
  const iface = (name: string, o: Partial<SystemInterface> = {}): SystemInterface => ({ name, flags: 0x1003, type: 1, mac: '02:00:00:00:00:01', cidrs: [], ...o });
  const exclude = DEFAULT_EXCLUDE_PATTERNS.map((p) => new RegExp(p));

  it('keeps up Ethernet interfaces that can ARP and are nobody’s port, and says why it skips the others', () => {
    const all = [
      iface('eth0', { carrier: true }),
      iface('lo', { type: 772 }),
      iface('eth1', { flags: 0x1002 }),
      iface('eth2', { flags: 0x1083 }),
      iface('eth3', { master: 'br0' }),
      iface('eth4', { carrier: false }),
      iface('br0'),
      iface('veth12'),
      iface('wg0', { type: 65534 }),
    ];
    const choice = chooseInterfaces(all, { include: [], exclude });
    expect(choice.eligible.map((i) => i.name)).toEqual(['br0', 'eth0']);
    expect(choice.skipped).toEqual([
      { name: 'eth1', reason: 'down' },
      { name: 'eth2', reason: 'NOARP or no broadcast' },
      { name: 'eth3', reason: 'port of br0 (answers there)' },
      { name: 'eth4', reason: 'no carrier' },
      { name: 'lo', reason: 'matches an exclude pattern' },
      { name: 'veth12', reason: 'matches an exclude pattern' },
      { name: 'wg0', reason: 'not Ethernet' },
    ]);
    expect(chooseInterfaces(all, { include: ['veth12'], exclude }).eligible.map((i) => i.name)).toEqual(['veth12']);
  });
});

interface FakeSocket {
  options: RawSocketOptions;
  sent: Buffer[];
  groups: Set<string>;
}

describe('announcer', () => {
  afterEach(() => {
    jest.useRealTimers();
  });
  const MAC = '02:00:00:00:00:0a';

  function setup(o: { mayAnswer?: (at: number) => boolean; onConflict?: (address: string, mac: string) => void; garpCount?: number; refreshIntervalMs?: number; log?: Logger } = {}) {
    const sockets: FakeSocket[] = [];
    const open = (options: RawSocketOptions): RawSocket => {
      const s: FakeSocket = { options, sent: [], groups: new Set() };
      sockets.push(s);
      return {
        send: (f: Uint8Array) => void s.sent.push(Buffer.from(f)),
        joinMulticast: (mac: string) => void s.groups.add(mac),
        leaveMulticast: (mac: string) => void s.groups.delete(mac),
        close: () => undefined,
      } as unknown as RawSocket; // the methods the announcer calls
    };
    const announcer = new Announcer({
      garpCount: o.garpCount ?? 3,
      garpIntervalMs: 300,
      refreshIntervalMs: o.refreshIntervalMs ?? 0,
      requireSubnet: true,
      mayAnswer: o.mayAnswer ?? (() => true),
      onConflict: o.onConflict,
      log: o.log ?? silentLogger,
      openSocket: open as typeof RawSocket.open,
    });
    announcer.setInterfaces([{ name: 'eth0', flags: 0x1003, type: 1, mac: MAC, cidrs: ['192.0.2.11/24', '2001:db8::11/64'] }]);
    const [arp, ndp] = sockets;
    return { announcer, arp, ndp };
  }
  const kinds = (frames: Buffer[]) =>
    frames.map((f) => {
      const p = parseFrame(f);
      if (!p.ok) return 'bad';
      return p.frame.kind === 'arp' ? `arp-${p.frame.arp.op === 1 ? 'request' : 'reply'} ${p.frame.arp.senderIp}` : `${p.frame.ndp.type} ${p.frame.ndp.target}`;
    });

  it('takes in an address that an interface gains (an IPv6 address after DAD) and answers in its subnet', () => {
    const { announcer, arp } = setup();
    announcer.setTable(new Map([['198.51.100.1', {}]]));
    expect(announcer.interfacesFor('198.51.100.1')).toEqual([]); // no subnet of eth0 holds it
    // JSON.stringify of the old description threw here (its prefixes hold bigints): the speaker exited.
    announcer.setInterfaces([{ name: 'eth0', flags: 0x1003, type: 1, mac: MAC, cidrs: ['192.0.2.11/24', '2001:db8::11/64', '198.51.100.11/24'] }]);
    expect(announcer.interfacesFor('198.51.100.1')).toEqual(['eth0']);
    arp.options.onFrame(buildArpRequest('02:00:00:00:00:99', '198.51.100.100', '198.51.100.1'), Date.now());
    expect(kinds(arp.sent).at(-1)).toBe('arp-reply 198.51.100.1');
  });

  it('announces a takeover with a burst of gratuitous ARP (both forms) and unsolicited NAs, then answers requests', async () => {
    jest.useFakeTimers();
    const { announcer, arp, ndp } = setup();
    announcer.setTable(new Map([['192.0.2.200', {}], ['2001:db8::200', {}], ['198.51.100.1', {}]]));
    expect(kinds(arp.sent)).toEqual(['arp-request 192.0.2.200', 'arp-reply 192.0.2.200']);
    expect(kinds(ndp.sent)).toEqual(['NA 2001:db8::200']);
    expect(ndp.groups).toEqual(new Set([ipv6MulticastMac(solicitedNodeMulticast('2001:db8::200'))]));
    await jest.advanceTimersByTimeAsync(1000);
    expect(arp.sent).toHaveLength(6);
    expect(ndp.sent).toHaveLength(3);
    expect(announcer.interfacesFor('192.0.2.200')).toEqual(['eth0']);
    expect(announcer.interfacesFor('198.51.100.1')).toEqual([]); // no subnet of eth0 holds it

    arp.options.onFrame(buildArpRequest('02:00:00:00:00:99', '192.0.2.100', '192.0.2.200'), Date.now());
    expect(kinds(arp.sent.slice(6))).toEqual(['arp-reply 192.0.2.200']);
    ndp.options.onFrame(buildNeighborSolicitation({ srcMac: '02:00:00:00:00:99', srcIp: '2001:db8::100', target: '2001:db8::200' }), Date.now());
    expect(kinds(ndp.sent.slice(3))).toEqual(['NA 2001:db8::200']);
    arp.options.onFrame(buildArpRequest('02:00:00:00:00:99', '192.0.2.100', '192.0.2.201'), Date.now());
    expect(arp.sent).toHaveLength(7);

    announcer.setTable(new Map());
    expect(ndp.groups).toEqual(new Set());
    arp.options.onFrame(buildArpRequest('02:00:00:00:00:99', '192.0.2.100', '192.0.2.200'), Date.now());
    expect(arp.sent).toHaveLength(7);
    announcer.close();
  });

  it('re-announces every address periodically when asked to', async () => {
    jest.useFakeTimers();
    const { announcer, arp } = setup({ garpCount: 1, refreshIntervalMs: 10_000 });
    announcer.setTable(new Map([['192.0.2.200', {}]]));
    await jest.advanceTimersByTimeAsync(25_000);
    expect(kinds(arp.sent)).toEqual(Array(3).fill(['arp-request 192.0.2.200', 'arp-reply 192.0.2.200']).flat());
    announcer.close();
  });

  it('answers an address it is handing over but sends no more gratuitous frames for it (burst or refresh)', async () => {
    jest.useFakeTimers();
    const { announcer, arp } = setup({ refreshIntervalMs: 500 });
    announcer.setTable(new Map([['192.0.2.200', {}]]));
    expect(arp.sent).toHaveLength(2);
    announcer.setTable(new Map([['192.0.2.200', { handingOver: true }]]));
    await jest.advanceTimersByTimeAsync(2000);
    expect(arp.sent).toHaveLength(2);
    arp.options.onFrame(buildArpRequest('02:00:00:00:00:99', '192.0.2.100', '192.0.2.200'), Date.now());
    expect(kinds(arp.sent.slice(2))).toEqual(['arp-reply 192.0.2.200']);
    announcer.close();
  });

  it('warns when another MAC claims an address it announces, but not in a planned handover overlap (either side)', () => {
    const lines: { level: string; msg: string }[] = [];
    const log = createLogger('test', { level: 'debug', write: (line) => void lines.push(JSON.parse(line) as { level: string; msg: string }) });
    const { announcer, arp } = setup({ log, garpCount: 1 });
    const claim = (address: string) => arp.options.onFrame(buildGratuitousArp('02:00:00:00:00:99', address, 'request'), Date.now());
    const about = (address: string) => lines.filter((l) => JSON.stringify(l).includes(`claims ${address},`)).map((l) => `${l.level} ${l.msg}`);
    announcer.setTable(new Map([['192.0.2.200', {}], ['192.0.2.201', { handingOver: true }], ['192.0.2.202', { inherited: true }]]));
    for (const address of ['192.0.2.200', '192.0.2.201', '192.0.2.202']) claim(address);
    expect(about('192.0.2.200')).toEqual(['warn not answering']);
    expect(about('192.0.2.201')).toEqual(['info the other side of a planned handover answers too']);
    expect(about('192.0.2.202')).toEqual(['info the other side of a planned handover answers too']);
    // Once the overlap is over, a claim is a conflict again: the overlap's line did not use up the minute's warning.
    announcer.setTable(new Map([['192.0.2.202', {}]]));
    claim('192.0.2.202');
    expect(about('192.0.2.202')).toEqual(['info the other side of a planned handover answers too', 'warn not answering']);
    announcer.close();
  });

  it('drops a request that arrived before this node could answer, or more than a second ago', async () => {
    jest.useFakeTimers();
    let since = 0;
    const { announcer, arp } = setup({ mayAnswer: (at) => at >= since });
    announcer.setTable(new Map([['192.0.2.200', {}]]));
    await jest.advanceTimersByTimeAsync(1000);
    const sent = arp.sent.length;
    const request = buildArpRequest('02:00:00:00:00:99', '192.0.2.100', '192.0.2.200');
    since = Date.now() - 100; // the window opened 100 ms ago: this request queued while frozen
    arp.options.onFrame(request, since - 5000);
    arp.options.onFrame(request, Date.now() - MAX_REQUEST_AGE_MS - 1);
    expect(arp.sent).toHaveLength(sent);
    arp.options.onFrame(request, Date.now() - 50);
    expect(kinds(arp.sent.slice(sent))).toEqual(['arp-reply 192.0.2.200']);
    announcer.close();
  });

  it('reports another MAC claiming an address it announces', () => {
    const conflicts: string[] = [];
    const { announcer, arp } = setup({ onConflict: (address, mac) => conflicts.push(`${address} ${mac}`) });
    announcer.setTable(new Map([['192.0.2.200', {}]]));
    arp.options.onFrame(buildGratuitousArp('02:00:00:00:00:77', '192.0.2.200', 'reply'), Date.now());
    expect(conflicts).toEqual(['192.0.2.200 02:00:00:00:00:77']);
    announcer.close();
  });

  it('stops a burst when the address goes and sends nothing while fenced', async () => {
    jest.useFakeTimers();
    let live = true;
    const { announcer, arp } = setup({ mayAnswer: () => live });
    announcer.setTable(new Map([['192.0.2.200', {}]]));
    announcer.setTable(new Map());
    await jest.advanceTimersByTimeAsync(1000);
    expect(arp.sent).toHaveLength(2);
    live = false;
    announcer.setTable(new Map([['192.0.2.201', { interfaces: new Set(['eth0']) }]]));
    arp.options.onFrame(buildArpRequest('02:00:00:00:00:99', '192.0.2.100', '192.0.2.201'), Date.now());
    expect(arp.sent).toHaveLength(2);
    announcer.close();
  });
});
