// The self-check and conflict-detection logic (l2-check.ts) and the prober (prober.ts) against the responder, over
// fake sockets: the prober's frames are handed to a real Announcer, whose answers are handed back.
import { describe, expect, it } from '@jest/globals';
import { silentLogger } from '../runtime/log.js';
import { service } from '../../testing/lb.js';
import { Announcer } from './announcer.js';
import { electionHash, type ElectionResult } from './election.js';
import { buildArp, buildArpReply, buildGratuitousArp, buildNeighborAdvertisement, parseFrame, ARP_REQUEST, BROADCAST_MAC, ZERO_MAC } from './frames.js';
import { L2_HEALTHY, OutcomeFilter, classify, l2HealthyCondition, preUseVerdict, proberFor, staleHealthKeys, withConflict, type AddressCheck } from './l2-check.js';
import { deputyFor, type ServicePlan } from './plan.js';
import { Prober } from './prober.js';
import type { RawSocket, RawSocketOptions } from './raw-socket.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const ROGUE = '02:00:00:00:00:99';
const OWNERS = new Map([
  [A, 'node-a'],
  [B, 'node-b'],
]);

function plan(winner: string | undefined, eligible: string[], addresses = ['192.0.2.200']): ServicePlan {
  const result: ElectionResult = { winner, reason: winner ? 'Elected' : 'NoEligibleNode', message: '', eligible, excluded: [] };
  return { key: 'app/web', service: service('web', { namespace: 'app' }), addresses, result };
}

describe('proberFor: one non-owner per Service', () => {
  const nodes = Array.from({ length: 20 }, (_, i) => `node-${i}`);
  const live = new Set(nodes);

  it('is the eligible node other than the winner with the smallest hash for the election key, never the winner', () => {
    const winner = 'node-3';
    const expected = nodes.filter((n) => n !== winner).sort((a, b) => (electionHash(a, '192.0.2.200') < electionHash(b, '192.0.2.200') ? -1 : 1))[0];
    expect(proberFor(plan(winner, nodes), live)).toBe(expected);
    expect(proberFor(plan(winner, nodes), live)).not.toBe(winner);
  });

  it('skips nodes that are not live', () => {
    const p = plan('node-3', ['node-3', 'node-4', 'node-5']);
    const first = proberFor(p, live);
    const second = proberFor(p, new Set([...live].filter((n) => n !== first)));
    expect(new Set([first, second])).toEqual(new Set(['node-4', 'node-5']));
  });

  it('when the winner is the only eligible node: a live node on the subnet that is not eligible, else the winner itself', () => {
    const solo = plan('node-3', ['node-3']);
    const onSubnet = ['node-3', 'node-7', 'node-8', 'node-9'];
    const byHash = onSubnet.filter((n) => n !== 'node-3').sort((a, b) => (electionHash(a, '192.0.2.200') < electionHash(b, '192.0.2.200') ? -1 : 1));
    expect(proberFor(solo, live, () => onSubnet)).toBe(byHash[0]);
    expect(proberFor(solo, new Set(nodes.filter((n) => n !== byHash[0])), () => onSubnet)).toBe(byHash[1]);
    // Eligible peers come first, whatever the subnet says.
    expect(proberFor(plan('node-3', ['node-3', 'node-4']), live, () => onSubnet)).toBe('node-4');
    // Nobody else on the subnet (or not live): the winner listens for other responders itself.
    expect(proberFor(solo, live, () => ['node-3'])).toBe('node-3');
    expect(proberFor(solo, new Set(['node-3', 'node-4']), () => onSubnet)).toBe('node-3');
    expect(proberFor(solo, new Set(['node-4']), () => onSubnet)).toBeUndefined();
  });

  it('is the deputy when nobody is elected (who then expects silence)', () => {
    expect(proberFor(plan(undefined, []), live)).toBe(deputyFor('app/web', live));
  });

  it('spreads the probing over the nodes: with 20 nodes and 1000 Services no node probes more than 10%', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const p = plan(nodes[i % 20], nodes, [`10.0.${i >> 8}.${i & 255}`]);
      const prober = proberFor(p, live)!;
      counts.set(prober, (counts.get(prober) ?? 0) + 1);
    }
    expect(Math.max(...counts.values())).toBeLessThan(100);
    expect(counts.size).toBe(20);
  });
});

