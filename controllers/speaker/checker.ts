// The speaker's two uses of the prober (prober.ts), with their API writes (decisions in l2-check.ts):
//
// - Conflict detection before first use: an address this node won and that nobody announced before (no
//   ServiceL2Status lists it, no Lease says it is answered) is probed `conflictProbe.count` times first; the speaker
//   answers it only once the probe came back silent. An address announced before (a failover, a handover, a
//   restart) is never delayed. A foreign answer keeps it unannounced, puts it in its IPAddressPool's
//   status.conflicts (the allocator then moves the Service, controllers/loadbalancer) and says so with a Warning
//   Event. When a pool is created or changed, its deputy probes its free addresses (up to POOL_SWEEP_LIMIT) the same
//   way, so the allocator avoids a taken address from the start; it also re-probes each recorded conflict every
//   CONFLICT_RECHECK_MS and removes it once silent.
// - Self-check: every `selfCheckIntervalMs` the prober of each Service (l2-check.ts proberFor: one non-owner per
//   Service, a node on the subnet when only the winner is eligible, the winner itself when it is alone) probes its
//   addresses and writes the Service's L2Healthy condition when the confirmed outcome changes, with a Warning Event for a foreign or a second responder. Once a Service leaves the speakers' care, its deputy
//   removes that condition.
import { formatIP, parseIPStrict } from '../../api/ip.js';
import { Services } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { IPAddressPools, type AddressConflict, type IPAddressPool } from '../../crds/ipaddresspool.js';
import type { Condition } from '../../crds/meta.js';
import type { ServiceL2Status } from '../../crds/servicel2status.js';
import { exclusionOf, locateAddress, parsePools } from '../../allocators/loadbalancer/pools.js';
import { serviceKey } from '../../allocators/loadbalancer/service-request.js';
import { isConflict, isNotFound, type KubeClient } from '../runtime/client.js';
import { involvedObjectOf, type EventSink } from '../runtime/events.js';
import type { Logger } from '../runtime/log.js';
import type { Store } from '../runtime/store.js';
import { telemetry } from '../runtime/telemetry.js';
import { conditionSays, rfc3339, setCondition } from '../loadbalancer/conditions.js';
import { L2_HEALTHY, OutcomeFilter, classify, l2HealthyCondition, preUseVerdict, proberFor, staleHealthKeys, withConflict, type AddressCheck, type ClassFilter } from './l2-check.js';
import type { PublishedInterface } from './node-lease.js';
import { ableInterfaces, deputyFor, type ServicePlan, type SpeakerPlan } from './plan.js';
import type { ProbeShape, Prober } from './prober.js';

/** One self-check probe: one frame, answers collected for 200 ms (an answer on a LAN takes well under 10 ms). */
const SELF_CHECK_PROBE: ProbeShape = { count: 1, intervalMs: 0, waitMs: 200 };
/** A recorded conflict is probed again this often, by the pool's deputy, and removed once nobody answers. */
const CONFLICT_RECHECK_MS = 30_000;
/** After a speaker answered a pre-use probe (a handover in flight), probe again this much later. */
const BUSY_RETRY_MS = 1000;
const TICK_MS = 100;
/** Probes in flight at once (the token bucket paces their frames; this bounds the timers). */
const MAX_IN_FLIGHT = 64;
const SERVICE_REF = { apiVersion: 'v1', kind: 'Service' };
/** Free addresses of a new or changed pool probed, at most (a /16 is not swept whole: the pre-use probe still covers each address). */
const POOL_SWEEP_LIMIT = 1024;
/** Sweep probes in flight at once: few, so that a new Service's pre-use probe waits behind at most a few frames. */
const SWEEP_CONCURRENCY = 2;
/** How often the Services are scanned for an L2Healthy condition nobody maintains any more. */
const STALE_SCAN_MS = 1000;

