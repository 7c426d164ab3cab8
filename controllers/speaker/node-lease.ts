// Speaker liveness on coordination.k8s.io Leases, one per node, at two paces.
//
// - NodeLease renews this node's Lease and fences: when it has not renewed for the lease duration (measured from
//   the START of its last successful renewal, on its own clock) it reports itself fenced and the speaker stops
//   answering. Peers declare it dead no earlier than that (see below), so two nodes never answer for one address
//   because of a partition: the split brain MetalLB's memberlist allows (#589, #740).
// - SpeakerLiveness judges the peers' Leases on the local clock, like client-go's leader election: a Lease is live
//   for its duration after we SAW its current renewTime, so clock skew between nodes does not matter. A Lease seen for
//   the first time counts from its renewTime when that is in the past, so a long-dead node is dead at once.
// - A speaker shutting down (SIGTERM) says so with LEAVING_ANNOTATION on its Lease and keeps renewing while it hands
//   its addresses over, make before break (handover.ts); only then does it delete the Lease.
//
// Two paces, so that the API load grows with the nodes that answer, not with all nodes (issue 14, item 5). A node
// whose renewal lists addresses it answers (ANSWERING_ANNOTATION), or is about to, renews FAST (--lease-renew-interval,
// 500 ms, with --lease-duration, 1.5 s): its death must be seen within the failover budget. Every other node renews
// IDLE (--lease-idle-renew-interval, 10 s, with --lease-idle-duration, 30 s): it answers nothing, so nobody waits
// for its lease to expire before answering, and it only needs to be known as a candidate. Each renewal writes its
// own duration (LEASE_DURATION_MS_ANNOTATION) and peers judge each Lease by the duration it carries. With 100 nodes
// and a handful answering that is ~2 writes/s per answering node + 0.1 per idle node, where every node wrote 2.
//
// Why the fence still holds at two paces. A node answers an address only when (1) the last renewal that SUCCEEDED
// listed it (the announcer's table is cut to `answering`), and (2) it is within that renewal's window: its start
// plus the duration it wrote, minus FENCE_MARGIN_MS, on its own clock. A renewal listing an address always writes
// the fast duration, so (1) and (2) mean a node answers only within 1.4 s of starting a fast renewal that listed the
// address. A peer takes an address over only when no live Lease lists it (speaker.ts), and a Lease listing it is
// live in the peer's eyes until 1.5 s after the peer SAW it, which is after the renewal started: the holder has
// stopped first, whether it died, froze, or lost the API. The pace changes nothing here: switching to idle happens
// in a renewal that lists nothing (the node stopped answering before it started), and switching to fast opens a fast
// window that only a successful renewal extends. A renewal whose answer is lost may have been written: a lost idle
// renewal leaves the node believing it still holds its previous, fast window (it stops early: safe); a lost fast
// renewal leaves it answering nothing it did not list before (peers may judge it dead 1.5 s later while it thinks
// itself a live candidate: it answers nothing new, so safe, and its next renewal corrects the peers).
//
// Judging by a Lease assumes the peer SAW the holder's renewals in time. A watch that delivers one more than ~1 s late
// (the duration minus the renew interval) would let a peer judge a holder dead inside the window of a renewal that
// succeeded; so nothing new is answered while a Lease judged dead is not FENCED (lease-fence.ts: a CAS write on the
// version judged, which fails if the holder renewed since; the holder's next renewal, or one in flight, conflicts, finds
// the fence and answers nothing). A fenced Lease is dead to every node.
//
// Heartbeat mode (--heartbeat-address; heartbeat.ts). Speakers send each other UDP heartbeats in a ring, and a ring
// neighbour silent for 0.6 s gets its Lease fenced by its neighbours: the fence, not the silence, is what every node
// acts on. A node in heartbeat mode says so on its Lease (ANSWER_WINDOW_ANNOTATION) and renews it at the idle pace
// only, listing addresses or not. While it lists some it confirms by READS of its Lease, three per answer window: a
// read that starts at t and finds the Lease unfenced lets it answer until t + the answer window − FENCE_MARGIN_MS (never
// past its last renewal's own window). A peer waits one answer window after it first SAW the fence of a heartbeat-mode
// Lease (SpeakerLiveness.fencedUntil): the holder's last confirming read started before the fence was written, so its
// window has closed by then. Lost or forged heartbeats can thus only delay a failover or cause a needless fence, never
// two answering nodes. A renewal that switches mode first limits the current window to the one it promises (a lost
// answer may have been written). A node whose neighbours do not ack its heartbeats (UDP blocked one way) renews as
// without heartbeats, so peers judge it by its Lease rather than fence it. Cost: one write per node per idle interval,
// one fence per death, and three reads per answer window per ANSWERING node; reads cause no watch events.
//
// The price of the idle pace without heartbeats: a node that dies while idle stays a candidate for up to the idle
// duration. It answers nothing, so no address goes silent, unless it is elected meanwhile: for a new Service, or as the
// successor of an answering node that dies within 30 s of it (a double failure: that failover then takes up to the idle
// duration). With heartbeats its neighbours fence it within a second.
import { createHash } from 'node:crypto';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from '../runtime/client.js';
import { sleep } from '../runtime/backoff.js';
import { microTime } from '../runtime/leader-election.js';
import { RenewalFence } from '../runtime/renewal-fence.js';
import type { Logger } from '../runtime/log.js';
import { Leases, apiVersionOf } from '../../api/resources.js';
import type { Lease } from '../../api/wire.js';
import { LEASE_DURATION_MS_ANNOTATION, leaseDurationMs } from './election.js';
import { LEAVING_ANNOTATION, leaseSaysLeaving } from './handover.js';
import { FENCED_BY_ANNOTATION, LeaseFencedError, fenceOf } from './lease-fence.js';
import { ANSWER_WINDOW_ANNOTATION, HEARTBEAT_ANNOTATION, answerWindowMs } from './heartbeat.js';

