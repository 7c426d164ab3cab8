// The speaker process of one node (the DaemonSet's pod): renews the node's Lease, watches Services,
// EndpointSlices, Nodes, the speakers' Leases, L2Advertisements and IPAddressPools, elects (plan.ts), answers
// ARP/NDP for what this node wins (announcer.ts), and records who announces each Service in a ServiceL2Status
// (plus a nodeAssigned Event when this node takes a Service over). Every node runs it; there is no leader.
//
// Failover: when a peer's Lease expires (on this node's clock) a timer set for that moment re-elects at once, and
// the new winner announces with a gratuitous burst. A node that cannot renew its own Lease stops answering before
// any peer may take over (node-lease.ts), so two nodes never answer for one address. With heartbeats (heartbeat.ts)
// a dead node's ring neighbours fence its Lease within a second instead, and a fenced Lease is dead to every node.
//
// Handover between live nodes (a node back from a freeze or a partition, a node joining) is break-before-make: each
// Lease lists the addresses its node answers (ANSWERING_ANNOTATION). A node that wins an address answers it only
// once no other live node's Lease lists it, and once its own Lease does; one that loses an address stops at once
// and renews early to say so. The winners' views of who is live differ for a moment after any change; the Leases
// order the two nodes, where acting on each one's own view would let both answer.
//
// A planned departure is make-before-break instead (handover.ts): SIGTERM of the speaker (its Lease then carries
// LEAVING_ANNOTATION while it keeps renewing), a cordoned Node (spec.unschedulable) or the out-of-service taint. A
// leaving node loses its addresses to nodes that are not leaving, and what its Lease lists does not hold the
// successor back: the successor answers and sends its gratuitous burst at once. The leaving node keeps answering
// until it sees the successor's Lease list the address (and HANDOVER_LINGER_MS more), HANDOVER_TIMEOUT_MS (3 s) at
// most; on SIGTERM the process then exits and deletes its Lease. Two nodes answer together only in that window, both
// able to serve, and the successor's burst (garp-count × garp-interval, 5 × 1 s by default) outlasts it, so a client
// whose cache an answer of the old node refreshed meanwhile is moved again. Anything else (SIGKILL, a freeze, a
// partition) has no annotation and stays break-before-make under the Lease fence.
import { aborted } from '../runtime/abort.js';
import { sleep } from '../runtime/backoff.js';
import { objectKey, isNotFound, type KubeClient } from '../runtime/client.js';
import { Controller } from '../runtime/controller.js';
import { involvedObjectOf, type EventSink } from '../runtime/events.js';
import type { Informer } from '../runtime/informer.js';
import type { Logger } from '../runtime/log.js';
import type { Manager } from '../runtime/manager.js';
import { EndpointSlices, Leases, Nodes, Services } from '../../api/resources.js';
import { byLabel } from '../runtime/store.js';
import { telemetry } from '../runtime/telemetry.js';
import type { EndpointSlice, KubeObject, Lease, Node, Service } from '../../api/wire.js';
import { IPAddressPools, type IPAddressPool } from '../../crds/ipaddresspool.js';
import { L2Advertisements, type L2Advertisement } from '../../crds/l2advertisement.js';
import {
  L2ConditionAnnounced,
  LABEL_L2STATUS_NODE,
  LABEL_L2STATUS_SERVICE_NAME,
  LABEL_L2STATUS_SERVICE_NAMESPACE,
  ServiceL2Statuses,
  type ServiceL2Status,
  type ServiceL2StatusStatus,
} from '../../crds/servicel2status.js';
import { parsePools } from '../../allocators/loadbalancer/pools.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME } from '../endpointutil/constants.js';
import { conditionSays, setCondition, type ConditionDraft } from '../loadbalancer/conditions.js';
import { WrittenView } from '../loadbalancer/written-view.js';
import { parseL2Advertisements } from './advertisements.js';
import { announcedCondition } from './election.js';
import { Announcer } from './announcer.js';
import { HANDOVER_TIMEOUT_MS, Handover, LEAVING_ANNOTATION, isLeavingNode } from './handover.js';
import { L2Checker, type CheckerView } from './checker.js';
import { FENCED_BY_ANNOTATION, LeaseFencer, fenceOf } from './lease-fence.js';
import { ANSWER_WINDOW_ANNOTATION, HEARTBEAT_ANNOTATION, HeartbeatRing, answerWindowMs, formatHeartbeatEndpoint, heartbeatPeers, openUdpTransport, type HeartbeatTransport } from './heartbeat.js';
import { HandoverForwarder, macFor, type ForwardWindow } from './handover-forward.js';
import { Prober } from './prober.js';
import { chooseInterfaces, linkState, readSystemInterfaces, type InterfaceSelection, type SystemInterface } from './interfaces.js';
import { ANSWERING_ANNOTATION, INTERFACES_ANNOTATION, LEASE_SELECTOR, NodeLease, SpeakerLiveness, type PublishedInterface } from './node-lease.js';
import { deputyFor, planAnnouncements, type ServicePlan, type SpeakerPlan } from './plan.js';
import type { AnnouncementTable } from './responder.js';