export interface CheckerView {
  plan: SpeakerPlan;
  live: ReadonlySet<string>;
  /** Address → the other live node whose Lease says it answers it. */
  answeredByOthers: ReadonlyMap<string, string>;
  /** What this node's announcer answers now. */
  answering: ReadonlySet<string>;
  /** What each speaker published about its interfaces (who has an interface on an address's subnet). */
  published: ReadonlyMap<string, readonly PublishedInterface[]>;
  /** Every speaker's published MAC → its node. */
  macOwners: ReadonlyMap<string, string>;
  /**
   * Whether every live speaker published its MACs: while one does not (an older version, mid-upgrade), an unknown MAC
   * may be a speaker, so nothing is concluded from one.
   */
  macsComplete: boolean;
}

export interface CheckerOptions {
  node: string;
  client: KubeClient;
  events: EventSink;
  log: Logger;
  prober: Prober;
  services: Store<Service>;
  pools: Store<IPAddressPool>;
  statuses: { list(): ServiceL2Status[] };
  /** 0 turns the self-check off. */
  selfCheckIntervalMs: number;
  /** Undefined turns conflict detection off. */
  conflictProbe: ProbeShape | undefined;
  /** The Services this installation's speakers handle (a stale L2Healthy of another class is not ours to remove). */
  classes: ClassFilter;
  view: () => CheckerView;
  /** Something the election reads changed (an address cleared or found in conflict). */
  onChange: () => void;
}

type PreUse = { state: 'probing' } | { state: 'clear' } | { state: 'busy'; until: number } | { state: 'conflict'; foreign: string[]; at: number };

export class L2Checker {
  private readonly preUse = new Map<string, PreUse>();
  private readonly filter = new OutcomeFilter();
  /** Address → when it is next probed by the self-check. */
  private readonly due = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  /** Service key → the L2Healthy draft last written, and when (the cache may lag behind the write). */
  private readonly written = new Map<string, { text: string; at: number }>();
  private readonly rechecked = new Map<string, number>();
  /** Pool name → the generation swept (or being swept). */
  private readonly swept = new Map<string, number>();
  private staleScannedAt = 0;
  /** nodesOnSubnet's memory: addresses → nodes, for the published interfaces `from`. */
  private subnets: { from?: CheckerView['published']; nodes: Map<string, string[]> } = { nodes: new Map() };
  /** Services whose stale L2Healthy condition is being removed. */
  private readonly clearing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly outcomes;