export const LEASE_COMPONENT_LABEL = 'switchboard.dev/component';
export const LEASE_COMPONENT = 'speaker';
export const LEASE_SELECTOR = `${LEASE_COMPONENT_LABEL}=${LEASE_COMPONENT}`;
/** JSON list of {name, cidrs, mac}: where the node can answer, for the election, and with which MAC, for the self-check (PublishedInterface[]). */
export const INTERFACES_ANNOTATION = 'switchboard.dev/interfaces';
/**
 * JSON list of the addresses the node answers, or is about to: a node that wins an address answers it only once no
 * other live node lists it, and once its own Lease lists it (break before make, see speaker.ts).
 */
export const ANSWERING_ANNOTATION = 'switchboard.dev/answering';

export interface PublishedInterface {
  name: string;
  /** Ranges the interface answers for; 0.0.0.0/0 and ::/0 when the speaker answers outside subnets. */
  cidrs: string[];
  /** The interface's MAC: an answer from it is this node's (l2-check.ts). Absent from older speakers. */
  mac?: string;
}

/** speaker-<node>, or a hash when the node name is too long for a Lease name. */
export const leaseNameFor = (node: string): string =>
  node.length <= 245 ? `speaker-${node}` : `speaker-${createHash('sha256').update(node).digest('hex').slice(0, 32)}`;

export interface NodeLeaseOptions {
  client: KubeClient;
  namespace: string;
  node: string;
  /** The fast pace: while this node answers, or is about to. */
  durationMs: number;
  renewIntervalMs: number;
  /** The idle pace, while it answers nothing; the fast pace when not set. */
  idleDurationMs?: number;
  idleRenewIntervalMs?: number;
  log: Logger;
  /** What to publish in INTERFACES_ANNOTATION, read at every renewal. */
  interfaces: () => PublishedInterface[] | undefined;
  /** What to publish in ANSWERING_ANNOTATION (canonical addresses), read at every renewal. */
  answering: () => readonly string[];
  onFenceChange: (fenced: boolean) => void;
  /** When this speaker began shutting down (RFC 3339), published as LEAVING_ANNOTATION; undefined while it is not. */
  leavingSince?: () => string | undefined;
  /** After every successful renewal, with the addresses it published. */
  onRenewed?: (answering: ReadonlySet<string>) => void;
  /**
   * Called before renewing again after a fence that followed a failed API call, once the API answers: brings this
   * node's view up to date (its watches may be backing off), so that it announces as soon as peers, seeing the
   * renewal, stop.
   */
  resync?: () => Promise<void>;
  /**
   * Heartbeat mode (heartbeat.ts): while `acked()` says this node's ring neighbours hear it, the Lease renews at the
   * idle pace only, says so with ANSWER_WINDOW_ANNOTATION, and is confirmed by reads while this node answers.
   */
  heartbeat?: { endpoint: () => string | undefined; answerWindowMs: number; acked: () => boolean; members: () => number };
  now?: () => number;
}