export interface SpeakerOptions {
  node: string;
  /** Namespace of the speakers' Leases. */
  namespace: string;
  leaseDurationMs: number;
  leaseRenewIntervalMs: number;
  /** The Lease's pace while this node answers nothing (node-lease.ts); the pace above when not set. */
  leaseIdleDurationMs?: number;
  leaseIdleRenewIntervalMs?: number;
  garpCount: number;
  garpIntervalMs: number;
  garpRefreshIntervalMs: number;
  interfaces: InterfaceSelection;
  /** How often the interfaces are re-read (they come and go, and their addresses change). */
  interfaceScanIntervalMs: number;
  requireSubnet: boolean;
  loadBalancerClass: string;
  handleUnsetClass: boolean;
  ignoreExcludeLabel: boolean;
  /** How often each announced address is self-checked by its prober (checker.ts); 0 turns it off. */
  selfCheckIntervalMs: number;
  /** Probe frames a second, at most, for the self-check and conflict probes together. */
  probeRatePerSecond: number;
  /** Forward the leaving node's TCP connections to it during a planned handover (handover-forward.ts). */
  handoverForward?: boolean;
  /** Probes before an address is first announced (RFC 5227); 0 turns conflict detection off. */
  conflictProbeCount: number;
  conflictProbeIntervalMs: number;
  /**
   * Peer heartbeats (heartbeat.ts): this node's UDP address and port, the interval and the answer window. Unset: no
   * heartbeats, and the Lease renews fast while the node answers.
   */
  heartbeat?: { address: string; port: number; intervalMs: number; answerWindowMs: number };
  /** Injected for tests: the interfaces of this node. */
  readInterfaces?: () => SystemInterface[];
}

const SERVICE_REF = { apiVersion: 'v1', kind: 'Service' };
/** How often the links of the interfaces in use are checked (two small sysfs reads each). */
const LINK_CHECK_MS = 100;
/** Skip reasons that a link change can undo. */
const LINK_REASONS: ReadonlySet<string> = new Set(['down', 'no carrier']);
/** leave() waits this much beyond the handover timeout for the last election pass to run. */
const LEAVE_MARGIN_MS = 200;
/** A neighbour that acked nothing this node sent for this long may not hear it (heartbeat.ts acked()). */
const ACK_TIMEOUT_MS = 2000;
/** After a neighbour stops acking, the Lease stays out of heartbeat mode this long (node-lease.ts, heartbeat.ts). */
const FAST_MODE_HOLD_MS = 10_000;
/** The checker's view is rebuilt after every election pass, and at least this often (answeredByOthers moves with time). */
const CHECKER_VIEW_MAX_AGE_MS = 1000;
/** Informer events arrive in bursts (a rollout touches many slices): one election pass per burst. */
const COALESCE_MS = 10;

export class Speaker {
  readonly lease: NodeLease;
  readonly announcer: Announcer;
  private readonly prober: Prober;
  /** Off with --handover-forward=false. */
  private readonly forwarder: HandoverForwarder | undefined;
  private readonly checker: L2Checker;
  private readonly fencer: LeaseFencer;
  private readonly liveness = new SpeakerLiveness();
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly nodes: Informer<Node>;
  private readonly leases: Informer<Lease>;
  private readonly ads: Informer<L2Advertisement>;
  private readonly pools: Informer<IPAddressPool>;
  private readonly statuses: Informer<ServiceL2Status>;
  private readonly statusView: WrittenView<ServiceL2Status>;
  private readonly statusController: Controller;
  private readonly client: KubeClient;
  private readonly events: EventSink;
  private readonly log: Logger;
  private plan: SpeakerPlan = { services: new Map(), table: new Map() };
  /** Live speakers as of the last election pass. */
  private live: ReadonlySet<string> = new Set<string>();
  private published: PublishedInterface[] | undefined;
  /** Interfaces whose link is checked often, and their state at the last scan. */
  private watchedLinks: string[] = [];
  private linkStates = '';
  /** Addresses this node wins and no other live node answers: what its Lease should list. */
  private wanted: ReadonlySet<string> = new Set();
  /** What the Lease lists that this node's Lease watch has shown it listing: what it may answer (elect()). */
  private answerable: ReadonlySet<string> = new Set();
  /** What the announcer answers (set by each election pass). */
  private answering: AnnouncementTable = new Map();
  /** Addresses handed over to this node by a leaving node that may still answer them (not a conflict). */
  private inherited: ReadonlySet<string> = new Set();
  /** The addresses this node, leaving, still answers for its successors. */
  private readonly handover: Handover;
  /** When SIGTERM came (RFC 3339); then this node is leaving. */
  private leavingSince: string | undefined;
  /** When a Warning was last recorded for an address another MAC claims (at most one a minute). */
  private readonly conflictEvents = new Map<string, number>();
  private running = false;
  private pendingPass: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** The heartbeat ring, while it runs (options.heartbeat), and how many members it had at the last election pass. */
  private ring: HeartbeatRing | undefined;
  private ringMembers = 0;
  /** What the ring's members were last set from (holder, endpoint, mode of each live Lease): set again only on change. */
  private ringKey = '';
  /** When a neighbour last stopped acking this node: heartbeat mode waits FAST_MODE_HOLD_MS after it. */
  private unackedAt = -Infinity;
  private holdTimer: NodeJS.Timeout | undefined;
  /** When this node last saw a peer's fence land on its own Lease. */
  private fencedAt = -Infinity;
  /** Election passes so far: what the checker's view was built after. */
  private passes = 0;
  private checkerViewMemo: { pass: number; builtAt: number; view: CheckerView } | undefined;

