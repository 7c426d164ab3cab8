// The heartbeat ring on a fake clock: several rings joined by an in-memory network that delivers what was sent in a
// round at the end of that round, and can drop datagrams one way or hold a frozen node's. Incarnations come from a
// seeded PRNG. The real UDP transport is tested on loopback in heartbeat-udp.test.ts.
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { Lease } from '../../api/wire.js';
import { createLogger, silentLogger, type Logger } from '../runtime/log.js';
import { prng } from '../../testing/prng.js';
import {
  ANSWER_WINDOW_ANNOTATION,
  HEARTBEAT_ANNOTATION,
  HeartbeatRing,
  answerWindowMs,
  decodeHeartbeat,
  encodeHeartbeat,
  formatHeartbeatEndpoint,
  heartbeatPeers,
  parseHeartbeatEndpoint,
  ringNeighbours,
  type Heartbeat,
  type HeartbeatPeer,
} from './heartbeat.js';
import { FENCED_BY_ANNOTATION } from './lease-fence.js';

const INTERVAL = 150;
const DEAD_AFTER = 600;
const ACK_TIMEOUT = 375;

const hex16 = (random: () => number): string =>
  Array.from({ length: 8 }, () => Math.floor(random() * 256))
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('');

interface Datagram {
  from: string;
  to: string;
  bytes: Buffer;
}

/** Rings on one fake clock, addressed 10.0.0.<i>:7947, with a network that delivers at the end of each round. */
class Lab {
  t = 1_000_000;
  readonly rings = new Map<string, HeartbeatRing>();
  readonly silentReports: { node: string; at: number; silent: string[] }[] = [];
  readonly ackedChanges: { node: string; at: number; acked: boolean }[] = [];
  /** Nodes that neither tick nor receive (stopped), or only hold what they receive (frozen). */
  readonly stopped = new Set<string>();
  readonly frozen = new Set<string>();
  /** Datagrams dropped on the way when this returns true. */
  drop: (from: string, to: string) => boolean = () => false;
  private inFlight: Datagram[] = [];
  private held: Datagram[] = [];
  private readonly random = prng(14_5);
  private readonly addresses = new Map<string, string>();

  constructor(readonly nodes: string[], private readonly judged: (node: string) => boolean = () => true) {
    nodes.forEach((n, i) => this.addresses.set(n, `10.0.0.${i + 1}`));
    for (const n of nodes) this.boot(n);
  }

  peers(nodes = this.nodes): HeartbeatPeer[] {
    return nodes.map((node) => ({ node, address: this.addresses.get(node) ?? '', port: 7947, judged: this.judged(node) }));
  }

  /** A (new) ring for `node`, with a fresh incarnation; every ring gets the full membership. */
  boot(node: string, log: Logger = silentLogger): HeartbeatRing {
    const ring = new HeartbeatRing({
      node,
      intervalMs: INTERVAL,
      now: () => this.t,
      incarnation: hex16(this.random),
      log,
      transport: {
        send: (bytes, address) => {
          const to = [...this.addresses].find(([, a]) => a === address)?.[0];
          if (to) this.inFlight.push({ from: node, to, bytes });
        },
        close: () => {},
      },
      onSilent: (silent) => this.silentReports.push({ node, at: this.t, silent }),
      onAckedChange: (acked) => this.ackedChanges.push({ node, at: this.t, acked }),
    });
    this.rings.set(node, ring);
    ring.setPeers(this.peers());
    return ring;
  }

  ring(node: string): HeartbeatRing {
    const r = this.rings.get(node);
    if (!r) throw new Error(`no ring ${node}`);
    return r;
  }

  /** One interval: every running node ticks, then what was sent arrives (unless dropped, or held by a frozen node). */
  round(): void {
    this.t += INTERVAL;
    for (const [node, ring] of this.rings) if (!this.stopped.has(node) && !this.frozen.has(node)) ring.tick();
    this.deliver();
  }

  rounds(n: number): void {
    for (let i = 0; i < n; i++) this.round();
  }

  deliver(): void {
    const now = this.inFlight;
    this.inFlight = [];
    for (const d of now) {
      if (this.stopped.has(d.to) || this.drop(d.from, d.to)) continue;
      if (this.frozen.has(d.to)) this.held.push(d);
      else this.ring(d.to).receive(d.bytes);
    }
  }