/** How a renewal writes the Lease, and how long it lets this node answer. */
interface RenewalMode {
  durationMs: number;
  renewIntervalMs: number;
  /** From the renewal's start, on this node's clock. */
  windowMs: number;
  /** Set in heartbeat mode: published as ANSWER_WINDOW_ANNOTATION, and confirmed by reads. */
  answerWindowMs?: number;
}

/** In heartbeat mode the Lease renews no more often than once per this much per ring member (100 nodes: 10 s). */
const RENEW_PER_RING_MEMBER_MS = 100;

/** Informers are resynced after a fence at most once per this long (see run()). */
const RESYNC_MIN_GAP_MS = 10_000;

/** The fence trips this long before the lease could expire in a peer's eyes (timer lateness). */
const FENCE_MARGIN_MS = 100;

export class NodeLease {
  readonly name: string;
  private everLive = false;
  private readonly fence: RenewalFence;
  private lease: Lease | undefined;
  private readonly now: () => number;
  private wake: (() => void) | undefined;
  /** renewSoon was called since the current renewal read what to publish. */
  private soon = false;
  /** ANSWERING_ANNOTATION as the last successful renewal wrote it. */
  private publishedAnswering: ReadonlySet<string> = new Set();
  /** The peer's fence this node already obeyed (dropped every address for): the next renewal clears it. */
  private obeyedFence: string | undefined;
  /** When the informers were last resynced after a fence. */
  private resyncedAt = -Infinity;
  /** A renewal or read failed (not on a fence) since the last successful renewal: the watches may be backing off. */
  private apiFailed = false;
  /** The last successful renewal: when it started and how it wrote the Lease. */
  private lastRenewal: { at: number; mode: RenewalMode } | undefined;

  constructor(private readonly options: NodeLeaseOptions) {
    this.name = leaseNameFor(options.node);
    this.now = options.now ?? Date.now;
    this.fence = new RenewalFence(options.durationMs - FENCE_MARGIN_MS, (live) => this.onFenceChange(live), this.now);
  }

  /** True while the last successful renewal is recent enough for this node to answer. */
  get live(): boolean {
    return this.fence.live;
  }

  get isFenced(): boolean {
    return !this.fence.live;
  }

  /** Live, and without a break since `at`: what arrived then may be answered. */
  liveSince(at: number): boolean {
    return this.fence.liveSince(at);
  }

  /** The resourceVersion of this node's Lease as last written or read. */
  get version(): string | undefined {
    return this.lease?.metadata?.resourceVersion;
  }

  /** The addresses the last successful renewal published as answered. */
  get answering(): ReadonlySet<string> {
    return this.publishedAnswering;
  }

  /** Renews now instead of at the next interval: the addresses to publish changed. */
  renewSoon(): void {
    this.soon = true;
    this.wake?.();
  }

  /**
   * How a renewal that publishes `answering` writes the Lease. Heartbeat mode: the idle pace whatever it answers, its
   * window the answer window (confirmed by reads). Otherwise the fast pace while it answers something, else the idle one.
   */
  private mode(answering: readonly string[]): RenewalMode {
    const { durationMs, renewIntervalMs, idleDurationMs, idleRenewIntervalMs, heartbeat } = this.options;
    const idle = { durationMs: idleDurationMs ?? durationMs, renewIntervalMs: idleRenewIntervalMs ?? renewIntervalMs };
    if (heartbeat?.acked()) {
      // The ring detects deaths, so the Lease only has to outlive them: its pace slows as the ring grows, keeping
      // every speaker's watch events (renewals of N nodes, seen by N nodes) linear in N beyond 100 nodes.
      const stretch = Math.max(1, (heartbeat.members() * RENEW_PER_RING_MEMBER_MS) / idle.renewIntervalMs);
      const paced = { durationMs: Math.round(idle.durationMs * stretch), renewIntervalMs: Math.round(idle.renewIntervalMs * stretch) };
      // Listing nothing, the node answers nothing (it stops before it renews): it stays a live candidate for the
      // whole duration. Listing addresses, it may answer them only within the answer window, which reads extend.
      const windowMs = answering.length > 0 ? Math.min(heartbeat.answerWindowMs, paced.durationMs) : paced.durationMs;
      return { ...paced, windowMs: windowMs - FENCE_MARGIN_MS, answerWindowMs: heartbeat.answerWindowMs };
    }
    const pace = answering.length > 0 ? { durationMs, renewIntervalMs } : idle;
    return { ...pace, windowMs: pace.durationMs - FENCE_MARGIN_MS };
  }