describe('classify: what one probe says', () => {
  /** null: no node announces the address. */
  const check = (macs: string[], expected: string | null = 'node-a'): AddressCheck => classify('192.0.2.200', new Set(macs), expected ?? undefined, OWNERS);

  it('Answered: exactly the elected node', () => {
    expect(check([A])).toMatchObject({ outcome: 'Answered', foreign: [] });
  });
  it('NoAnswer: silence (for a Service nobody announces, silence is what is expected, still NoAnswer)', () => {
    expect(check([])).toMatchObject({ outcome: 'NoAnswer', message: 'nothing answers for 192.0.2.200, which node "node-a" announces it' });
    expect(check([], null)).toMatchObject({ outcome: 'NoAnswer', message: 'nothing answers for 192.0.2.200; no node announces it' });
  });
  it('ForeignResponder: a MAC that is no speaker’s, alone or beside the elected node, named in the message', () => {
    expect(check([ROGUE])).toEqual({
      address: '192.0.2.200',
      outcome: 'ForeignResponder',
      foreign: [ROGUE],
      message: `${ROGUE} answers for 192.0.2.200, which node "node-a" announces it: not a Switchboard speaker`,
    });
    expect(check([A, ROGUE])).toMatchObject({ outcome: 'ForeignResponder', foreign: [ROGUE], message: expect.stringContaining('node node-a answered too') });
    expect(check([ROGUE], null)).toMatchObject({ outcome: 'ForeignResponder' });
  });
  it('MultipleResponders: two speakers, or a speaker that is not the elected one', () => {
    expect(check([A, B])).toMatchObject({ outcome: 'MultipleResponders', message: 'nodes node-a, node-b all answer for 192.0.2.200; node "node-a" announces it' });
    expect(check([B])).toMatchObject({ outcome: 'MultipleResponders', message: 'node "node-b" answers for 192.0.2.200, but node "node-a" announces it' });
    expect(check([A], null)).toMatchObject({ outcome: 'MultipleResponders' });
  });
});

describe('l2HealthyCondition and OutcomeFilter', () => {
  const c = (address: string, macs: string[]) => classify(address, new Set(macs), 'node-a', OWNERS);

  it('the worst address speaks; all answered is True', () => {
    expect(l2HealthyCondition([c('192.0.2.200', [A]), c('2001:db8::200', [A])])).toEqual({
      type: 'L2Healthy',
      status: 'True',
      reason: 'Answered',
      message: '192.0.2.200, 2001:db8::200 answered by the elected node only',
    });
    expect(l2HealthyCondition([c('192.0.2.200', [A]), c('2001:db8::200', [])])).toMatchObject({ status: 'False', reason: 'NoAnswer' });
    expect(l2HealthyCondition([c('192.0.2.200', [A, B]), c('2001:db8::200', [ROGUE])])).toMatchObject({ status: 'False', reason: 'ForeignResponder' });
  });

  it('confirms an outcome after two identical probes in a row: one lost frame does not flip it', () => {
    const f = new OutcomeFilter(2);
    expect(f.record(c('192.0.2.200', [A]))).toBeUndefined();
    expect(f.record(c('192.0.2.200', [A]))?.outcome).toBe('Answered');
    expect(f.record(c('192.0.2.200', []))?.outcome).toBe('Answered'); // one miss
    expect(f.record(c('192.0.2.200', [A]))?.outcome).toBe('Answered');
    expect(f.record(c('192.0.2.200', [A, ROGUE]))?.outcome).toBe('Answered');
    expect(f.record(c('192.0.2.200', [A, ROGUE]))?.outcome).toBe('ForeignResponder');
    f.retain(new Set());
    expect(f.confirmed('192.0.2.200')).toBeUndefined();
  });
});

describe('conflict detection before first use', () => {
  it('a foreign MAC is a conflict, a speaker is a handover in flight, silence clears', () => {
    expect(preUseVerdict(new Set([ROGUE, A]), OWNERS)).toEqual({ kind: 'conflict', foreign: [ROGUE] });
    expect(preUseVerdict(new Set([B]), OWNERS)).toEqual({ kind: 'busy', nodes: ['node-b'] });
    expect(preUseVerdict(new Set(), OWNERS)).toEqual({ kind: 'clear' });
  });

  it('withConflict sets, replaces and removes one address, sorted', () => {
    const one = withConflict(undefined, '192.0.2.9', { address: '192.0.2.9', macs: [ROGUE] });
    const two = withConflict(one, '192.0.2.10', { address: '192.0.2.10' });
    expect(two.map((c) => c.address)).toEqual(['192.0.2.10', '192.0.2.9']);
    expect(withConflict(two, '192.0.2.9', { address: '192.0.2.9', macs: [B] })).toEqual([{ address: '192.0.2.10' }, { address: '192.0.2.9', macs: [B] }]);
    expect(withConflict(two, '192.0.2.10', undefined)).toEqual(one);
  });
});