  /** A frozen node resumes: its overdue tick runs first, then what queued meanwhile is read. */
  thaw(node: string): void {
    this.frozen.delete(node);
    this.ring(node).tick();
    const held = this.held.filter((d) => d.to === node);
    this.held = this.held.filter((d) => d.to !== node);
    for (const d of held) this.ring(node).receive(d.bytes);
  }

  reportsBy(node: string): { at: number; silent: string[] }[] {
    return this.silentReports.filter((r) => r.node === node).map(({ at, silent }) => ({ at, silent }));
  }

  ackedChangesOf(node: string): { at: number; acked: boolean }[] {
    return this.ackedChanges.filter((r) => r.node === node).map(({ at, acked }) => ({ at, acked }));
  }
}

/** A logger that keeps the messages of the given level. */
function capturing(level: 'info' | 'warn'): { log: Logger; messages: string[] } {
  const messages: string[] = [];
  const log = createLogger('test', {
    level: 'debug',
    write: (line) => {
      const entry = JSON.parse(line) as { level: string; msg: string };
      if (entry.level === level) messages.push(entry.msg);
    },
  });
  return { log, messages };
}

describe('heartbeat endpoint and Lease annotations', () => {
  it('parses "addr:port" and "[v6]:port" to the canonical address, and nothing else', () => {
    expect(parseHeartbeatEndpoint('10.0.0.1:7947')).toEqual({ address: '10.0.0.1', port: 7947 });
    expect(parseHeartbeatEndpoint('[FD00:0::1]:1')).toEqual({ address: 'fd00::1', port: 1 });
    expect(parseHeartbeatEndpoint('[::1]:65535')).toEqual({ address: '::1', port: 65535 });
    for (const bad of [undefined, '', '10.0.0.1', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:123456', 'fd00::1:7947', '[10.0.0.1]:7947', '[fd00::1]', '010.0.0.1:1', '[::ffff:10.0.0.1]:1', 'node-1:7947', '[fe80::1%eth0]:1', ' 10.0.0.1:1']) {
      expect([bad, parseHeartbeatEndpoint(bad)]).toEqual([bad, undefined]);
    }
    expect(formatHeartbeatEndpoint('10.0.0.1', 7947)).toBe('10.0.0.1:7947');
    expect(formatHeartbeatEndpoint('fd00::1', 7947)).toBe('[fd00::1]:7947');
    expect(parseHeartbeatEndpoint(formatHeartbeatEndpoint('fd00::1', 7947))).toEqual({ address: 'fd00::1', port: 7947 });
  });

  const lease = (holder: string | undefined, annotations: Record<string, string>): Lease => ({ metadata: { name: `speaker-${holder}`, annotations }, spec: { holderIdentity: holder } });

  it('reads the answer window only when it is a positive integer', () => {
    expect(answerWindowMs(lease('a', { [ANSWER_WINDOW_ANNOTATION]: '800' }))).toBe(800);
    for (const bad of ['', '0', '-1', '08', '1.5', '1e3', ' 800', '99999999999999999999']) expect([bad, answerWindowMs(lease('a', { [ANSWER_WINDOW_ANNOTATION]: bad }))]).toEqual([bad, undefined]);
    expect(answerWindowMs(lease('a', {}))).toBeUndefined();
    expect(answerWindowMs({})).toBeUndefined();
  });

  it('takes the ring members from the Leases: with an endpoint, unfenced, judged when in heartbeat mode, sorted', () => {
    const leases = [
      lease('n3', { [HEARTBEAT_ANNOTATION]: '10.0.0.3:7947' }),
      lease('n1', { [HEARTBEAT_ANNOTATION]: '[fd00::1]:7000', [ANSWER_WINDOW_ANNOTATION]: '800' }),
      lease('n2', {}),
      lease('n4', { [HEARTBEAT_ANNOTATION]: '10.0.0.4' }),
      lease('n5', { [HEARTBEAT_ANNOTATION]: '10.0.0.5:7947', [ANSWER_WINDOW_ANNOTATION]: '800', [FENCED_BY_ANNOTATION]: 'n1 2026-12-01T00:00:00Z rv=5' }),
      lease(undefined, { [HEARTBEAT_ANNOTATION]: '10.0.0.6:7947' }),
      lease('n7', { [HEARTBEAT_ANNOTATION]: '10.0.0.7:7947', [ANSWER_WINDOW_ANNOTATION]: 'soon' }),
    ];
    expect(heartbeatPeers(leases)).toEqual([
      { node: 'n1', address: 'fd00::1', port: 7000, judged: true },
      { node: 'n3', address: '10.0.0.3', port: 7947, judged: false },
      { node: 'n7', address: '10.0.0.7', port: 7947, judged: false },
    ]);
  });
});

describe('heartbeat wire format', () => {
  const random = prng(2026);
  const sample = (): Heartbeat => {
    const acking = random() < 0.5;
    return {
      from: `node-${Math.floor(random() * 1000)}`,
      to: 'ñode-é'.repeat(1 + Math.floor(random() * 30)),
      incarnation: hex16(random),
      seq: 1 + Math.floor(random() * 0xfffffffe),
      ackIncarnation: acking ? hex16(random) : '0'.repeat(16),
      ackSeq: acking ? 1 + Math.floor(random() * 0xfffffffe) : 0,
      neighbour: random() < 0.5,
    };
  };

  it('round-trips, and decodes a mutated datagram to a heartbeat or to nothing, never throwing', () => {
    for (let i = 0; i < 500; i++) {
      const h = sample();
      const bytes = encodeHeartbeat(h);
      expect(decodeHeartbeat(bytes)).toEqual(h);
      const mutated = Buffer.from(bytes);
      mutated[Math.floor(random() * mutated.length)] ^= 1 + Math.floor(random() * 255);
      expect(() => decodeHeartbeat(mutated)).not.toThrow();
      expect(decodeHeartbeat(bytes.subarray(0, Math.floor(random() * bytes.length)))).toBeUndefined();
    }
    expect(() => encodeHeartbeat({ ...sample(), to: 'x'.repeat(254) })).toThrow(/1–253 bytes/);
    expect(encodeHeartbeat({ ...sample(), to: 'x'.repeat(253) })).toBeInstanceOf(Buffer);
  });
});

describe('heartbeat ring neighbours', () => {
  // Code-unit order: "node-10" sorts before "node-2", on every node whatever its locale.
  const names = (n: number) => Array.from({ length: n }, (_, i) => `node-${i}`);
  const neighboursIn = (members: string[], self: string) => {
    const ring = new HeartbeatRing({ node: self, intervalMs: INTERVAL, now: () => 0, log: silentLogger, transport: { send: () => {}, close: () => {} }, onSilent: () => {}, onAckedChange: () => {} });
    ring.setPeers(members.map((node, i) => ({ node, address: `10.0.0.${i + 1}`, port: 7947, judged: true })));
    expect(ringNeighbours(members, self, 2)).toEqual(ring.neighbours());
    return ring.neighbours();
  };

  it('is the k=2 next and previous by name, wrapping; every other member up to 5; none for a non-member', () => {
    expect(neighboursIn(names(1), 'node-0')).toEqual([]);
    expect(neighboursIn(names(2), 'node-1')).toEqual(['node-0']);
    expect(neighboursIn(names(5), 'node-2')).toEqual(['node-0', 'node-1', 'node-3', 'node-4']);
    expect(neighboursIn(names(6), 'node-0')).toEqual(['node-1', 'node-2', 'node-4', 'node-5']);
    expect(neighboursIn(names(6), 'node-3')).toEqual(['node-1', 'node-2', 'node-4', 'node-5']);
    // Sorted: node-0 node-1 node-2 node-3 node-4 node-5 node-6 node-7 node-8 node-9 (no 10 here); then with 11 members.
    expect(neighboursIn(names(10), 'node-0')).toEqual(['node-1', 'node-2', 'node-8', 'node-9']);
    expect(neighboursIn(names(10), 'node-5')).toEqual(['node-3', 'node-4', 'node-6', 'node-7']);
    expect(neighboursIn(names(10), 'node-9')).toEqual(['node-0', 'node-1', 'node-7', 'node-8']);
    // node-0 node-1 node-10 node-2 …: node-10 sits between node-1 and node-2.
    expect(neighboursIn(names(11), 'node-1')).toEqual(['node-0', 'node-10', 'node-2', 'node-9']);
    expect(neighboursIn(names(10), 'node-77')).toEqual([]);
    // Peers given unsorted and twice: the same ring.
    expect(neighboursIn([...names(10)].reverse().concat('node-3'), 'node-0')).toEqual(['node-1', 'node-2', 'node-8', 'node-9']);
    expect(ringNeighbours(names(10), 'node-0', 1)).toEqual(['node-1', 'node-9']);
  });

  it('each node is its neighbours’ neighbour', () => {
    for (const n of [1, 2, 5, 6, 7, 10, 23]) {
      const members = names(n);
      for (const a of members) for (const b of ringNeighbours(members, a, 2)) expect([a, b, ringNeighbours(members, b, 2).includes(a)]).toEqual([a, b, true]);
    }
  });
});

describe('heartbeat ring silence', () => {
  it('reports a neighbour that stopped once deadAfter passed since it was last heard, not before, every tick', () => {
    const lab = new Lab(['a', 'b', 'c']);
    lab.rounds(10);
    expect(lab.silentReports).toEqual([]);
    lab.stopped.add('c');
    const lastHeard = lab.t; // c's last datagrams arrived at the end of the last round
    lab.rounds(4);
    expect(lab.t).toBe(lastHeard + DEAD_AFTER);
    expect(lab.ring('a').silent()).toEqual([]);
    lab.t = lastHeard + DEAD_AFTER + 1;
    expect(lab.ring('a').silent()).toEqual(['c']);
    lab.t = lastHeard + DEAD_AFTER;
    lab.rounds(2);
    // Ticks at +150 … +600 do not report it; +750 and +900 do, by both nodes, every tick.
    expect(lab.reportsBy('a')).toEqual([
      { at: lastHeard + 750, silent: ['c'] },
      { at: lastHeard + 900, silent: ['c'] },
    ]);
    expect(lab.reportsBy('b')).toEqual(lab.reportsBy('a'));
    expect(lab.ring('b').silent()).toEqual(['c']);
  });

  it('reports a neighbour never heard only deadAfter after it became a neighbour', () => {
    const lab = new Lab(['a', 'b', 'c']);
    lab.stopped.add('c');
    lab.rings.get('c')?.setPeers([]);
    const withoutC = lab.peers(['a', 'b']);
    lab.ring('a').setPeers(withoutC);
    lab.ring('b').setPeers(withoutC);
    lab.rounds(10);
    expect(lab.ring('a').neighbours()).toEqual(['b']);
    lab.t += 50;
    const joined = lab.t;
    lab.ring('a').setPeers(lab.peers());
    expect(lab.ring('a').neighbours()).toEqual(['b', 'c']);
    lab.rounds(4); // ticks at joined + 100 … + 550
    lab.t = joined + DEAD_AFTER;
    expect(lab.ring('a').silent()).toEqual([]);
    lab.t = joined + DEAD_AFTER + 1;
    expect(lab.ring('a').silent()).toEqual(['c']);
    lab.t = joined + 550;
    lab.rounds(2);
    expect(lab.reportsBy('a')).toEqual([
      { at: joined + 700, silent: ['c'] },
      { at: joined + 850, silent: ['c'] },
    ]);
    // Re-added after leaving, a neighbour is watched afresh.
    lab.ring('a').setPeers(withoutC);
    lab.ring('a').setPeers(lab.peers());
    expect(lab.ring('a').silent()).toEqual([]);
  });

  it('never reports a neighbour whose Lease is not in heartbeat mode (judged=false)', () => {
    const lab = new Lab(['a', 'b', 'c'], (node) => node !== 'c');
    lab.rounds(5);
    lab.stopped.add('c');
    lab.rounds(100);
    expect(lab.silentReports).toEqual([]);
    expect(lab.ring('a').silent()).toEqual([]);
    // It is not heard, though: nor does it ack.
    expect(lab.ring('a').acked()).toBe(false);
  });

  it('reports nothing while it hears none of its ≥ 2 neighbours (it is the deaf one), logged once per episode', () => {
    const warnings = capturing('warn');
    const lab = new Lab(['a', 'b', 'c']);
    lab.boot('a', warnings.log);
    lab.rounds(5);
    lab.drop = (_from, to) => to === 'a';
    lab.rounds(30);
    expect(lab.reportsBy('a')).toEqual([]);
    expect(lab.ring('a').silent()).toEqual([]);
    // Its neighbours still hear it, and report nothing.
    expect(lab.silentReports).toEqual([]);
    expect(warnings.messages.filter((m) => m.includes('no neighbour heard'))).toHaveLength(1);
    lab.drop = () => false;
    lab.rounds(5);
    lab.drop = (_from, to) => to === 'a';
    lab.rounds(10);
    expect(warnings.messages.filter((m) => m.includes('no neighbour heard'))).toHaveLength(2);
    expect(lab.reportsBy('a')).toEqual([]);
    // One neighbour heard, the other not: that one is reported.
    lab.drop = (from, to) => from === 'c' && to === 'a';
    lab.rounds(10);
    expect(lab.ring('a').silent()).toEqual(['c']);
  });

  it('reports none of its neighbours when it stops hearing them a round apart (it is the deaf one, not they)', () => {
    const lab = new Lab(['a', 'b', 'c']);
    lab.rounds(5);
    lab.drop = (from, to) => to === 'a' && from === 'b';
    lab.rounds(1);
    lab.drop = (_from, to) => to === 'a';
    lab.rounds(10);
    expect(lab.reportsBy('a')).toEqual([]);
  });

  it('reports a lone neighbour it does not hear (the exception needs ≥ 2 neighbours)', () => {
    const lab = new Lab(['a', 'b']);
    lab.rounds(5);
    lab.drop = (_from, to) => to === 'a';
    lab.rounds(6);
    expect(lab.ring('a').silent()).toEqual(['b']);
  });

  it('after its own freeze (10 s) watches every neighbour afresh: reports nothing for deadAfter', () => {
    const infos = capturing('info');
    const lab = new Lab(['a', 'b', 'c']);
    lab.boot('a', infos.log);
    lab.rounds(10);
    // a freezes; c dies meanwhile; b keeps sending to a, which reads it only after its overdue tick.
    lab.frozen.add('a');
    lab.stopped.add('c');
    const frozenAt = lab.t;
    lab.rounds(Math.round(10_000 / INTERVAL));
    // While its own tick is overdue, a judges nobody.
    expect(lab.ring('a').silent()).toEqual([]);
    lab.thaw('a');
    const resumed = lab.t;
    expect(resumed - frozenAt).toBeGreaterThan(9_000);
    expect(lab.reportsBy('a')).toEqual([]);
    expect(infos.messages.filter((m) => m.includes('own round ran late'))).toHaveLength(1);
    lab.rounds(4); // up to resumed + 600
    expect(lab.reportsBy('a')).toEqual([]);
    lab.rounds(1);
    expect(lab.reportsBy('a')).toEqual([{ at: resumed + 750, silent: ['c'] }]);
    // b reported c on its own schedule, never a.
    expect(lab.reportsBy('b').every((r) => r.silent.join() === 'c')).toBe(true);
  });

  it('after its own freeze, with a single neighbour (no deaf-node exception): nothing while frozen nor for deadAfter after', () => {
    const lab = new Lab(['a', 'b']);
    lab.rounds(10);
    lab.frozen.add('a');
    lab.stopped.add('b');
    lab.rounds(Math.round(10_000 / INTERVAL));
    expect(lab.ring('a').silent()).toEqual([]);
    lab.thaw('a');
    const resumed = lab.t;
    lab.rounds(4);
    expect([lab.reportsBy('a'), lab.ring('a').silent()]).toEqual([[], []]);
    lab.rounds(1);
    expect(lab.reportsBy('a')).toEqual([{ at: resumed + 750, silent: ['b'] }]);
  });

  it('a clock jump of 10 s on every node: nobody is reported; each is unacked for a round, then acked again', () => {
    for (const nodes of [['a', 'b'], ['a', 'b', 'c', 'd', 'e', 'f']]) {
      const lab = new Lab(nodes);
      lab.rounds(10);
      lab.t += 10_000;
      const jumped = lab.t + INTERVAL;
      lab.rounds(20);
      expect(lab.silentReports).toEqual([]);
      for (const ring of lab.rings.values()) expect([ring.silent(), ring.acked()]).toEqual([[], true]);
      // The acks it holds are 10 s old: the node is not acked until its neighbours ack a datagram sent after the jump.
      for (const node of nodes) {
        expect(lab.ackedChangesOf(node)).toEqual([
          { at: jumped, acked: false },
          { at: jumped + 2 * INTERVAL, acked: true },
        ]);
      }
    }
  });
});

describe('heartbeat ring acks', () => {
  // Acks ride on the heartbeats: when `from`'s datagrams to `to` are lost, `to` has nothing new to ack (from is not
  // acked) and from's acks of `to` are lost too (to is not acked either); `to` reports `from` silent, not the reverse.
  // The times follow from the lab's order (a ticks before b; delivery at the end of a round).
  it.each([
    ['a', 'b', { from: [450, 450], to: [300, 300] }],
    ['b', 'a', { from: [450, 450], to: [300, 300] }],
  ])('one-way loss %s→%s: both stop being acked, the receiver reports the sender; back when it heals', (from, to, after) => {
    const lab = new Lab(['a', 'b', 'c']);
    lab.rounds(10);
    for (const ring of lab.rings.values()) expect(ring.acked()).toBe(true);
    expect(lab.ackedChanges).toEqual([]);
    const lossFrom = lab.t; // the last datagram from → to went out at this tick
    lab.drop = (f, t) => f === from && t === to;
    lab.rounds(10);
    expect([lab.ring(from).acked(), lab.ring(to).acked(), lab.ring('c').acked()]).toEqual([false, false, true]);
    expect(lab.ring(to).silent()).toEqual([from]);
    expect(lab.ring(from).silent()).toEqual([]);
    lab.drop = () => false;
    const healed = lab.t;
    lab.rounds(10);
    for (const ring of lab.rings.values()) expect([ring.acked(), ring.silent()]).toEqual([true, []]);
    expect(lab.ackedChangesOf(from)).toEqual([
      { at: lossFrom + after.from[0], acked: false },
      { at: healed + after.from[1], acked: true },
    ]);
    expect(lab.ackedChangesOf(to)).toEqual([
      { at: lossFrom + after.to[0], acked: false },
      { at: healed + after.to[1], acked: true },
    ]);
    expect(lab.ackedChangesOf('c')).toEqual([]);
    // Never before ackTimeout: the latest acked datagram was sent at most 2 intervals before the loss.
    for (const change of lab.ackedChanges.filter((c) => !c.acked)) expect(change.at - lossFrom).toBeGreaterThanOrEqual(ACK_TIMEOUT - 2 * INTERVAL);
  });

  it('a new neighbour counts as acked for ackTimeout; dropping the one that does not ack calls onAckedChange at once', () => {
    const lab = new Lab(['a', 'c']);
    lab.stopped.add('c');
    const a = lab.ring('a');
    a.setPeers(lab.peers(['a']));
    lab.rounds(5);
    const joined = lab.t;
    a.setPeers(lab.peers());
    expect(a.neighbours()).toEqual(['c']);
    lab.t = joined + ACK_TIMEOUT - 1;
    expect(a.acked()).toBe(true);
    lab.t = joined + ACK_TIMEOUT;
    expect(a.acked()).toBe(false);
    lab.t = joined;
    lab.rounds(2);
    expect(lab.ackedChanges).toEqual([]);
    lab.rounds(1);
    expect(lab.ackedChangesOf('a')).toEqual([{ at: joined + 450, acked: false }]);
    a.setPeers(lab.peers(['a']));
    expect(lab.ackedChangesOf('a')).toEqual([
      { at: joined + 450, acked: false },
      { at: joined + 450, acked: true },
    ]);
  });

  it('the ring starting counts as when its neighbours became neighbours: no ack expected before ackTimeout from then', () => {
    const lab = new Lab(['a', 'b', 'c']);
    lab.t += 10_000; // peers set at construction, first round 10 s later
    lab.rounds(1);
    expect(lab.ackedChanges).toEqual([]);
    lab.rounds(20);
    expect(lab.ackedChanges).toEqual([]);
  });

  it('no neighbours: acked, and no datagram sent', () => {
    const lab = new Lab(['a']);
    lab.rounds(10);
    expect([lab.ring('a').acked(), lab.ring('a').stats.sent, lab.ackedChanges]).toEqual([true, 0, []]);
  });

  it('acks a restarted peer from its new seqs, and counts only acks of its own incarnation', () => {
    const lab = new Lab(['a', 'b']);
    lab.rounds(20);
    const oldB = lab.ring('b');
    const a = lab.ring('a');
    const sent: Heartbeat[] = [];
    const b = lab.boot('b'); // same node, same endpoint, new incarnation, seqs from 1
    expect(b.incarnation).not.toBe(oldB.incarnation);
    const receive = b.receive.bind(b);
    b.receive = (bytes: Buffer) => {
      const h = decodeHeartbeat(bytes);
      if (h) sent.push(h);
      receive(bytes);
    };
    lab.rounds(1);
    // a had not heard the new b yet: it acked the old one, which the new b ignores.
    expect(sent.at(-1)).toMatchObject({ from: 'a', ackIncarnation: oldB.incarnation, ackSeq: 20 });
    lab.rounds(1);
    // Seq 1 of the new incarnation was not stale for a (it had 20 of the old one): acked as such.
    expect(sent.at(-1)).toMatchObject({ from: 'a', ackIncarnation: b.incarnation, ackSeq: 1 });
    expect(a.stats.rejected).toBe(0);
    lab.rounds(20);
    expect(sent.at(-1)).toMatchObject({ ackIncarnation: b.incarnation, ackSeq: 21 });
    expect([a.silent(), a.acked(), b.silent(), b.acked()]).toEqual([[], true, [], true]);
  });
});

describe('heartbeat ring views that differ', () => {
  it('answers a member that counts it as a neighbour while its own view does not, and stops once neither does', () => {
    // "b2" joined in c's view only: there c's neighbours are b, b2, d, e, not a. In the others' views a and c are neighbours.
    const nodes = ['a', 'b', 'b2', 'c', 'd', 'e', 'f', 'g'];
    const lab = new Lab(nodes);
    lab.stopped.add('b2');
    const without = lab.peers(nodes.filter((n) => n !== 'b2'));
    for (const n of nodes) if (n !== 'c') lab.ring(n).setPeers(without);
    expect(lab.ring('a').neighbours()).toEqual(['b', 'c', 'f', 'g']);
    expect(lab.ring('c').neighbours()).toEqual(['b', 'b2', 'd', 'e']);
    const sent: { from: string; to: string }[] = [];
    lab.drop = (from, to) => {
      sent.push({ from, to });
      return false;
    };
    lab.rounds(30);
    // c answers a: a hears it and is acked by it; a is nobody's silent neighbour (b2 is, for c).
    expect([lab.ring('a').silent(), lab.ring('a').acked()]).toEqual([[], true]);
    expect(lab.silentReports.filter((r) => r.node !== 'c')).toEqual([]);
    expect(lab.ring('c').silent()).toEqual(['b2']);
    expect(sent.filter((d) => d.from === 'c' && d.to === 'a').length).toBeGreaterThanOrEqual(29);
    // a's view catches up: neither counts the other as a neighbour any more, and within deadAfter they stop.
    lab.ring('a').setPeers(lab.peers());
    expect(lab.ring('a').neighbours()).toEqual(['b', 'b2', 'f', 'g']);
    lab.rounds(Math.ceil(DEAD_AFTER / INTERVAL) + 1);
    sent.length = 0;
    lab.rounds(10);
    expect(sent.filter((d) => (d.from === 'a' && d.to === 'c') || (d.from === 'c' && d.to === 'a'))).toEqual([]);
  });

  it('a node that is not in its own view yet answers the members that count it as a neighbour', () => {
    const lab = new Lab(['a', 'b', 'c']);
    lab.ring('c').setPeers(lab.peers(['a', 'b'])); // c's own Lease has not reached c's watch
    expect(lab.ring('c').neighbours()).toEqual([]);
    lab.rounds(20);
    expect(lab.silentReports).toEqual([]);
    for (const n of ['a', 'b']) expect(lab.ring(n).acked()).toBe(true);
  });
});

describe('heartbeat ring rejects', () => {
  it('rejects malformed datagrams and those not for it, not from a member, stale, or from itself; they prove nothing', () => {
    const lab = new Lab(['a', 'b']);
    const a = lab.ring('a');
    const b = lab.ring('b');
    lab.rounds(3);
    const base = { incarnation: b.incarnation, seq: 1000, ackIncarnation: a.incarnation, ackSeq: 1, neighbour: true };
    const withFlags = (flags: number) => {
      const d = encodeHeartbeat({ ...base, from: 'b', to: 'a' });
      d[4] = flags;
      return d;
    };
    const random = prng(7);
    const junk = [
      Buffer.alloc(0),
      Buffer.from(Array.from({ length: 40 }, () => Math.floor(random() * 256))),
      encodeHeartbeat({ ...base, from: 'b', to: 'a' }).subarray(0, 30),
      Buffer.concat([encodeHeartbeat({ ...base, from: 'b', to: 'a' }), Buffer.of(0)]),
      Buffer.concat([Buffer.from('XXXX'), encodeHeartbeat({ ...base, from: 'b', to: 'a' }).subarray(4)]),
      encodeHeartbeat({ ...base, from: 'b', to: 'a', seq: 0 }),
      withFlags(2),
      withFlags(0x81),
      encodeHeartbeat({ ...base, from: 'b', to: 'a', ackSeq: 0 }),
      encodeHeartbeat({ ...base, from: 'b', to: 'c' }),
      encodeHeartbeat({ ...base, from: 'z', to: 'a' }),
      encodeHeartbeat({ ...base, from: 'a', to: 'a', incarnation: a.incarnation }),
      encodeHeartbeat({ ...base, from: 'b', to: 'a', seq: 2 }), // b's seq 3 already arrived
    ];
    const before = { ...a.stats };
    for (const d of junk) a.receive(d);
    expect(a.stats).toEqual({ ...before, rejected: before.rejected + junk.length });
    // b stops: nothing above made a hear it, so it is silent deadAfter after its last real datagram.
    lab.stopped.add('b');
    const lastHeard = lab.t;
    lab.rounds(4);
    lab.t = lastHeard + DEAD_AFTER + 1;
    expect(a.silent()).toEqual(['b']);
  });

  it('does not hear a node before it is a member, nor count an ack of another incarnation', () => {
    const lab = new Lab(['a', 'b', 'c']);
    const a = lab.ring('a');
    a.setPeers(lab.peers(['a', 'b']));
    lab.rounds(5);
    expect(a.stats.rejected).toBe(5); // c's datagrams: c has a as a neighbour, a does not know c yet
    a.setPeers(lab.peers());
    const joined = lab.t;
    lab.stopped.add('c');
    lab.rounds(4);
    expect(a.silent()).toEqual([]);
    lab.rounds(1);
    expect(lab.reportsBy('a')).toEqual([{ at: joined + 750, silent: ['c'] }]);

    // b acks a seq a sent, but of another incarnation of a: it does not count.
    const lab2 = new Lab(['a', 'b']);
    const a2 = lab2.ring('a');
    lab2.stopped.add('b');
    lab2.rounds(5);
    const b2 = lab2.ring('b');
    a2.receive(encodeHeartbeat({ from: 'b', to: 'a', incarnation: b2.incarnation, seq: 1, ackIncarnation: 'feedfacefeedface', ackSeq: 5, neighbour: true }));
    expect([a2.stats.received, a2.acked()]).toEqual([1, false]);
    a2.receive(encodeHeartbeat({ from: 'b', to: 'a', incarnation: b2.incarnation, seq: 2, ackIncarnation: a2.incarnation, ackSeq: 5, neighbour: true }));
    expect(a2.acked()).toBe(true);
    // Nor an ack of a seq it never sent, which would also hide the real acks below it.
    a2.receive(encodeHeartbeat({ from: 'b', to: 'a', incarnation: b2.incarnation, seq: 3, ackIncarnation: a2.incarnation, ackSeq: 99, neighbour: true }));
    lab2.t += ACK_TIMEOUT;
    expect(a2.acked()).toBe(false);
    a2.tick(); // its seq 6
    a2.receive(encodeHeartbeat({ from: 'b', to: 'a', incarnation: b2.incarnation, seq: 4, ackIncarnation: a2.incarnation, ackSeq: 6, neighbour: true }));
    expect(a2.acked()).toBe(true);
  });
});

describe('heartbeat ring timer', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('start() ticks at once and every interval until stop()', async () => {
    jest.useFakeTimers({ now: 5_000 });
    const sent: Heartbeat[] = [];
    const ring = new HeartbeatRing({
      node: 'a',
      intervalMs: INTERVAL,
      now: () => Date.now(),
      log: silentLogger,
      transport: {
        send: (d) => {
          const h = decodeHeartbeat(d);
          if (h) sent.push(h);
        },
        close: () => {},
      },
      onSilent: () => {},
      onAckedChange: () => {},
    });
    ring.setPeers([
      { node: 'a', address: '10.0.0.1', port: 7947, judged: true },
      { node: 'b', address: '10.0.0.2', port: 7947, judged: true },
    ]);
    ring.start();
    expect(sent.map((h) => h.seq)).toEqual([1]);
    // Each round runs in a setImmediate after its interval fires (after the I/O already queued): 1 ms more here.
    await jest.advanceTimersByTimeAsync(10 * INTERVAL + 1);
    expect(sent.map((h) => h.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    ring.stop();
    await jest.advanceTimersByTimeAsync(10 * INTERVAL);
    expect(sent).toHaveLength(11);
  });
});