  /**
   * Whether this turn reads the Lease instead of writing it: in heartbeat mode, while answering, between idle
   * renewals, when nothing asks for a write (what to publish, or the mode, changed: renewSoon).
   */
  private confirmsAt(now: number): boolean {
    const last = this.lastRenewal;
    return (
      last?.mode.answerWindowMs !== undefined &&
      this.lease !== undefined &&
      this.live &&
      !this.soon &&
      this.publishedAnswering.size > 0 &&
      this.options.heartbeat?.acked() === true &&
      now < last.at + last.mode.renewIntervalMs
    );
  }

  /** Renews until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.now();
      // A failed renewal is retried at the fast pace: the fence may be near.
      let intervalMs = this.options.renewIntervalMs;
      let renewed = false;
      try {
        // A resync relists every informer, so only after a failed API call (a fence by a peer that heard no
        // heartbeat says nothing of this node's watches), and at most once per RESYNC_MIN_GAP_MS: fences that follow
        // each other (needless ones on a starved machine) would otherwise feed on the load they add. It speeds up
        // taking addresses back; safety does not rest on it (a node answers a new address only once its own Lease
        // watch shows the listing, speaker.ts).
        if (this.isFenced && this.apiFailed && this.everLive && this.options.resync && started - this.resyncedAt >= RESYNC_MIN_GAP_MS) {
          await this.options.client.getOrUndefined<Lease>(Leases, this.name, this.options.namespace); // throws while the API is away
          this.resyncedAt = started;
          await this.options.resync();
        }
        if (this.confirmsAt(started)) {
          const last = await this.confirm(started);
          intervalMs = Math.min(this.readIntervalMs, last.at + last.mode.renewIntervalMs - started);
        } else {
          this.soon = false;
          const answering = [...this.options.answering()].sort();
          const mode = this.mode(answering);
          // Peers may judge this node by what this renewal writes even if its answer is lost: from its start on, no
          // window outlasts the one it promises (a switch to heartbeat mode shortens it to the answer window).
          this.fence.limit(started + mode.windowMs);
          await this.renew(started, answering, mode);
          this.everLive = true;
          this.apiFailed = false;
          this.lastRenewal = { at: started, mode };
          this.fence.renewed(started, mode.windowMs);
          this.publishedAnswering = new Set(answering);
          this.options.onRenewed?.(this.publishedAnswering);
          intervalMs = mode.answerWindowMs !== undefined && answering.length > 0 ? this.readIntervalMs : mode.renewIntervalMs;
          renewed = true;
        }
      } catch (err) {
        this.lease = undefined;
        if (err instanceof LeaseFencedError) {
          // A peer judged this node dead and fenced its Lease (lease-fence.ts): it may be answering what this node
          // answered. Answer nothing; the next renewal (after a resync) lists nothing and clears the fence.
          this.fence.drop();
          this.publishedAnswering = new Set();
          this.options.log.warn('a peer fenced this speaker lease: answering nothing until renewed', { lease: this.name, fence: err.fence });
        } else {
          this.apiFailed = true;
          this.options.log.warn('could not renew the speaker lease', { lease: `${this.options.namespace}/${this.name}`, error: String(err), fenced: !this.live });
        }
      }
      // What to publish changed while the renewal was in flight: at the idle pace, waiting would cost seconds.
      if (renewed && this.soon) continue;
      const nap = new AbortController();
      this.wake = () => nap.abort();
      await sleep(Math.max(0, intervalMs - (this.now() - started)), AbortSignal.any([signal, nap.signal]));
      this.wake = undefined;
    }
    this.fence.stop();
  }

  /** Three reads per answer window: two may fail or be slow before the window closes. */
  private get readIntervalMs(): number {
    return Math.max(50, Math.floor((this.options.heartbeat?.answerWindowMs ?? this.options.renewIntervalMs) / 3));
  }