interface FakeSocket {
  options: RawSocketOptions;
  sent: Buffer[];
}

function fakeOpen(sockets: FakeSocket[]) {
  return ((options: RawSocketOptions): RawSocket => {
    const s: FakeSocket = { options, sent: [] };
    sockets.push(s);
    return { send: (f: Uint8Array) => void s.sent.push(Buffer.from(f)), joinMulticast: () => undefined, leaveMulticast: () => undefined, close: () => undefined } as unknown as RawSocket;
  }) as typeof RawSocket.open;
}

const IFACE = (mac: string) => [{ name: 'eth0', flags: 0x1003, type: 1, mac, cidrs: ['192.0.2.11/24', '2001:db8::11/64', `fe80::${mac.slice(-2)}/64`] }];

describe('Prober', () => {
  /** A prober on node B and a responder (announcer) on node A, wired by fake sockets: A answers what B sends. */
  function lan(table: Map<string, object>, rate = 1000) {
    const proberSockets: FakeSocket[] = [];
    const responderSockets: FakeSocket[] = [];
    const prober = new Prober({ ratePerSecond: rate, requireSubnet: true, log: silentLogger, openSocket: fakeOpen(proberSockets) });
    prober.setInterfaces(IFACE(B));
    const announcer = new Announcer({ garpCount: 0, garpIntervalMs: 0, refreshIntervalMs: 0, requireSubnet: true, mayAnswer: () => true, log: silentLogger, openSocket: fakeOpen(responderSockets) });
    announcer.setInterfaces(IFACE(A));
    announcer.setTable(table);
    const [parp, pndp] = proberSockets;
    const [rarp, rndp] = responderSockets;
    // What the prober sends reaches the responder; what the responder sends reaches the prober.
    const wire = (from: FakeSocket, to: FakeSocket) => {
      const push = from.sent.push.bind(from.sent);
      from.sent.push = (...frames: Buffer[]) => {
        for (const f of frames) queueMicrotask(() => to.options.onFrame(f, Date.now()));
        return push(...frames);
      };
    };
    wire(parp, rarp);
    wire(pndp, rndp);
    wire(rarp, parp);
    wire(rndp, pndp);
    return { prober, announcer, parp, pndp };
  }
  const shape = { count: 2, intervalMs: 10, waitMs: 30 };

  it('sends RFC 5227 ARP probes (sender 0.0.0.0) and neighbor solicitations, and collects the responder’s MAC', async () => {
    const { prober, announcer, parp, pndp } = lan(new Map([['192.0.2.200', {}], ['2001:db8::200', {}]]));
    expect(await prober.probe('192.0.2.200', shape, 'conflict')).toEqual(new Set([A]));
    const probe = parseFrame(parp.sent[0]);
    expect(probe.ok && probe.frame.kind === 'arp' && probe.frame.arp).toMatchObject({ op: ARP_REQUEST, senderIp: '0.0.0.0', senderMac: B, targetIp: '192.0.2.200', targetMac: ZERO_MAC });
    expect(parp.sent).toHaveLength(2);
    // Before first use a DAD probe (answered to all nodes); the self-check asks from the link-local address (answered unicast).
    expect(await prober.probe('2001:db8::200', shape, 'conflict')).toEqual(new Set([A]));
    expect(await prober.probe('2001:db8::200', shape, 'self-check')).toEqual(new Set([A]));
    const sources = pndp.sent.map((f) => {
      const p = parseFrame(f);
      return p.ok && p.frame.kind === 'ndp' ? p.frame.ipv6.src : 'bad';
    });
    expect(sources).toEqual(['::', '::', 'fe80::b', 'fe80::b']);
    expect(await prober.probe('192.0.2.201', shape, 'self-check')).toEqual(new Set()); // nobody announces it
    expect(await prober.probe('198.51.100.1', shape, 'self-check')).toBeUndefined(); // no subnet of eth0 holds it
    announcer.close();
    prober.close();
  });

  it('counts any ARP frame claiming the address and advertisements for it, not other probers', async () => {
    const { prober, parp, pndp } = lan(new Map());
    const pending = prober.probe('192.0.2.200', { count: 1, intervalMs: 0, waitMs: 30 }, 'conflict');
    parp.options.onFrame(buildGratuitousArp(ROGUE, '192.0.2.200', 'request'), Date.now());
    parp.options.onFrame(buildArp({ op: ARP_REQUEST, ethDst: BROADCAST_MAC, ethSrc: B, senderMac: '02:00:00:00:00:77', senderIp: '0.0.0.0', targetMac: ZERO_MAC, targetIp: '192.0.2.200' }), Date.now());
    parp.options.onFrame(buildArpReply({ op: ARP_REQUEST, senderMac: B, senderIp: '0.0.0.0', targetMac: ZERO_MAC, targetIp: '192.0.2.201' }, '02:00:00:00:00:55', '192.0.2.201'), Date.now());
    expect(await pending).toEqual(new Set([ROGUE]));
    const six = prober.probe('2001:db8::200', { count: 1, intervalMs: 0, waitMs: 30 }, 'conflict');
    pndp.options.onFrame(
      buildNeighborAdvertisement({ srcMac: ROGUE, dstMac: '33:33:00:00:00:01', srcIp: '2001:db8::200', dstIp: 'ff02::1', target: '2001:db8::200', solicited: false, override: true, targetLinkLayer: ROGUE }),
      Date.now(),
    );
    expect(await six).toEqual(new Set([ROGUE]));
    prober.close();
  });

  it('paces every probe frame by the rate: 10 probes at 50/s take at least 180 ms', async () => {
    const { prober, parp } = lan(new Map(), 50);
    const started = Date.now();
    await Promise.all(Array.from({ length: 10 }, (_, i) => prober.probe(`192.0.2.${150 + i}`, { count: 1, intervalMs: 0, waitMs: 0 }, 'self-check')));
    expect(Date.now() - started).toBeGreaterThanOrEqual(175);
    expect(parp.sent).toHaveLength(10);
    prober.close();
  });
});