  constructor(
    manager: Manager,
    private readonly options: SpeakerOptions,
  ) {
    this.client = manager.client;
    this.events = manager.events;
    this.log = manager.log.child('speaker', { node: options.node });
    this.services = manager.informer<Service>(Services);
    this.slices = manager.informer<EndpointSlice>(EndpointSlices, { indexers: { service: byLabel(LABEL_ENDPOINTSLICE_SERVICE_NAME) } });
    this.nodes = manager.informer<Node>(Nodes);
    this.leases = manager.informer<Lease>(Leases, { namespace: options.namespace, labelSelector: LEASE_SELECTOR });
    this.ads = manager.informer<L2Advertisement>(L2Advertisements);
    this.pools = manager.informer<IPAddressPool>(IPAddressPools);
    this.statuses = manager.informer<ServiceL2Status>(ServiceL2Statuses, { labelSelector: LABEL_L2STATUS_SERVICE_NAME });
    this.statusView = new WrittenView(this.statuses.store);

    const heartbeatEndpoint = options.heartbeat && formatHeartbeatEndpoint(options.heartbeat.address, options.heartbeat.port);
    this.lease = new NodeLease({
      client: this.client,
      namespace: options.namespace,
      node: options.node,
      durationMs: options.leaseDurationMs,
      renewIntervalMs: options.leaseRenewIntervalMs,
      idleDurationMs: options.leaseIdleDurationMs,
      idleRenewIntervalMs: options.leaseIdleRenewIntervalMs,
      log: this.log.child('lease'),
      interfaces: () => this.published,
      answering: () => [...this.wanted],
      leavingSince: () => this.leavingSince,
      onFenceChange: () => this.elect(),
      onRenewed: (published) => {
        if (!sameSet(published, this.answeringNow)) this.schedule(0);
      },
      resync: () => this.resync(options.leaseDurationMs),
      heartbeat: options.heartbeat && {
        // Published only while the ring runs (peers expect heartbeats, and acks, from a Lease that says where), and
        // not for FAST_MODE_HOLD_MS after a peer fenced this node's Lease: a node cut off from the LAN but not from the
        // API rejoined the ring with every renewal and was fenced again 600 ms later, about once a second.
        endpoint: () => (this.inRing() ? heartbeatEndpoint : undefined),
        answerWindowMs: options.heartbeat.answerWindowMs,
        acked: () => this.inRing() && (this.ring?.acked() ?? false) && Date.now() - this.unackedAt >= FAST_MODE_HOLD_MS,
        members: () => this.ringMembers,
      },
    });
    this.announcer = new Announcer({
      garpCount: options.garpCount,
      garpIntervalMs: options.garpIntervalMs,
      refreshIntervalMs: options.garpRefreshIntervalMs,
      requireSubnet: options.requireSubnet,
      mayAnswer: (at) => this.lease.liveSince(at),
      onConflict: (address, mac) => this.onConflict(address, mac),
      log: this.log.child('announcer'),
    });

    this.handover = new Handover((address, successor) =>
      successor ? this.log.info('handed over', { address, node: successor }) : this.log.warn('no successor answered in time: stopping anyway', { address, waitedMs: HANDOVER_TIMEOUT_MS }),
    );
    this.fencer = new LeaseFencer({
      client: this.client,
      namespace: options.namespace,
      node: options.node,
      log: this.log.child('fence'),
      onSettled: (outcome) => {
        if ('lease' in outcome) this.liveness.observe(outcome.lease, Date.now());
        else if ('gone' in outcome) this.liveness.forget({ metadata: { name: outcome.gone } });
        this.schedule(0);
      },
    });
    this.prober = new Prober({ ratePerSecond: options.probeRatePerSecond, requireSubnet: options.requireSubnet, log: this.log.child('prober') });
    this.forwarder = options.handoverForward ? new HandoverForwarder({ log: this.log.child('handover-forward'), onReady: () => this.schedule(0) }) : undefined;
    this.checker = new L2Checker({
      node: options.node,
      client: this.client,
      events: this.events,
      log: this.log.child('l2check'),
      prober: this.prober,
      services: this.services.store,
      pools: this.pools.store,
      statuses: this.statusView,
      selfCheckIntervalMs: options.selfCheckIntervalMs,
      classes: { loadBalancerClass: options.loadBalancerClass, handleUnsetClass: options.handleUnsetClass },
      // A few probes over a short window (RFC 5227 waits seconds): an answer on a LAN takes well under 10 ms.
      conflictProbe: options.conflictProbeCount > 0 ? { count: options.conflictProbeCount, intervalMs: options.conflictProbeIntervalMs, waitMs: 2 * options.conflictProbeIntervalMs } : undefined,
      view: () => this.checkerView(),
      onChange: () => this.schedule(0),
    });

    this.statusController = new Controller({ name: 'servicel2status', reconcile: (key) => this.writeStatus(key), workers: 2, log: this.log });
    manager.addController(this.statusController);
    const later = () => this.schedule();
    const watch = <T extends KubeObject>(informer: Informer<T>, extra?: (old: T, obj: T) => boolean) =>
      informer.addEventHandler({ onAdd: later, onDelete: later, onUpdate: (old, obj) => (extra === undefined || extra(old, obj) ? later() : undefined) });
    watch(this.services);
    watch(this.slices);
    watch(this.nodes, (a: Node, b: Node) => electionFacts(a) !== electionFacts(b));
    watch(this.ads);
    watch(this.pools);
    this.leases.addEventHandler({
      onAdd: (l) => this.observeLease(undefined, l),
      onUpdate: (old, l) => this.observeLease(old, l),
      onDelete: (l) => {
        this.liveness.forget(l);
        this.schedule(0);
      },
    });
    this.statuses.addEventHandler({ onUpdate: (_old, s) => this.statusController.enqueue(objectKey(s)), onDelete: (s) => this.statusController.enqueue(objectKey(s)) });

    manager.addRunnable({
      name: 'speaker-lease',
      needsLeaderElection: false,
      run: async (signal) => {
        await this.lease.run(signal);
        await this.lease.release();
      },
    });
    // "Leader" work runs once the caches are synced; every speaker "leads" (leader election is off).
    manager.addRunnable({ name: 'speaker', needsLeaderElection: true, run: (signal) => this.run(signal) });
    manager.health.addReadyCheck('speaker-lease', () => this.lease.live);
    telemetry()
      .meter.createObservableGauge('switchboard_speaker_lease_live', { description: '1 while this node renews its lease in time and may answer' })
      .addCallback((r) => r.observe(this.lease.live ? 1 : 0, { node: options.node }));
  }

