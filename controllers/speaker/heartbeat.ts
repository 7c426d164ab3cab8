// The heartbeat ring (issue 14 item 5; its design in short: "a ring of heartbeats detects, the Lease fence
// disseminates, reads confirm"). The speakers whose Leases publish HEARTBEAT_ANNOTATION form a ring sorted by node
// name; every interval each one sends a UDP datagram to its k next and k previous members, carrying an ack of the
// latest datagram it got from that neighbour. It also answers, each interval, a member that counts it as a neighbour
// when its own view of the ring does not (yet): views differ for a while after a membership change, and this keeps
// the difference from looking like a silence. From this a node learns two things:
// - silent(): judged neighbours (their Lease carries ANSWER_WINDOW_ANNOTATION) it has not heard from for deadAfterMs:
//   the speaker fences their Lease (lease-fence.ts), which is what ends their answering, not the silence itself.
// - acked(): every neighbour acks what this node sends. When not, NodeLease renews in the fast mode, so a node its
//   neighbours cannot hear is judged by its Lease, as before heartbeats.
// Safety never depends on the ring: a node answers only within the window of a quorum read of its unfenced Lease, and
// a peer takes over only after a fence, so lost, late or forged datagrams can only delay a failover or cause a
// needless fence. That is also why the datagrams are not authenticated.
import type { ObservableResult } from '@opentelemetry/api';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { familyOfIP, formatIP, parseIPStrict } from '../../api/ip.js';
import type { Lease } from '../../api/wire.js';
import type { Logger } from '../runtime/log.js';
import { telemetry } from '../runtime/telemetry.js';
import { fenceOf } from './lease-fence.js';

/** On a speaker's Lease: where it receives heartbeats, "address:port" ("[v6]:port" for IPv6). */
export const HEARTBEAT_ANNOTATION = 'switchboard.dev/heartbeat';
/** On a speaker's Lease in heartbeat mode only: how long (ms) a read of its unfenced Lease lets it answer. */
export const ANSWER_WINDOW_ANNOTATION = 'switchboard.dev/answer-window-ms';
export const DEFAULT_HEARTBEAT_PORT = 7947;

/** "address:port" of HEARTBEAT_ANNOTATION, parsed (address in canonical form); undefined when malformed. */
export function parseHeartbeatEndpoint(text: string | undefined): { address: string; port: number } | undefined {
  if (!text) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const ip = parseIPStrict(m[1] ?? m[2] ?? '');
  const port = Number(m[3]);
  if (!ip || ip.family !== (m[1] !== undefined ? 'IPv6' : 'IPv4') || port < 1 || port > 65535) return undefined;
  return { address: formatIP(ip), port };
}