  /**
   * Heartbeat mode's confirmation: a read of this node's Lease that starts at `started` and finds it unfenced lets the
   * node answer until `started` + the answer window (a fence lands after the read, and peers wait one answer window
   * after they see it), never past the last renewal's own window. A fence found here is obeyed as on a renewal.
   */
  private async confirm(started: number): Promise<{ at: number; mode: RenewalMode }> {
    const { client, namespace, heartbeat } = this.options;
    const last = this.lastRenewal;
    if (!heartbeat || !last) throw new Error('confirm without a renewal in heartbeat mode'); // confirmsAt() rules it out
    const current = await client.getOrUndefined<Lease>(Leases, this.name, namespace, { signal: AbortSignal.timeout(heartbeat.answerWindowMs), unthrottled: true });
    if (!current) throw new LeaseFencedError('the lease was deleted');
    this.obeyFence(current);
    this.lease = current;
    const windowMs = Math.min(heartbeat.answerWindowMs - FENCE_MARGIN_MS, last.at + last.mode.durationMs - FENCE_MARGIN_MS - started);
    if (windowMs > 0) this.fence.renewed(started, windowMs);
    return last;
  }

  private onFenceChange(live: boolean): void {
    if (live) this.options.log.info('speaker lease renewed: answering', { lease: this.name });
    else this.options.log.warn('speaker lease not renewed in time: fenced, not answering', { lease: this.name });
    this.options.onFenceChange(!live);
  }

  private desired(now: number, answering: readonly string[], mode: RenewalMode, current?: Lease): Lease {
    const { durationMs } = mode;
    const { namespace, node } = this.options;
    const interfaces = this.options.interfaces();
    const annotations: Record<string, string> = {
      ...current?.metadata?.annotations,
      [ANSWERING_ANNOTATION]: JSON.stringify(answering),
      [LEASE_DURATION_MS_ANNOTATION]: String(durationMs),
    };
    if (interfaces) annotations[INTERFACES_ANNOTATION] = JSON.stringify(interfaces);
    else delete annotations[INTERFACES_ANNOTATION];
    const heartbeat = this.options.heartbeat;
    const endpoint = heartbeat?.endpoint();
    if (endpoint) annotations[HEARTBEAT_ANNOTATION] = endpoint;
    else delete annotations[HEARTBEAT_ANNOTATION];
    if (mode.answerWindowMs !== undefined) annotations[ANSWER_WINDOW_ANNOTATION] = String(mode.answerWindowMs);
    else delete annotations[ANSWER_WINDOW_ANNOTATION];
    const leavingSince = this.options.leavingSince?.();
    if (leavingSince) annotations[LEAVING_ANNOTATION] = leavingSince;
    else delete annotations[LEAVING_ANNOTATION];
    // Only ever written on a Lease whose fence this node obeyed (renew() checks the version it read).
    delete annotations[FENCED_BY_ANNOTATION];
    const takeover = current?.spec?.holderIdentity !== node;
    return {
      apiVersion: apiVersionOf(Leases),
      kind: 'Lease',
      metadata: { ...current?.metadata, name: this.name, namespace, labels: { ...current?.metadata?.labels, [LEASE_COMPONENT_LABEL]: LEASE_COMPONENT }, annotations },
      spec: {
        ...current?.spec,
        holderIdentity: node,
        leaseDurationSeconds: Math.max(1, Math.ceil(durationMs / 1000)),
        renewTime: microTime(now),
        acquireTime: takeover ? microTime(now) : (current?.spec?.acquireTime ?? microTime(now)),
        leaseTransitions: takeover && current ? (current.spec?.leaseTransitions ?? 0) + 1 : (current?.spec?.leaseTransitions ?? 0),
      },
    };
  }

  /** One renewal: a PUT on the lease we wrote last (one request), else read-then-write; create when missing. */
  private async renew(now: number, answering: readonly string[], mode: RenewalMode): Promise<void> {
    const { client, namespace } = this.options;
    // A renewal that takes longer than the lease is useless (the fence has tripped): every request of it ends then.
    const bounded = { signal: AbortSignal.timeout(this.options.durationMs), unthrottled: true };
    const put = (lease: Lease) =>
      client.request<Lease>('PUT', `${client.path(Leases, namespace, this.name)}?fieldManager=switchboard-speaker`, lease, 'application/json', bounded);
    if (this.lease) {
      try {
        this.lease = await put(this.desired(now, answering, mode, this.lease));
        return;
      } catch (err) {
        if (!isConflict(err) && !isNotFound(err)) throw err;
      }
    }
    const current = await client.getOrUndefined<Lease>(Leases, this.name, namespace, bounded);
    if (current) {
      this.obeyFence(current);
      this.lease = await put(this.desired(now, answering, mode, current));
      return;
    }
    try {
      this.lease = await client.create<Lease>(Leases, this.desired(now, answering, mode), bounded);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      throw new Error('the lease appeared while creating it; retrying');
    }
  }