describe('stale L2Healthy conditions', () => {
  const healthy = (name: string, o: Parameters<typeof service>[1] = {}) => {
    const svc = service(name, { namespace: 'app', ...o });
    return { ...svc, status: { ...svc.status, conditions: [{ type: L2_HEALTHY, status: 'True', reason: 'Answered', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] } };
  };
  const live = new Set(['node-a', 'node-b', 'node-c']);
  const classes = { loadBalancerClass: 'switchboard.dev/l2', handleUnsetClass: true };
  const deputyOf = (key: string) => deputyFor(key, live) ?? '';

  it('are removed by the deputy once the Service left the plan, whatever made it leave', () => {
    const services = [healthy('gone-cluster-ip', { type: 'ClusterIP' }), healthy('no-ingress'), healthy('ours-class', { loadBalancerClass: 'switchboard.dev/l2' }), healthy('planned', { ingress: ['192.0.2.9'] })];
    const planned = new Set(['app/planned']);
    const removedBy = (key: string) => staleHealthKeys(services, planned, live, deputyOf(key), classes);
    for (const key of ['app/gone-cluster-ip', 'app/no-ingress', 'app/ours-class']) expect(removedBy(key)).toContain(key);
    expect(removedBy('app/planned')).not.toContain('app/planned');
    // Only by the deputy: another node leaves it.
    const other = [...live].find((n) => n !== deputyOf('app/no-ingress')) ?? '';
    expect(staleHealthKeys(services, planned, live, other, classes)).not.toContain('app/no-ingress');
  });

  it('of a LoadBalancer of another class are left to that class’s installation; of an unset class only when we handle unset', () => {
    const theirs = healthy('theirs', { loadBalancerClass: 'other.example/l2' });
    expect(staleHealthKeys([theirs], new Set(), live, deputyOf('app/theirs'), classes)).toEqual([]);
    // Two installations: each leaves the other's Service alone.
    expect(staleHealthKeys([theirs], new Set(), live, deputyOf('app/theirs'), { loadBalancerClass: 'other.example/l2' })).toEqual(['app/theirs']);
    const unset = healthy('unset');
    expect(staleHealthKeys([unset], new Set(), live, deputyOf('app/unset'), { ...classes, handleUnsetClass: false })).toEqual([]);
    // No longer a LoadBalancer: whatever its class said, nobody's prober maintains it.
    const turned = healthy('turned', { type: 'ClusterIP', loadBalancerClass: 'other.example/l2' });
    expect(staleHealthKeys([turned], new Set(), live, deputyOf('app/turned'), classes)).toEqual(['app/turned']);
  });
});