export function formatHeartbeatEndpoint(address: string, port: number): string {
  return familyOfIP(address) === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The Lease's ANSWER_WINDOW_ANNOTATION when a valid positive integer, else undefined. */
export function answerWindowMs(lease: Lease): number | undefined {
  const text = lease.metadata?.annotations?.[ANSWER_WINDOW_ANNOTATION];
  if (!text || !/^[1-9][0-9]*$/.test(text)) return undefined;
  const ms = Number(text);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

export interface HeartbeatPeer {
  node: string;
  address: string;
  port: number;
  /** Its Lease is in heartbeat mode: it may be reported silent. */
  judged: boolean;
}

/**
 * The ring's members from the speakers' Leases as this node judges them (live, unfenced), self included: pass the
 * live ones; fenced ones and those without a valid endpoint or holder are skipped here. Sorted by node name.
 */
export function heartbeatPeers(leases: readonly Lease[]): HeartbeatPeer[] {
  const peers: HeartbeatPeer[] = [];
  for (const lease of leases) {
    const node = lease.spec?.holderIdentity;
    const endpoint = parseHeartbeatEndpoint(lease.metadata?.annotations?.[HEARTBEAT_ANNOTATION]);
    if (!node || !validName(node) || !endpoint || fenceOf(lease) !== undefined) continue;
    peers.push({ node, ...endpoint, judged: answerWindowMs(lease) !== undefined });
  }
  return peers.sort((a, b) => compareNames(a.node, b.node));
}

/** Code-unit order: every node must sort the ring the same way, whatever its locale. */
const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The neighbours of `self` in the ring of `members` sorted by name: the k next and k previous, wrapping; all other
 * members when there are at most 2k+1. Empty when self is not a member.
 */
export function ringNeighbours(members: readonly string[], self: string, k: number): string[] {
  const ring = [...new Set(members)].sort(compareNames);
  const at = ring.indexOf(self);
  if (at < 0) return [];
  if (ring.length <= 2 * k + 1) return ring.filter((n) => n !== self);
  const out = new Set<string>();
  for (let i = 1; i <= k; i++) {
    out.add(ring[(at + i) % ring.length]);
    out.add(ring[(at - i + ring.length) % ring.length]);
  }
  return [...out].sort(compareNames);
}

// ---- wire format -------------------------------------------------------------------------------------------------

const MAGIC = Buffer.from('SBH2', 'latin1');
/** Flag: the sender counts the recipient as its ring neighbour (else it answers one that counts it as such). */
const NEIGHBOUR_FLAG = 1;
const INCARNATION_BYTES = 8;
/** Node names are DNS subdomains: 253 characters at most. */
const MAX_NAME = 253;
const NO_INCARNATION = '0'.repeat(2 * INCARNATION_BYTES);

const validName = (name: string): boolean => name.length > 0 && Buffer.byteLength(name, 'utf8') <= MAX_NAME;

export interface Heartbeat {
  from: string;
  to: string;
  /** The sender's incarnation, 16 hex digits. */
  incarnation: string;
  /** ≥ 1, one per round of the sender. */
  seq: number;
  /** The recipient's incarnation the ack refers to; 16 zeros with ackSeq 0 when nothing was received from it. */
  ackIncarnation: string;
  ackSeq: number;
  /** The sender counts the recipient as its ring neighbour. */
  neighbour: boolean;
}

/** magic | flags u8 | incarnation(8) | seq u32 | ackIncarnation(8) | ackSeq u32 | fromLen u8 | from | toLen u8 | to */
export function encodeHeartbeat(h: Heartbeat): Buffer {
  const from = Buffer.from(h.from, 'utf8');
  const to = Buffer.from(h.to, 'utf8');
  if (!validName(h.from) || !validName(h.to)) throw new Error('heartbeat: a node name must be 1–253 bytes');
  const out = Buffer.alloc(MAGIC.length + 1 + 2 * INCARNATION_BYTES + 8 + 2 + from.length + to.length);
  let o = MAGIC.copy(out, 0);
  o = out.writeUInt8(h.neighbour ? NEIGHBOUR_FLAG : 0, o);
  o += Buffer.from(h.incarnation, 'hex').copy(out, o);
  o = out.writeUInt32BE(h.seq >>> 0, o);
  o += Buffer.from(h.ackIncarnation, 'hex').copy(out, o);
  o = out.writeUInt32BE(h.ackSeq >>> 0, o);
  o = out.writeUInt8(from.length, o);
  o += from.copy(out, o);
  o = out.writeUInt8(to.length, o);
  to.copy(out, o);
  return out;
}

/** The heartbeat in `buf`, or undefined when it is not a well-formed one (magic, flags, lengths, zero seq, half an ack). */
export function decodeHeartbeat(buf: Buffer): Heartbeat | undefined {
  const fixed = MAGIC.length + 1 + 2 * INCARNATION_BYTES + 8;
  if (buf.length < fixed + 2 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  let o = MAGIC.length;
  const flags = buf.readUInt8(o++);
  if ((flags & ~NEIGHBOUR_FLAG) !== 0) return undefined;
  const incarnation = buf.toString('hex', o, o + INCARNATION_BYTES);
  o += INCARNATION_BYTES;
  const seq = buf.readUInt32BE(o);
  o += 4;
  const ackIncarnation = buf.toString('hex', o, o + INCARNATION_BYTES);
  o += INCARNATION_BYTES;
  const ackSeq = buf.readUInt32BE(o);
  o += 4;
  const fromLen = buf.readUInt8(o++);
  if (fromLen === 0 || o + fromLen + 1 > buf.length) return undefined;
  const from = buf.toString('utf8', o, o + fromLen);
  o += fromLen;
  const toLen = buf.readUInt8(o++);
  if (toLen === 0 || o + toLen !== buf.length) return undefined;
  const to = buf.toString('utf8', o, o + toLen);
  if (seq === 0 || incarnation === NO_INCARNATION || (ackSeq === 0) !== (ackIncarnation === NO_INCARNATION)) return undefined;
  return { from, to, incarnation, seq, ackIncarnation, ackSeq, neighbour: flags === NEIGHBOUR_FLAG };
}

// ---- UDP ---------------------------------------------------------------------------------------------------------

export interface HeartbeatTransport {
  send(datagram: Buffer, address: string, port: number): void;
  close(): void;
}

export interface UdpHeartbeatTransport extends HeartbeatTransport {
  /** The bound port (the one the system chose when bound to port 0). */
  readonly port: number;
}

/** Binds a UDP socket (udp4 or udp6 by the address family) on address:port and calls onDatagram for each datagram. */
export async function openUdpTransport(address: string, port: number, onDatagram: (datagram: Buffer) => void, log: Logger): Promise<UdpHeartbeatTransport> {
  const socket = createSocket({ type: familyOfIP(address) === 'IPv6' ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('message', (datagram) => onDatagram(datagram));
  socket.on('error', (error) => log.warn('heartbeat socket error', { error }));
  const bound = socket.address().port;
  let open = true;
  return {
    port: bound,
    send(datagram, to, toPort) {
      if (!open) return;
      socket.send(datagram, toPort, to, (error) => {
        if (error) log.debug('heartbeat not sent', { to: formatHeartbeatEndpoint(to, toPort), error });
      });
    },
    close() {
      if (!open) return;
      open = false;
      socket.close();
    },
  };
}

// ---- the ring ----------------------------------------------------------------------------------------------------

export interface HeartbeatRingOptions {
  node: string;
  /** 150 in production. */
  intervalMs: number;
  /** Default 4 × intervalMs. */
  deadAfterMs?: number;
  /** Default 2.5 × intervalMs. */
  ackTimeoutMs?: number;
  /** Default 2. */
  neighboursPerSide?: number;
  transport: HeartbeatTransport;
  /** A monotonic clock in ms; default performance.now. */
  now?: () => number;
  /** This ring's incarnation, 16 hex digits (tests); default random. */
  incarnation?: string;
  log: Logger;
  /** After each tick: the judged neighbours that are silent now (repeated every tick while they stay silent; not called with an empty list). */
  onSilent: (nodes: string[]) => void;
  /** When acked() changes. */
  onAckedChange: (acked: boolean) => void;
}

/** What this node knows of a member of the ring. */
interface Member extends HeartbeatPeer {
  /** The incarnation its datagrams carry; what we ack refers to it. */
  incarnation?: string;
  /** The latest seq received from its current incarnation (0: none): what we ack. */
  receivedSeq: number;
  /** Arrival time (now()) of its latest valid datagram. */
  lastHeard?: number;
  /** The latest of our seqs (our incarnation) it acked; 0: none. */
  ackedSeq: number;
  /** Arrival time of its latest valid datagram that counted this node as its neighbour. */
  lastAsked?: number;
}

interface Watch {
  /** When it became a neighbour, or the ring started: no ack is expected of it before ackTimeoutMs from then. */
  since: number;
  /** since, or the end of this node's latest freeze: silence is counted from here at the earliest. */
  watchingSince: number;
}

export type RejectReason = 'malformed' | 'not-for-us' | 'unknown-peer' | 'stale';

export class HeartbeatRing {
  readonly incarnation: string;
  /** Datagrams sent, accepted and rejected by this ring (as the counters, without an exporter). */
  readonly stats = { sent: 0, received: 0, rejected: 0 };

  private readonly intervalMs: number;
  private readonly deadAfterMs: number;
  private readonly ackTimeoutMs: number;
  private readonly k: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private members = new Map<string, Member>();
  private readonly watched = new Map<string, Watch>();
  private seq = 0;
  /** When each recent seq of ours was sent; older than ackTimeoutMs is gone. */
  private readonly sentAt = new Map<number, number>();
  private lastTick: number | undefined;
  private reportedAcked = true;
  private deafEpisode = false;
  /** When a valid datagram from any member last arrived. */
  private lastHeardAny = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private pendingTick: NodeJS.Immediate | undefined;
  private readonly rejectedBy = new Map<RejectReason, number>();
  /** Removes the metrics callback that start() adds. */
  private unobserve: (() => void) | undefined;

  constructor(private readonly options: HeartbeatRingOptions) {
    if (!validName(options.node)) throw new Error('heartbeat: a node name must be 1–253 bytes');
    if (!(options.intervalMs > 0)) throw new Error('heartbeat: intervalMs must be positive');
    this.intervalMs = options.intervalMs;
    this.deadAfterMs = options.deadAfterMs ?? 4 * options.intervalMs;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 2.5 * options.intervalMs;
    this.k = options.neighboursPerSide ?? 2;
    this.now = options.now ?? (() => performance.now());
    this.log = options.log;
    this.incarnation = options.incarnation ?? randomBytes(INCARNATION_BYTES).toString('hex');
    if (!/^[0-9a-f]{16}$/.test(this.incarnation) || this.incarnation === NO_INCARNATION) throw new Error('heartbeat: an incarnation is 16 hex digits, not all zero');
  }

  /** A datagram arrived (the transport feeds it). */
  receive(datagram: Buffer): void {
    const h = decodeHeartbeat(datagram);
    const reason = this.accept(h);
    if (reason) {
      this.stats.rejected++;
      this.rejectedBy.set(reason, (this.rejectedBy.get(reason) ?? 0) + 1);
    } else {
      this.stats.received++;
    }
  }

  private accept(h: Heartbeat | undefined): RejectReason | undefined {
    if (!h) return 'malformed';
    if (h.to !== this.options.node) return 'not-for-us';
    const m = this.members.get(h.from);
    if (!m || h.from === this.options.node) return 'unknown-peer';
    if (m.incarnation !== h.incarnation) {
      // A restarted peer: we ack its new seqs from now on (below). What it acked of ours stands: our seqs go on.
      m.incarnation = h.incarnation;
    } else if (h.seq <= m.receivedSeq) {
      return 'stale'; // a duplicate or a reordered one: proves nothing newer
    }
    m.receivedSeq = h.seq;
    m.lastHeard = this.now();
    this.lastHeardAny = m.lastHeard;
    if (h.neighbour) m.lastAsked = m.lastHeard;
    if (h.ackIncarnation === this.incarnation && h.ackSeq > m.ackedSeq && h.ackSeq <= this.seq) m.ackedSeq = h.ackSeq;
    return undefined;
  }

  /** The ring's members (heartbeatPeers), self included; a node that is not among them has no neighbours. */
  setPeers(peers: readonly HeartbeatPeer[]): void {
    const now = this.now();
    const next = new Map<string, Member>();
    for (const p of peers) {
      if (next.has(p.node) || !validName(p.node)) continue;
      const known = this.members.get(p.node);
      next.set(p.node, { receivedSeq: 0, ackedSeq: 0, ...known, node: p.node, address: p.address, port: p.port, judged: p.judged });
    }
    this.members = next;
    const neighbours = ringNeighbours([...next.keys()], this.options.node, this.k);
    const before = [...this.watched.keys()];
    for (const n of before) if (!neighbours.includes(n)) this.watched.delete(n);
    for (const n of neighbours) if (!this.watched.has(n)) this.watched.set(n, { since: now, watchingSince: now });
    if (neighbours.length !== before.length || neighbours.some((n) => !before.includes(n))) this.log.info('heartbeat neighbours', { neighbours });
    this.evaluateAcked(now);
  }

  neighbours(): string[] {
    return [...this.watched.keys()].sort(compareNames);
  }

  /** Every neighbour acked one of our datagrams sent less than ackTimeoutMs ago, or became one less than that ago. */
  acked(): boolean {
    return this.unacked(this.now()).length === 0;
  }

  private unacked(now: number): string[] {
    const out: string[] = [];
    for (const [node, w] of this.watched) {
      if (now - w.since < this.ackTimeoutMs) continue;
      const sent = this.sentAt.get(this.members.get(node)?.ackedSeq ?? 0);
      if (sent === undefined || now - sent >= this.ackTimeoutMs) out.push(node);
    }
    return out;
  }

  /**
   * The judged neighbours not heard for deadAfterMs (counted from when watching began at the latest). Empty while
   * this node hears none of its ≥ 2 neighbours (it is probably the deaf one), and while its own tick is overdue by
   * more than 2 intervals (it is frozen; the tick that ends the freeze restarts the watch).
   */
  silent(): string[] {
    return this.evaluateSilent(this.now(), false);
  }

  private evaluateSilent(now: number, logDeaf: boolean): string[] {
    if (this.late(now)) return [];
    const quiet: Member[] = [];
    for (const [node, w] of this.watched) {
      const m = this.members.get(node);
      if (m && now - Math.max(m.lastHeard ?? -Infinity, w.watchingSince) > this.deadAfterMs) quiet.push(m);
    }
    // Deaf: no neighbour heard, or no member at all for 2 intervals while there are ≥ 2 others (live members send
    // every interval). Without the second, a deaf node fences the neighbour it heard last first, the ring re-forms
    // around it with one neighbour fewer, and that one alone looks dead: it fenced its neighbours in turn, in a loop.
    const others = [...this.members.keys()].filter((n) => n !== this.options.node).length;
    const deaf = (this.watched.size >= 2 && quiet.length === this.watched.size) || (others >= 2 && quiet.length > 0 && now - this.lastHeardAny > 2 * this.intervalMs);
    if (logDeaf && deaf !== this.deafEpisode) {
      this.deafEpisode = deaf;
      if (deaf) this.log.warn('heartbeat: no neighbour heard; reporting none silent (this node is probably the one cut off)', { neighbours: this.neighbours() });
      else this.log.info('heartbeat: a neighbour is heard again');
    }
    return deaf ? [] : quiet.filter((m) => m.judged).map((m) => m.node);
  }

  /** This node's own round ran more than 2 intervals late. */
  private late(now: number): boolean {
    return this.lastTick !== undefined && now - this.lastTick - this.intervalMs > 2 * this.intervalMs;
  }

  /**
   * One round: own-freeze check, a datagram to each neighbour and to each member that counted this node as its
   * neighbour within deadAfterMs (their views differ: it would judge this node silent otherwise), then silent/acked
   * evaluated.
   */
  tick(): void {
    const now = this.now();
    if (this.lastTick === undefined) {
      // The ring starts: nothing was sent before, so nothing could be heard or acked.
      for (const w of this.watched.values()) w.since = w.watchingSince = now;
    } else if (this.late(now)) {
      // This node did not run for a while: what it did not hear meanwhile says nothing of its peers.
      this.log.info('heartbeat: own round ran late; watching every neighbour afresh', { lateMs: Math.round(now - this.lastTick - this.intervalMs) });
      for (const w of this.watched.values()) w.watchingSince = now;
    }
    this.lastTick = now;
    this.seq += 1;
    this.sentAt.set(this.seq, now);
    for (const [seq, at] of this.sentAt) if (now - at >= this.ackTimeoutMs && seq !== this.seq) this.sentAt.delete(seq);
    for (const m of this.members.values()) {
      const neighbour = this.watched.has(m.node);
      if (!neighbour && (m.lastAsked === undefined || now - m.lastAsked > this.deadAfterMs || m.node === this.options.node)) continue;
      const acking = m.incarnation !== undefined && m.receivedSeq > 0;
      const datagram = encodeHeartbeat({
        from: this.options.node,
        to: m.node,
        incarnation: this.incarnation,
        seq: this.seq,
        ackIncarnation: acking ? (m.incarnation ?? NO_INCARNATION) : NO_INCARNATION,
        ackSeq: acking ? m.receivedSeq : 0,
        neighbour,
      });
      try {
        this.options.transport.send(datagram, m.address, m.port);
        this.stats.sent++;
      } catch (error) {
        this.log.debug('heartbeat not sent', { to: m.node, error });
      }
    }
    const silent = this.evaluateSilent(now, true);
    if (silent.length > 0) this.call('onSilent', () => this.options.onSilent(silent));
    this.evaluateAcked(now);
  }

  private evaluateAcked(now: number): void {
    const unacked = this.unacked(now);
    const acked = unacked.length === 0;
    if (acked === this.reportedAcked) return;
    this.reportedAcked = acked;
    this.log.info(acked ? 'heartbeat: every neighbour acks' : 'heartbeat: a neighbour does not ack', acked ? {} : { unacked });
    this.call('onAckedChange', () => this.options.onAckedChange(acked));
  }

  private call(name: string, callback: () => void): void {
    try {
      callback();
    } catch (error) {
      this.log.error(`heartbeat: ${name} threw`, { error });
    }
  }

  /**
   * Reports `stats` as counters while the ring runs. Observed when metrics are collected: an add() per datagram was 4%
   * of the speakers' CPU in the 50-speaker bench (bench/speakers.ts).
   */
  private observeStats(): () => void {
    const meter = telemetry().meter;
    const sent = meter.createObservableCounter('switchboard_speaker_heartbeats_sent', { description: 'Heartbeat datagrams sent to ring neighbours' });
    const received = meter.createObservableCounter('switchboard_speaker_heartbeats_received', { description: 'Heartbeat datagrams received from ring members and accepted' });
    const rejected = meter.createObservableCounter('switchboard_speaker_heartbeats_rejected', { description: 'Heartbeat datagrams rejected, by reason (malformed, not-for-us, unknown-peer, stale)' });
    const observeSent = (r: ObservableResult): void => r.observe(this.stats.sent);
    const observeReceived = (r: ObservableResult): void => r.observe(this.stats.received);
    const observeRejected = (r: ObservableResult): void => {
      for (const [reason, count] of this.rejectedBy) r.observe(count, { reason });
    };
    sent.addCallback(observeSent);
    received.addCallback(observeReceived);
    rejected.addCallback(observeRejected);
    return () => {
      sent.removeCallback(observeSent);
      received.removeCallback(observeReceived);
      rejected.removeCallback(observeRejected);
    };
  }

  /** Rounds every intervalMs from now on; each runs after the I/O already queued, so datagrams that arrived while this process was busy count. */
  start(): void {
    if (this.timer) return;
    this.unobserve = this.observeStats();
    this.tick();
    this.timer = setInterval(() => {
      this.pendingTick ??= setImmediate(() => {
        this.pendingTick = undefined;
        this.tick();
      });
    }, this.intervalMs);
  }

  /** Stops the rounds (the transport is the owner's to close). A later start() is a new start of the ring. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.unobserve?.();
    this.unobserve = undefined;
    if (this.pendingTick) clearImmediate(this.pendingTick);
    this.pendingTick = undefined;
    this.lastTick = undefined;
  }
}