  constructor(private readonly o: CheckerOptions) {
    const meter = telemetry().meter;
    this.outcomes = meter.createCounter('switchboard_speaker_l2_checks', { description: 'Self-check probes of announced addresses, by outcome' });
    meter.createObservableGauge('switchboard_speaker_l2_check_status', { description: '1 per address this node self-checks, labelled with its confirmed outcome' }).addCallback((r) => {
      for (const address of this.due.keys()) {
        const c = this.filter.confirmed(address);
        if (c) r.observe(1, { ip: address, outcome: c.outcome });
      }
    });
    meter.createObservableGauge('switchboard_speaker_address_conflicts', { description: 'Addresses this node won but found answered by another host before first use' }).addCallback((r) => {
      let n = 0;
      for (const p of this.preUse.values()) if (p.state === 'conflict') n++;
      r.observe(n);
    });
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- conflict detection before first use ---------------------------------------------------------------------

  /**
   * Of the addresses this node won, those it may answer now: announced before by anyone, or probed silent. Starts
   * the probe of the others.
   */
  gate(won: Iterable<string>, answering: ReadonlySet<string>): Set<string> {
    const allowed = new Set<string>();
    const shape = this.o.conflictProbe;
    let announced: Set<string> | undefined;
    const now = Date.now();
    for (const address of won) {
      if (!shape || answering.has(address)) {
        allowed.add(address);
        continue;
      }
      announced ??= this.announcedBefore();
      const p = this.preUse.get(address);
      if (announced.has(address) || p?.state === 'clear') {
        allowed.add(address);
        this.preUse.set(address, { state: 'clear' });
        continue;
      }
      const expired = p === undefined || (p.state === 'busy' && p.until <= now) || (p.state === 'conflict' && p.at + CONFLICT_RECHECK_MS <= now);
      if (expired && this.o.prober.canProbe(address)) void this.probeBeforeUse(address, shape);
      else if (expired) allowed.add(address); // no interface can reach its subnet: the announcer will not answer it either
    }
    return allowed;
  }

  /** The first address of `addresses` found in conflict, with the MACs that hold it. */
  conflictOf(addresses: readonly string[]): { address: string; foreign: string[] } | undefined {
    for (const address of addresses) {
      const p = this.preUse.get(address);
      if (p?.state === 'conflict') return { address, foreign: p.foreign };
    }
    return undefined;
  }

  /** Forgets addresses this node no longer wins. */
  retain(won: ReadonlySet<string>): void {
    for (const [address, p] of this.preUse) if (!won.has(address) && p.state !== 'probing') this.preUse.delete(address);
  }

  /** Addresses some ServiceL2Status says a node announces: a node answered them once, so they are not new. */
  private announcedBefore(): Set<string> {
    const out = new Set<string>();
    for (const s of this.o.statuses.list()) if (s.status?.node) for (const a of s.status.addresses ?? []) out.add(a);
    return out;
  }

  private async probeBeforeUse(address: string, shape: ProbeShape): Promise<void> {
    this.preUse.set(address, { state: 'probing' });
    try {
      const answers = await this.o.prober.probe(address, shape, 'conflict');
      const view = this.o.view();
      const verdict = preUseVerdict(answers ?? new Set(), view.macOwners);
      if (verdict.kind === 'conflict' && !view.macsComplete) {
        this.o.log.info('an unknown MAC answers an address this node is about to announce, and some speaker publishes no MAC; probing again', { address, macs: verdict.foreign });
        this.preUse.set(address, { state: 'busy', until: Date.now() + BUSY_RETRY_MS });
        setTimeout(() => this.o.onChange(), BUSY_RETRY_MS).unref();
      } else if (verdict.kind === 'clear') {
        this.preUse.set(address, { state: 'clear' });
      } else if (verdict.kind === 'busy') {
        this.o.log.info('a speaker still answers an address this node is about to announce; probing again', { address, nodes: verdict.nodes });
        this.preUse.set(address, { state: 'busy', until: Date.now() + BUSY_RETRY_MS });
        setTimeout(() => this.o.onChange(), BUSY_RETRY_MS).unref();
      } else {
        this.preUse.set(address, { state: 'conflict', foreign: verdict.foreign, at: Date.now() });
        this.o.log.warn('address in use on the LAN: not announcing it', { address, macs: verdict.foreign });
        this.reportConflict(address, verdict.foreign);
        await this.recordConflict(address, { address, macs: verdict.foreign, node: this.o.node, lastSeen: rfc3339(new Date()) });
      }
    } catch (err) {
      this.o.log.warn('conflict probe failed', { address, error: String(err) });
      this.preUse.set(address, { state: 'busy', until: Date.now() + BUSY_RETRY_MS });
    }
    this.o.onChange();
  }

  private reportConflict(address: string, foreign: string[]): void {
    const plan = [...this.o.view().plan.services.values()].find((p) => p.addresses.includes(address));
    if (!plan) return;
    const pool = this.poolOf(address);
    this.o.events.event(
      involvedObjectOf(plan.service, SERVICE_REF),
      'Warning',
      'AddressConflict',
      `${foreign.join(', ')} already answers for ${address} on the LAN (probe from node ${JSON.stringify(this.o.node)} before first use): not announced${pool ? `; IPAddressPool ${JSON.stringify(pool)} records it and the Service gets another address` : ''}`,
    );
  }

  private poolOf(address: string): string | undefined {
    const ip = parseIPStrict(address);
    return ip ? locateAddress(parsePools(this.o.pools.list()).pools, ip)?.pool.name : undefined;
  }

  /** Sets (or with undefined removes) `address` in its pool's status.conflicts, read-modify-write on resourceVersion. */
  private async recordConflict(address: string, entry: AddressConflict | undefined): Promise<void> {
    const name = this.poolOf(address);
    if (!name) return;
    for (let attempt = 0; attempt < 5; attempt++) {
      const pool = await this.o.client.getOrUndefined<IPAddressPool>(IPAddressPools, name);
      if (!pool) return;
      const before = pool.status?.conflicts ?? [];
      const known = before.find((c) => c.address === address);
      // Only a change is written: a recheck that finds the same holders leaves the pool alone.
      if (entry ? JSON.stringify(known?.macs) === JSON.stringify(entry.macs) : !known) return;
      const conflicts = withConflict(before, address, entry);
      const patch = { metadata: { resourceVersion: pool.metadata.resourceVersion }, status: { conflicts, addressesInConflict: conflicts.length } };
      try {
        await this.o.client.patch(IPAddressPools, name, patch, 'merge', { subresource: 'status' });
        this.o.log.info(entry ? 'recorded an address conflict' : 'address no longer in conflict', { pool: name, address, macs: entry?.macs });
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
  }

  /** The pool's deputy probes its recorded conflicts again and removes those nobody answers any more. */
  private recheckConflicts(now: number, view: CheckerView): void {
    const shape = this.o.conflictProbe;
    if (!shape) return;
    for (const pool of this.o.pools.list()) {
      const name = pool.metadata.name ?? '';
      if (deputyFor(`pool/${name}`, view.live) !== this.o.node) continue;
      for (const c of pool.status?.conflicts ?? []) {
        const key = `${name}/${c.address}`;
        if ((this.rechecked.get(key) ?? 0) + CONFLICT_RECHECK_MS > now || this.inFlight.has(c.address) || !this.o.prober.canProbe(c.address)) continue;
        this.rechecked.set(key, now);
        this.inFlight.add(c.address);
        void (async () => {
          try {
            const answers = await this.o.prober.probe(c.address, shape, 'conflict');
            const verdict = preUseVerdict(answers ?? new Set(), view.macOwners);
            if (!view.macsComplete) return;
            if (verdict.kind === 'clear') await this.recordConflict(c.address, undefined);
            else if (verdict.kind === 'conflict') await this.recordConflict(c.address, { ...c, macs: verdict.foreign, node: this.o.node, lastSeen: rfc3339(new Date()) });
          } catch (err) {
            this.o.log.warn('conflict recheck failed', { address: c.address, error: String(err) });
          } finally {
            this.inFlight.delete(c.address);
          }
        })();
      }
    }
  }

  /** The pool's deputy probes the free addresses of a pool it has not swept at this generation. */
  private sweepPools(view: CheckerView): void {
    const shape = this.o.conflictProbe;
    if (!shape) return;
    const pools = this.o.pools.list();
    const parsed = parsePools(pools).pools;
    let inUse: Set<string> | undefined;
    for (const pool of pools) {
      const name = pool.metadata.name ?? '';
      const generation = pool.metadata.generation ?? 0;
      const lb = parsed.find((p) => p.name === name);
      if (!lb || this.swept.get(name) === generation || deputyFor(`pool/${name}`, view.live) !== this.o.node) continue;
      this.swept.set(name, generation);
      inUse ??= new Set([...view.plan.services.values()].flatMap((p) => p.addresses));
      const recorded = new Set((pool.status?.conflicts ?? []).map((c) => c.address));
      const free: string[] = [];
      for (const entry of lb.entries) {
        for (let v = entry.range.first; v <= entry.range.last && free.length < POOL_SWEEP_LIMIT; v++) {
          const address = formatIP({ family: entry.range.family, value: v });
          if (exclusionOf(lb, entry, v) === undefined && !inUse.has(address) && !recorded.has(address) && this.o.prober.canProbe(address)) free.push(address);
        }
      }
      if (free.length > 0) void this.sweep(name, free, shape);
    }
  }

  private async sweep(pool: string, addresses: string[], shape: ProbeShape): Promise<void> {
    this.o.log.info('probing the free addresses of a new or changed pool', { pool, addresses: addresses.length });
    const queue = [...addresses];
    let found = 0;
    const worker = async () => {
      for (let address = queue.shift(); address !== undefined && this.timer; address = queue.shift()) {
        try {
          const answers = await this.o.prober.probe(address, shape, 'conflict');
          const view = this.o.view();
          const verdict = preUseVerdict(answers ?? new Set(), view.macOwners);
          if (verdict.kind !== 'conflict' || !view.macsComplete) continue;
          found++;
          await this.recordConflict(address, { address, macs: verdict.foreign, node: this.o.node, lastSeen: rfc3339(new Date()) });
        } catch (err) {
          this.o.log.warn('pool probe failed', { pool, address, error: String(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: SWEEP_CONCURRENCY }, worker));
    this.o.log.info('probed the free addresses of a pool', { pool, addresses: addresses.length, inConflict: found });
  }

  // ---- self-check ------------------------------------------------------------------------------------------------

  /** The node that self-checks `plan` (l2-check.ts proberFor). */
  private proberOf(plan: ServicePlan, view: CheckerView): string | undefined {
    return proberFor(plan, view.live, () => this.nodesOnSubnet(plan.addresses, view));
  }

  /**
   * Nodes with an interface on the subnet of one of `addresses`, remembered until the speakers publish other
   * interfaces: asked every tick for each Service only its winner may announce, and the answer rarely changes.
   */
  private nodesOnSubnet(addresses: readonly string[], view: CheckerView): string[] {
    // Other interfaces (SpeakerLiveness.published() is a new map only then), or entries of Services long gone piling
    // up: start afresh.
    if (view.published !== this.subnets.from || this.subnets.nodes.size > 2 * view.plan.services.size + 16) {
      this.subnets = { from: view.published, nodes: new Map() };
    }
    const key = addresses.join(',');
    let nodes = this.subnets.nodes.get(key);
    if (!nodes) {
      nodes = [...ableInterfaces(view.published, addresses)].filter(([, able]) => able.size > 0).map(([node]) => node);
      this.subnets.nodes.set(key, nodes);
    }
    return nodes;
  }

  /** The node that answers `address` as far as this node can tell: another's Lease, or its own announcer. */
  private holder(address: string, view: CheckerView): string | undefined {
    return view.answeredByOthers.get(address) ?? (view.answering.has(address) ? this.o.node : undefined);
  }

  private tick(): void {
    const now = Date.now();
    const view = this.o.view();
    this.recheckConflicts(now, view);
    this.sweepPools(view);
    if (now - this.staleScannedAt >= STALE_SCAN_MS) {
      this.staleScannedAt = now;
      this.clearStaleHealth(view);
    }
    if (this.o.selfCheckIntervalMs <= 0) return;
    const mine = new Map<string, { key: string; expected: string | undefined }>();
    for (const plan of view.plan.services.values()) {
      if (this.proberOf(plan, view) !== this.o.node) continue;
      const expected = plan.result.winner;
      for (const address of plan.addresses) {
        // Only while the Leases agree with the election: a handover in flight would read as a wrong answer.
        if (this.holder(address, view) !== expected) continue;
        mine.set(address, { key: plan.key, expected });
      }
    }
    for (const address of this.due.keys()) if (!mine.has(address)) this.due.delete(address);
    this.filter.retain(new Set(mine.keys()));
    for (const [address, { key, expected }] of mine) {
      const due = this.due.get(address) ?? now;
      if (due > now || this.inFlight.has(address) || this.inFlight.size >= MAX_IN_FLIGHT) continue;
      this.due.set(address, now + this.o.selfCheckIntervalMs);
      this.inFlight.add(address);
      void this.selfCheck(address, key, expected).finally(() => this.inFlight.delete(address));
    }
  }

  private async selfCheck(address: string, key: string, expected: string | undefined): Promise<void> {
    try {
      const answers = await this.o.prober.probe(address, SELF_CHECK_PROBE, 'self-check');
      if (!answers) return;
      const view = this.o.view();
      const plan = view.plan.services.get(key);
      // The world moved while probing: this answer says nothing about the new state.
      if (!plan || plan.result.winner !== expected || this.holder(address, view) !== expected || this.proberOf(plan, view) !== this.o.node) return;
      if (!view.macsComplete) return;
      // The winner probing its own address (no other node on the subnet) never hears its own answer: it stands in.
      const own = expected === this.o.node ? (view.published.get(this.o.node) ?? []).flatMap((i) => (i.mac ? [i.mac.toLowerCase()] : [])) : [];
      const check = classify(address, new Set([...answers, ...own]), expected, view.macOwners);
      this.outcomes.add(1, { outcome: check.outcome });
      const before = this.filter.confirmed(address);
      const confirmed = this.filter.record(check);
      if (!confirmed || confirmed === before) return;
      const checks = plan.addresses.map((a) => this.filter.confirmed(a)).filter((c): c is AddressCheck => c !== undefined);
      if (checks.length < plan.addresses.length) return;
      await this.writeHealth(key, plan.service, checks);
    } catch (err) {
      this.o.log.warn('self-check failed', { address, error: String(err) });
    }
  }

  /**
   * A Service that left the speakers' care (no longer type LoadBalancer, no ingress left; staleHealthKeys says which)
   * keeps the L2Healthy condition its last prober wrote, saying something about an address it no longer has: its
   * deputy removes it, that one condition only (a strategic-merge delete by the list's merge key, as writeHealth sets
   * it), as the allocation controller removes its own (controllers/loadbalancer/service-status.ts releaseWriteFor).
   * The Service's other statement of the speakers, the ServiceL2Status and its Announced condition, the deputy deletes
   * in speaker.ts. A Service still in the plan keeps its condition: its prober maintains it (NoAnswer when nobody may
   * announce it).
   */
  private clearStaleHealth(view: CheckerView): void {
    for (const key of staleHealthKeys(this.o.services.list(), new Set(view.plan.services.keys()), view.live, this.o.node, this.o.classes)) {
      const svc = this.o.services.get(key);
      if (!svc || this.clearing.has(key)) continue;
      this.clearing.add(key);
      this.written.delete(key);
      const patch = { status: { conditions: [{ type: L2_HEALTHY, $patch: 'delete' }] } };
      void this.o.client
        .patch(Services, svc.metadata?.name ?? '', patch, 'strategic', { namespace: svc.metadata?.namespace, subresource: 'status' })
        .then(
          () => this.o.log.info('removed the L2Healthy condition of a Service the speakers no longer announce', { service: key }),
          (err: unknown) => {
            if (!isNotFound(err)) this.o.log.warn('could not remove a stale L2Healthy condition', { service: key, error: String(err) });
          },
        )
        .finally(() => this.clearing.delete(key));
    }
  }

  /** Writes the Service's L2Healthy condition when it says something new (strategic merge: only that condition). */
  private async writeHealth(key: string, cached: Service, checks: AddressCheck[]): Promise<void> {
    const draft = l2HealthyCondition(checks);
    const svc = this.o.services.get(key) ?? cached;
    const conditions = (svc.status?.conditions ?? []) as Condition[];
    const text = JSON.stringify(draft);
    const last = this.written.get(key);
    if (conditionSays(conditions, draft) || (last?.text === text && Date.now() - last.at < 10_000)) return;
    const condition = setCondition(conditions, draft, new Date(), svc.metadata?.generation).find((c) => c.type === L2_HEALTHY);
    await this.o.client.patch(Services, svc.metadata?.name ?? '', { status: { conditions: [condition] } }, 'strategic', { namespace: svc.metadata?.namespace, subresource: 'status' });
    this.written.set(key, { text, at: Date.now() });
    this.o.log.info('recorded L2 health', { service: key, reason: draft.reason, message: draft.message });
    if (draft.reason === 'ForeignResponder' || draft.reason === 'MultipleResponders') {
      this.o.events.event(involvedObjectOf(svc, SERVICE_REF), 'Warning', draft.reason, draft.message);
    }
  }
}