  /** Throws LeaseFencedError for a peer's fence on `current` that this node has not obeyed yet (and obeys it). */
  private obeyFence(current: Lease): void {
    const fence = fenceOf(current);
    if (fence === undefined || fence === this.obeyedFence) return;
    this.obeyedFence = fence;
    throw new LeaseFencedError(fence);
  }

  /** Graceful stop: fence at once and delete the lease so peers take over without waiting for it to expire. */
  async release(): Promise<void> {
    this.fence.drop();
    this.publishedAnswering = new Set();
    try {
      await this.options.client.delete(Leases, this.name, { namespace: this.options.namespace, uid: this.lease?.metadata?.uid });
      this.options.log.info('released the speaker lease', { lease: this.name });
    } catch (err) {
      if (!isNotFound(err)) this.options.log.warn('could not release the speaker lease', { error: String(err) });
    }
  }
}

interface Sighting {
  renewTime: string;
  /** When this renewal counts from: when it was seen, or its renewTime if that is earlier and it was seen first. */
  seenAt: number;
  /** When this node first observed this renewal, on its clock (never a stamp of the holder's clock). */
  observedAt: number;
}

/** Peers' liveness from their Leases, judged on this node's clock. */
export class SpeakerLiveness {
  private readonly sightings = new Map<string, Sighting>();
  private readonly leases = new Map<string, Lease>();
  /** When this node first observed each Lease's current fence (its clock: at or after the fence was written). */
  private readonly fencesSeen = new Map<string, { fence: string; at: number }>();
  /** published()'s answer, kept until a Lease's holder or interfaces change: renewals change neither. */
  private publishedMemo: ReadonlyMap<string, readonly PublishedInterface[]> | undefined;
  /** Bumped by every observe() and forget(): live()'s memo is for one version and one `now`. */
  private version = 0;
  private liveMemo: { now: number; version: number; live: ReadonlySet<string> } | undefined;

  /** Records a Lease as seen now; true when the holder's liveness may have changed. */
  observe(lease: Lease, now: number): boolean {
    this.version++;
    const key = lease.metadata?.name ?? '';
    const renewTime = lease.spec?.renewTime ?? lease.spec?.acquireTime ?? '';
    const before = this.leases.get(key);
    const previous = this.sightings.get(key);
    const wasLive = before !== undefined && previous !== undefined && previous.seenAt + leaseDurationMs(before) > now;
    if (!previous || previous.renewTime !== renewTime) {
      const stamped = Date.parse(renewTime);
      const seenAt = previous || !Number.isFinite(stamped) ? now : Math.min(now, stamped);
      this.sightings.set(key, { renewTime, seenAt, observedAt: now });
    }
    this.leases.set(key, lease);
    const fence = fenceOf(lease);
    if (fence === undefined) this.fencesSeen.delete(key);
    else if (this.fencesSeen.get(key)?.fence !== fence) this.fencesSeen.set(key, { fence, at: now });
    if (before?.spec?.holderIdentity !== lease.spec?.holderIdentity || before?.metadata?.annotations?.[INTERFACES_ANNOTATION] !== lease.metadata?.annotations?.[INTERFACES_ANNOTATION]) {
      this.publishedMemo = undefined;
    }
    return !wasLive || before?.spec?.holderIdentity !== lease.spec?.holderIdentity;
  }

  forget(lease: Lease): void {
    this.version++;
    const key = lease.metadata?.name ?? '';
    this.sightings.delete(key);
    this.leases.delete(key);
    this.fencesSeen.delete(key);
    this.publishedMemo = undefined;
  }

  /** Nodes whose Lease is live in this node's view: renewed within its duration of being seen, and not fenced. */
  live(now: number): ReadonlySet<string> {
    // An election pass asks several times for one `now`; with 100 speakers this ran for every Lease each time.
    if (this.liveMemo?.now === now && this.liveMemo.version === this.version) return this.liveMemo.live;
    const live = new Set<string>();
    for (const [key, lease] of this.leases) {
      const holder = lease.spec?.holderIdentity;
      if (holder && fenceOf(lease) === undefined && (this.sightings.get(key)?.seenAt ?? 0) + leaseDurationMs(lease) > now) live.add(holder);
    }
    this.liveMemo = { now, version: this.version, live };
    return live;
  }