  /** In the ring: it runs, and no peer fenced this node's Lease in the last FAST_MODE_HOLD_MS. */
  private inRing(): boolean {
    return this.ring !== undefined && Date.now() - this.fencedAt >= FAST_MODE_HOLD_MS;
  }

  /** Renews once FAST_MODE_HOLD_MS from now have passed: the hold that starts now may end heartbeat mode's wait. */
  private holdFastMode(): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => this.lease.renewSoon(), FAST_MODE_HOLD_MS + 1);
  }

  private observeLease(old: Lease | undefined, lease: Lease): void {
    const changed = this.liveness.observe(lease, Date.now());
    const republished = [INTERFACES_ANNOTATION, ANSWERING_ANNOTATION, LEAVING_ANNOTATION, FENCED_BY_ANNOTATION, HEARTBEAT_ANNOTATION, ANSWER_WINDOW_ANNOTATION].some((a) => old?.metadata?.annotations?.[a] !== lease.metadata?.annotations?.[a]);
    if (changed || republished) this.schedule(0);
    // This node's own Lease, fenced by a peer: every node now judges it dead, and an idle node would not learn it
    // before its next renewal (10 s or more in heartbeat mode). Renew now: the renewal obeys and clears the fence.
    const fence = fenceOf(lease);
    if (lease.spec?.holderIdentity === this.options.node && fence !== undefined && fence !== (old && fenceOf(old))) {
      // A fence this process saw land; one from before it started (its predecessor's death) is no reason to wait.
      if (old !== undefined) {
        this.fencedAt = Date.now();
        this.holdFastMode();
      }
      this.lease.renewSoon();
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    this.running = true;
    this.scanInterfaces();
    const scan = setInterval(() => this.scanInterfaces(), this.options.interfaceScanIntervalMs);
    const links = setInterval(() => this.checkLinks(), LINK_CHECK_MS);
    const transport = await this.startRing();
    await this.forwarder?.removeStale();
    this.elect();
    this.checker.start();
    await aborted(signal);
    this.running = false;
    this.ring?.stop();
    this.ring = undefined;
    clearTimeout(this.holdTimer);
    transport?.close();
    this.checker.stop();
    this.prober.close();
    clearInterval(scan);
    clearInterval(links);
    if (this.pendingPass) clearTimeout(this.pendingPass);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.announcer.close();
    await this.forwarder?.closeAll();
  }

  /**
   * SIGTERM: marks this node leaving and hands every address that has a successor over, make before break; resolves
   * once it answers none of them (HANDOVER_TIMEOUT_MS at most). The caller then stops the speaker, which deletes the
   * Lease (addresses without a successor stop then).
   */
  async leave(): Promise<void> {
    if (!this.running || this.leavingSince) return;
    this.leavingSince = new Date().toISOString();
    this.log.info('leaving: handing addresses over before stopping', { addresses: [...this.answering.keys()] });
    this.lease.renewSoon();
    this.elect();
    const deadline = Date.now() + HANDOVER_TIMEOUT_MS + LEAVE_MARGIN_MS;
    while (this.handover.size > 0 && this.running && Date.now() < deadline) await sleep(20);
  }

  /** Starts the heartbeat ring (heartbeat.ts) when configured; its transport, to close at the end. */
  private async startRing(): Promise<HeartbeatTransport | undefined> {
    const hb = this.options.heartbeat;
    if (!hb) return undefined;
    let ring: HeartbeatRing | undefined;
    const log = this.log.child('heartbeat');
    let transport: HeartbeatTransport;
    try {
      transport = await openUdpTransport(hb.address, hb.port, (datagram) => ring?.receive(datagram), log);
    } catch (err) {
      // A port in use or an address the node lacks: answer without heartbeats (fast Lease renewals), never stop.
      log.error('cannot receive heartbeats: running without them (check --heartbeat-address and --heartbeat-port)', { address: formatHeartbeatEndpoint(hb.address, hb.port), error: String(err) });
      return undefined;
    }
    ring = new HeartbeatRing({
      node: this.options.node,
      intervalMs: hb.intervalMs,
      transport,
      log,
      // Silence after 4 intervals (failover = that + one answer window). Missing acks only after ACK_TIMEOUT_MS: a
      // neighbour whose loop stalled for a second must not send every node it watches back to fast renewals (in the
      // 100-speaker bench that fed on itself); a link that really lost one direction costs one needless fence first.
      deadAfterMs: 4 * hb.intervalMs,
      ackTimeoutMs: Math.max(4 * hb.intervalMs, ACK_TIMEOUT_MS),
      onSilent: (nodes) => this.fenceSilent(nodes),
      // A node its neighbours do not ack (UDP lost one way) renews fast at once, so they judge it by its Lease; it
      // goes back to heartbeat mode no sooner than FAST_MODE_HOLD_MS later, so a flapping link costs few writes.
      onAckedChange: (acked) => {
        if (!acked) {
          this.unackedAt = Date.now();
          this.holdFastMode();
        }
        if (!acked || Date.now() - this.unackedAt >= FAST_MODE_HOLD_MS) this.lease.renewSoon();
      },
    });
    this.ring = ring;
    ring.start();
    // The Lease was written before the ring ran (not in heartbeat mode): say so now, not at the next idle renewal.
    this.lease.renewSoon();
    return transport;
  }

  /**
   * Ring neighbours silent for too long (heartbeat.ts): fence their Leases, so that every node sees them dead at once.
   * Only Leases in heartbeat mode, as judged; a node that cannot renew its own Lease fences nobody.
   */
  private fenceSilent(nodes: readonly string[]): void {
    if (!this.lease.live) return;
    const leases = nodes.map((n) => this.liveness.leaseOf(n)).filter((l): l is Lease => l !== undefined && fenceOf(l) === undefined && answerWindowMs(l) !== undefined);
    if (leases.length === 0) return;
    this.log.info('heartbeat neighbours silent: fencing their leases', { nodes: leases.map((l) => l.spec?.holderIdentity) });
    this.fencer.fence(leases);
  }

  /** Nodes that are leaving: their speaker says so, their Node is cordoned or out of service, or this one got SIGTERM. */
  private leavingNodes(now: number): Set<string> {
    const leaving = this.liveness.leaving(now);
    for (const node of this.nodes.store.list()) if (isLeavingNode(node)) leaving.add(node.metadata?.name ?? '');
    if (this.leavingSince) leaving.add(this.options.node);
    return leaving;
  }

  /** Restarts the watches now (they back off while the API is away) and waits for their relists, up to `timeoutMs`. */
  private async resync(timeoutMs: number): Promise<void> {
    const informers: Pick<Informer<KubeObject>, 'stop' | 'start' | 'listCount' | 'resource'>[] = [this.services, this.slices, this.nodes, this.leases, this.ads, this.pools, this.statuses];
    const before = informers.map((i) => i.listCount);
    await Promise.all(
      informers.map(async (i) => {
        await i.stop();
        i.start();
      }),
    );
    const deadline = Date.now() + timeoutMs;
    while (informers.some((i, k) => i.listCount === before[k]) && Date.now() < deadline) await sleep(20);
    this.log.info('resynced after a fence', { relisted: informers.filter((i, k) => i.listCount !== before[k]).map((i) => i.resource.plural) });
  }

  /** Rescans at once when an interface in use, or one left out for its link, goes down or up, or loses carrier. */
  private checkLinks(): void {
    if (this.options.readInterfaces) return; // injected interfaces have no links to watch
    const state = this.watchedLinks.map((name) => linkState(name)).join(',');
    if (state !== this.linkStates) this.scanInterfaces();
  }

  private scanInterfaces(): void {
    const all = (this.options.readInterfaces ?? readSystemInterfaces)();
    const choice = chooseInterfaces(all, this.options.interfaces);
    const published = choice.eligible.map((i) => ({ name: i.name, cidrs: this.options.requireSubnet ? i.cidrs : ['0.0.0.0/0', '::/0'], mac: i.mac }));
    this.watchedLinks = [...choice.eligible.map((i) => i.name), ...choice.skipped.filter((s) => LINK_REASONS.has(s.reason)).map((s) => s.name)];
    this.linkStates = this.options.readInterfaces ? '' : this.watchedLinks.map((name) => linkState(name)).join(',');
    if (JSON.stringify(published) !== JSON.stringify(this.published)) {
      this.log.info('interfaces', { eligible: published, skipped: choice.skipped });
      this.published = published;
      // Stops answering on an interface that went at once, and tells the peers now rather than at the next renewal.
      this.announcer.setInterfaces(choice.eligible);
      this.prober.setInterfaces(choice.eligible);
      this.lease.renewSoon();
      this.schedule();
    }
  }

  private schedule(delayMs = COALESCE_MS): void {
    if (!this.running) return;
    if (this.pendingPass && delayMs > 0) return;
    if (this.pendingPass) clearTimeout(this.pendingPass);
    this.pendingPass = setTimeout(() => this.elect(), delayMs);
  }

  /** One election pass: the announcement table, and the ServiceL2Status writes it implies. */
  private elect(): void {
    if (this.pendingPass) clearTimeout(this.pendingPass);
    this.pendingPass = undefined;
    if (!this.running) return;
    this.passes++;
    const now = Date.now();
    this.live = this.liveness.live(now);
    if (this.ring) {
      const live = this.liveness.liveLeases(now);
      const key = live.map((l) => `${l.spec?.holderIdentity} ${l.metadata?.annotations?.[HEARTBEAT_ANNOTATION]} ${answerWindowMs(l)}`).join('\n');
      if (key !== this.ringKey) {
        this.ringKey = key;
        const peers = heartbeatPeers(live);
        this.ring.setPeers(peers);
        this.ringMembers = peers.length;
      }
    }
    const leaving = this.leavingNodes(now);
    const previous = this.plan;
    this.plan = planAnnouncements({
      self: this.options.node,
      services: this.services.store.list(),
      slicesOf: (key) => this.slices.store.byIndex('service', key),
      nodes: this.nodes.store.list(),
      live: this.live,
      leaving,
      pools: parsePools(this.pools.store.list()).pools,
      advertisements: parseL2Advertisements(this.ads.store.list()).advertisements,
      published: this.liveness.published(),
      loadBalancerClass: this.options.loadBalancerClass,
      handleUnsetClass: this.options.handleUnsetClass,
      ignoreExcludeLabel: this.options.ignoreExcludeLabel,
    });
    let won = this.lease.live ? this.plan.table : new Map<string, never>();
    // Nothing new while a Lease this node judges dead is not fenced: its holder may be alive behind a late watch
    // (lease-fence.ts). What this node already wanted stays: it decided while that node was live in its view.
    const suspects = this.liveness.suspects(this.options.node, now);
    const waiting = suspects.length > 0 ? [...won.keys()].filter((a) => !this.wanted.has(a)) : [];
    if (waiting.length > 0) {
      // Only a node with something to take fences: the others leave the write (one per death) to it.
      this.fencer.fence(suspects);
      this.log.debug('waiting for a fence before answering', { addresses: waiting, leases: suspects.map((l) => l.metadata?.name) });
      won = new Map([...won].filter(([a]) => this.wanted.has(a)));
    }
    const others = this.liveness.answeredByOthers(this.options.node, now);
    // Make before break: what a leaving node lists does not hold its successor back.
    const blocking = new Map([...others].filter(([, node]) => !leaving.has(node)));
    this.inherited = new Set([...won.keys()].filter((a) => others.has(a) && !blocking.has(a)));
    for (const address of won.keys()) {
      if (blocking.has(address) && !this.wanted.has(address)) this.log.info('waiting for the previous node to stop answering', { address, node: blocking.get(address) });
    }
    const handing = this.handover.pass({
      leaving: leaving.has(this.options.node) && this.lease.live,
      answering: this.answering,
      won: new Set(won.keys()),
      listedByOthers: others,
      now,
    });
    const published = this.lease.answering;
    // Answered: what a leaving node hands over (inherited), and what no other node lists once the checker clears it
    // (an address nobody announced before is probed for a foreign holder first; the rest pass at once).
    const cleared = this.checker.gate([...won.keys()].filter((a) => !others.has(a)), published);
    this.checker.retain(new Set(won.keys()));
    this.wanted = new Set([...[...won.keys()].filter((a) => this.inherited.has(a) || cleared.has(a)), ...handing.keys()]);
    // What the Lease lists is answered once this node's Lease watch has delivered the renewal that listed it: watch
    // events come in resourceVersion order, so a peer's Lease that listed the same address earlier (two nodes whose
    // views of who wins differ for a moment) is in `others` by then and this node yields; the earlier one may answer.
    const caughtUp = this.liveness.leaseOf(this.options.node)?.metadata?.resourceVersion === this.lease.version;
    this.answerable = caughtUp ? published : new Set([...published].filter((a) => this.answerable.has(a)));
    // Connections too: an address taken from a leaving node is answered once segments of the connections that node
    // holds are sent on to it (handover-forward.ts), or forwarding turned out to be unavailable.
    // An address with no window (forwarding off, the old node's MAC unknown) is answered at once, as before.
    const windows = this.forwarder ? [...this.inherited].filter((a) => this.wanted.has(a) && this.answerable.has(a)).flatMap((a) => this.forwardWindow(a, others.get(a) ?? '')) : [];
    this.forwarder?.sync(windows);
    const opening = new Set(windows.filter((w) => !this.answering.has(w.address) && !this.forwarder?.ready(w.address)).map((w) => w.address));
    this.answering = new Map(
      [...won, ...handing]
        .filter(([address]) => this.wanted.has(address) && this.answerable.has(address) && !opening.has(address))
        .map(([address, a]) => [address, this.inherited.has(address) ? { ...a, inherited: true } : a]),
    );
    this.announcer.setTable(this.answering);
    if (!sameSet(this.wanted, published)) this.lease.renewSoon();
    for (const key of new Set([...previous.services.keys(), ...this.plan.services.keys(), ...this.statusView.keys()])) {
      if (this.statusNeedsWrite(key)) this.statusController.enqueue(key);
    }
    const next = Math.min(this.liveness.nextExpiry(now) ?? Infinity, this.handover.nextDeadline() ?? Infinity);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = next === Infinity ? undefined : setTimeout(() => this.elect(), next - now + 1);
  }

  /** Where segments of `oldNode`'s connections to `address` arrive here and go on to; none when its MAC is unknown. */
  private forwardWindow(address: string, oldNode: string): ForwardWindow[] {
    const oldMac = macFor(address, this.liveness.published().get(oldNode) ?? []);
    const interfaces = this.announcer.interfacesFor(address, this.plan.table).flatMap((name) => {
      const mac = this.published?.find((p) => p.name === name)?.mac;
      return mac ? [{ name, mac }] : [];
    });
    return oldMac && interfaces.length > 0 ? [{ address, oldMac, interfaces }] : [];
  }

  /**
   * The checker asks every 100 ms; with 100 speakers on one machine building the view each time (every Lease walked)
   * was a tenth of their CPU. It is kept until the next election pass, and at most CHECKER_VIEW_MAX_AGE_MS.
   */
  private checkerView(): CheckerView {
    const now = Date.now();
    const memo = this.checkerViewMemo;
    if (memo && memo.pass === this.passes && now - memo.builtAt < CHECKER_VIEW_MAX_AGE_MS) return memo.view;
    const view = this.buildCheckerView(now);
    this.checkerViewMemo = { pass: this.passes, builtAt: now, view };
    return view;
  }

  private buildCheckerView(now: number): CheckerView {
    const macOwners = new Map<string, string>();
    const published = this.liveness.published();
    for (const [node, interfaces] of published) for (const i of interfaces) if (i.mac) macOwners.set(i.mac.toLowerCase(), node);
    const macsComplete = [...this.live].every((node) => published.get(node)?.every((i) => i.mac) ?? false);
    return {
      plan: this.plan,
      live: this.live,
      answeredByOthers: this.liveness.answeredByOthers(this.options.node, now),
      answering: this.answeringNow,
      published,
      macOwners,
      macsComplete,
    };
  }

  /** The addresses the announcer answers now. */
  private get answeringNow(): ReadonlySet<string> {
    return new Set(this.announcer.announced());
  }

  /**
   * Another MAC answers for an address this node announces: a foreign host, or a peer whose view lags. Look again at
   * once (a peer's Lease may say it is still handing over), and say so on the Service.
   */
  private onConflict(address: string, mac: string): void {
    this.schedule(0);
    if (this.handover.has(address) || this.inherited.has(address)) return; // a planned handover's overlap
    const now = Date.now();
    if ((this.conflictEvents.get(address) ?? 0) + 60_000 > now) return;
    this.conflictEvents.set(address, now);
    const plan = [...this.plan.services.values()].find((p) => p.addresses.includes(address));
    if (!plan) return;
    this.events.event(involvedObjectOf(plan.service, SERVICE_REF), 'Warning', 'AddressConflict', `${mac} also answers for ${address}, which node ${JSON.stringify(this.options.node)} announces`);
  }

  /** The ServiceL2Status this node should write for a Service, if any: as its announcer, or as deputy when nobody announces. */
  private desiredStatus(key: string): { plan: ServicePlan; status: ServiceL2StatusStatus; condition: ConditionDraft } | undefined {
    const plan = this.plan.services.get(key);
    if (!plan || !this.lease.live) return undefined;
    const { winner } = plan.result;
    const self = this.options.node;
    if (winner !== self && (winner !== undefined || deputyFor(key, this.live) !== self)) return undefined;
    const conflict = winner === self ? this.checker.conflictOf(plan.addresses) : undefined;
    if (conflict) {
      const message = `${conflict.address} is already answered on the LAN by ${conflict.foreign.join(', ')} (not a speaker): not announced until the allocator moves the Service or the address is free`;
      const status: ServiceL2StatusStatus = { node: '', serviceName: plan.service.metadata?.name, serviceNamespace: plan.service.metadata?.namespace, addresses: plan.addresses, interfaces: [] };
      return { plan, status, condition: { type: L2ConditionAnnounced, status: 'False', reason: 'AddressConflict', message } };
    }
    // Elected, but the previous node may still answer (break before make): the status names this node once it does.
    const answering = this.announcer.announced();
    if (winner === self && !plan.addresses.every((a) => answering.includes(a))) return undefined;
    const interfaces = winner === self ? [...new Set(plan.addresses.flatMap((a) => this.announcer.interfacesFor(a, this.plan.table)))].sort() : [];
    let condition: ConditionDraft = announcedCondition(plan.result);
    if (winner === self && interfaces.length === 0) {
      condition = { type: L2ConditionAnnounced, status: 'False', reason: 'AnnounceFailed', message: `node ${JSON.stringify(self)} was elected but has no usable interface on the subnet of ${plan.addresses.join(', ')}` };
    }
    const status: ServiceL2StatusStatus = {
      node: winner ?? '',
      serviceName: plan.service.metadata?.name,
      serviceNamespace: plan.service.metadata?.namespace,
      addresses: plan.addresses,
      interfaces: interfaces.map((name) => ({ name })),
    };
    return { plan, status, condition };
  }

  private statusNeedsWrite(key: string): boolean {
    const desired = this.desiredStatus(key);
    const existing = this.statusView.get(key);
    if (!desired) return existing !== undefined && !this.plan.services.has(key) && deputyFor(key, this.live) === this.options.node;
    return !existing || !sameStatus(existing.status, desired.status) || !conditionSays(existing.status?.conditions, desired.condition);
  }

  private async writeStatus(key: string): Promise<void> {
    const existing = this.statusView.get(key);
    const desired = this.desiredStatus(key);
    if (!desired) {
      // The Service no longer announces anything (deleted, no address, not ours): its status goes, by the deputy.
      if (existing && this.statusNeedsWrite(key)) {
        await this.client.delete(ServiceL2Statuses, existing.metadata.name ?? '', { namespace: existing.metadata.namespace, uid: existing.metadata.uid }).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      }
      return;
    }
    if (existing && sameStatus(existing.status, desired.status) && conditionSays(existing.status?.conditions, desired.condition)) return;
    const { plan, status, condition } = desired;
    const svc = plan.service;
    const labels = { [LABEL_L2STATUS_NODE]: status.node ?? '', [LABEL_L2STATUS_SERVICE_NAME]: svc.metadata?.name ?? '', [LABEL_L2STATUS_SERVICE_NAMESPACE]: svc.metadata?.namespace ?? '' };
    let object = existing;
    if (!object) {
      object = await this.client.create<ServiceL2Status>(ServiceL2Statuses, {
        metadata: {
          name: svc.metadata?.name,
          namespace: svc.metadata?.namespace,
          labels,
          ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: svc.metadata?.name ?? '', uid: svc.metadata?.uid ?? '' }],
        },
        spec: {},
      });
      this.statusView.wrote(key, undefined, object);
    }
    const conditions = setCondition(object.status?.conditions, condition, new Date(), svc.metadata?.generation);
    const written = await this.client.replace<ServiceL2Status>(ServiceL2Statuses, { ...object, status: { ...status, observedGeneration: svc.metadata?.generation, conditions } }, 'status');
    this.statusView.wrote(key, existing, written);
    if (object.metadata.labels?.[LABEL_L2STATUS_NODE] !== labels[LABEL_L2STATUS_NODE]) {
      const relabelled = await this.client.patch<ServiceL2Status>(ServiceL2Statuses, object.metadata.name ?? '', { metadata: { labels } }, 'merge', { namespace: object.metadata.namespace });
      this.statusView.wrote(key, existing, relabelled);
    }
    const tookOver = status.node === this.options.node && existing?.status?.node !== this.options.node;
    if (tookOver && condition.status === 'True') {
      this.events.event(involvedObjectOf(svc, SERVICE_REF), 'Normal', 'nodeAssigned', plan.result.message);
    } else if (tookOver) {
      this.events.event(involvedObjectOf(svc, SERVICE_REF), 'Warning', 'announceFailed', condition.message);
    }
    this.log.info('recorded announcement', { service: key, node: status.node, reason: condition.reason, message: condition.message });
  }
}

/** What the election reads of a Node (its status heartbeats are noise). */
const electionFacts = (n: Node): string =>
  JSON.stringify([n.metadata?.labels, n.status?.conditions?.find((c) => c.type === 'NetworkUnavailable')?.status, isLeavingNode(n)]);

const sameStatus = (a: ServiceL2StatusStatus | undefined, b: ServiceL2StatusStatus): boolean =>
  (a?.node ?? '') === (b.node ?? '') &&
  JSON.stringify(a?.addresses ?? []) === JSON.stringify(b.addresses ?? []) &&
  JSON.stringify((a?.interfaces ?? []).map((i) => i.name)) === JSON.stringify((b.interfaces ?? []).map((i) => i.name)) &&
  a?.serviceName === b.serviceName &&
  a?.serviceNamespace === b.serviceNamespace;

const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((x) => b.has(x));