  /** The Leases of live nodes (unfenced, within their duration), as last seen. */
  liveLeases(now: number): Lease[] {
    const live = this.live(now);
    return [...this.leases.values()].filter((l) => live.has(l.spec?.holderIdentity ?? '') && fenceOf(l) === undefined);
  }

  /** A node's Lease, as last seen. */
  leaseOf(node: string): Lease | undefined {
    return [...this.leases.values()].find((l) => l.spec?.holderIdentity === node);
  }

  /**
   * Other nodes' Leases that are dead in this node's view but neither fenced nor deleted, as last seen: their holder
   * may be alive behind a late watch, so nothing they may answer is taken before a fence of them (lease-fence.ts).
   */
  suspects(self: string, now: number): Lease[] {
    const live = this.live(now);
    return [...this.leases.values()].filter((l) => {
      const holder = l.spec?.holderIdentity;
      return holder !== undefined && holder !== self && !live.has(holder) && fenceOf(l) === undefined;
    });
  }

  /**
   * Until when what a fenced Lease lists may still be answered by its holder: one duration after we first saw its
   * version (its last renewal's window ends before), and, when it is in heartbeat mode, one answer window after we
   * first saw the fence (its reads confirm only while unfenced, so its last window started before the fence landed).
   */
  private fencedUntil(key: string, lease: Lease): number {
    if (fenceOf(lease) === undefined) return -Infinity;
    const byRenewal = (this.sightings.get(key)?.observedAt ?? 0) + leaseDurationMs(lease);
    const byFence = (this.fencesSeen.get(key)?.at ?? Infinity) + (answerWindowMs(lease) ?? leaseDurationMs(lease));
    return Math.min(byRenewal, byFence);
  }

  /** When the next live lease expires (ms since the epoch), if any. */
  nextExpiry(now: number): number | undefined {
    let next: number | undefined;
    for (const [key, lease] of this.leases) {
      for (const expiry of [(this.sightings.get(key)?.seenAt ?? 0) + leaseDurationMs(lease), this.fencedUntil(key, lease)]) {
        if (expiry > now && (next === undefined || expiry < next)) next = expiry;
      }
    }
    return next;
  }

  /**
   * Addresses each other node says it answers (ANSWERING_ANNOTATION) and may still answer, judged now: a live node,
   * or a fenced one until one duration after we first saw the version fenced.
   */
  answeredByOthers(self: string, now: number): Map<string, string> {
    const live = this.live(now);
    const out = new Map<string, string>();
    for (const [key, lease] of this.leases) {
      const holder = lease.spec?.holderIdentity;
      if (!holder || holder === self || !(live.has(holder) || this.fencedUntil(key, lease) > now)) continue;
      for (const address of parseAnswering(lease)) out.set(address, holder);
    }
    return out;
  }

  /** Live nodes whose speaker says it is shutting down (LEAVING_ANNOTATION), judged now. */
  leaving(now: number): Set<string> {
    const live = this.live(now);
    return new Set([...this.leases.values()].filter((l) => leaseSaysLeaving(l) && live.has(l.spec?.holderIdentity ?? '')).map((l) => l.spec?.holderIdentity ?? ''));
  }

  /** What each live node published about its interfaces. */
  published(): ReadonlyMap<string, readonly PublishedInterface[]> {
    if (this.publishedMemo) return this.publishedMemo;
    const out = new Map<string, PublishedInterface[]>();
    for (const lease of this.leases.values()) {
      const text = lease.metadata?.annotations?.[INTERFACES_ANNOTATION];
      const holder = lease.spec?.holderIdentity;
      if (!text || !holder) continue;
      try {
        out.set(holder, JSON.parse(text) as PublishedInterface[]);
      } catch {
        // a malformed annotation: treat the node as able on every interface, like one that publishes nothing
      }
    }
    this.publishedMemo = out;
    return out;
  }
}

/** A Lease's ANSWERING_ANNOTATION; malformed or absent means none (an older speaker publishes none). */
function parseAnswering(lease: Lease): string[] {
  const text = lease.metadata?.annotations?.[ANSWERING_ANNOTATION];
  if (!text) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.filter((a): a is string => typeof a === 'string') : [];
  } catch {
    return [];
  }
}
