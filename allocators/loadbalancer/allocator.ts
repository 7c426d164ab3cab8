// The LoadBalancer address allocator: a pure function from (pools, Services, current assignments, free-time record)
// to the address(es) every Service should hold, with a reason for every Service left pending.
//
// Semantics follow MetalLB (requested IPs, address-pool, sharing keys, dual-stack from one pool, pool shrink moves
// Services) with these differences on purpose:
// - Sticky: current assignments are inputs and are placed before any pending Service is considered, so a restart or
//   a pending Service never takes an address that is held (MetalLB #1774, #2443).
// - A freed address is not handed to the next Service at once: never-used addresses go first (lowest first), then
//   freed ones, least recently freed first (MetalLB #686, #2723). The free-time record is an input and an output.
// - Pool order is deterministic (comparePools); MetalLB iterates a Go map.
// - `disabled` pools drain: holders keep their addresses, nobody gets a new one.
// - A Service with a sharing key prefers an address already used under that key (MetalLB may or may not co-locate).
import type { Service } from '../../api/wire.js';
import { canonicalIPStrict, formatIP, parseIPStrict, type IPAddress, type IPFamily } from '../../api/ip.js';
import { exclusionOf, locateAddress, poolRefusal, type LBPool, type PoolEntry } from './pools.js';
import {
  ANNOTATION_ALLOCATED_FROM_POOL,
  familiesFit,
  isHandledClass,
  isLoadBalancer,
  overlappingPorts,
  quoteIPs,
  readServiceRequest,
  serviceKey,
  type RequestProblem,
  type ServicePort,
  type ServiceRequest,
} from './service-request.js';

export type AllocationOutcome = 'assigned' | 'pending' | 'released';

/** Condition reasons (CamelCase, for the Service's status condition). */
export type AllocationReason =
  | 'Allocated'
  | 'NotLoadBalancer'
  | 'ServiceDeleted'
  | 'NoClusterIP'
  | 'DualStackUnavailable'
  | 'InvalidRequest'
  | 'FamilyMismatch'
  | 'NoPoolMatches'
  | 'PoolExhausted'
  | 'PoolNotFound'
  | 'PoolDisabled'
  | 'PoolNotCompatible'
  | 'RequestedIPNotInPool'
  | 'RequestedPoolMismatch'
  | 'SharingConflict'
  | 'AddressConflict';

export interface AllocationEvent {
  type: 'Normal' | 'Warning';
  /** MetalLB's event reasons: IPAllocated, AllocationFailed, ClearAssignment, LoadBalancerFailed, … */
  reason: string;
  message: string;
}

export interface ServiceAllocation {
  key: string;
  outcome: AllocationOutcome;
  reason: AllocationReason;
  message: string;
  /** The addresses for status.loadBalancer.ingress, IPv4 first; empty unless assigned. */
  ips: string[];
  /** For the ip-allocated-from-pool annotation. */
  pool?: string;
  /** The addresses or pool differ from the current assignment (status and annotation need writing). */
  changed: boolean;
  /** Events to record on the Service. */
  events: AllocationEvent[];
}

export interface AllocatorInput {
  /** ParsedPools.pools: valid pools, in allocation order. */
  pools: readonly LBPool[];
  services: readonly Service[];
  /** Service key → addresses held (from the last result, or assignmentsFromServices after a restart). */
  current: ReadonlyMap<string, readonly string[]>;
  /** Address → when it was freed (ms); omitted means no record. */
  freedAt?: ReadonlyMap<string, number>;
  now: number;
  /** Our loadBalancerClass. */
  loadBalancerClass?: string;
  /** Also handle Services without a class (default true). */
  handleUnsetClass?: boolean;
  /**
   * Addresses another host on the LAN answered for before a speaker first announced them (the pools'
   * status.conflicts), with why: never handed out, and a Service holding one is moved (it was never announced).
   */
  conflicts?: ReadonlyMap<string, string>;
  /** Bound on the free-time record; the oldest records go first (they would be reused first anyway). */
  freedRecordLimit?: number;
}

export interface AllocatorResult {
  /** Services with something to do or report; Services of another class and non-LB Services holding nothing are absent. */
  services: Map<string, ServiceAllocation>;
  /** The next `current`. */
  assignments: Map<string, string[]>;
  /** The next `freedAt`. */
  freedAt: Map<string, number>;
  /** Pool name → distinct addresses in use, for poolCounters. */
  usage: Map<string, IPAddress[]>;
}

interface AddressUse {
  address: IPAddress;
  pool: string;
  sharingKey: string;
  backendKey: string;
  /** Service key → its ports. */
  services: Map<string, readonly ServicePort[]>;
}

interface Failure {
  reason: AllocationReason;
  message: string;
}

const DEFAULT_FREED_RECORD_LIMIT = 4096;
const byFamily = (ips: IPAddress[]): IPAddress[] => [...ips].sort((a, b) => (a.family === b.family ? 0 : a.family === 'IPv4' ? -1 : 1));
const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
const olderFirst = (a: ServiceRequest, b: ServiceRequest): number =>
  a.creationTimestamp < b.creationTimestamp ? -1 : a.creationTimestamp > b.creationTimestamp ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;

/** The addresses and pools in use during one allocation pass. */
class Usage {
  readonly uses = new Map<string, AddressUse>();
  readonly byService = new Map<string, { ips: IPAddress[]; pool: LBPool }>();
  private readonly used: Record<IPFamily, Set<bigint>> = { IPv4: new Set(), IPv6: new Set() };
  private readonly bySharingKey = new Map<string, Set<string>>();
  /** Per entry, every lower address is used, freed or excluded (usage only grows while fresh addresses are taken). */
  private readonly cursors = new Map<PoolEntry, bigint>();
  private readonly freed: Record<IPFamily, Set<bigint>> = { IPv4: new Set(), IPv6: new Set() };
  private readonly freedOrder: { address: IPAddress; at: number }[];
  private readonly conflicted: Record<IPFamily, Set<bigint>> = { IPv4: new Set(), IPv6: new Set() };

  constructor(
    freedAt: ReadonlyMap<string, number>,
    readonly conflicts: ReadonlyMap<string, string> = new Map(),
  ) {
    for (const text of conflicts.keys()) {
      const address = parseIPStrict(text);
      if (address) this.conflicted[address.family].add(address.value);
    }
    this.freedOrder = [...freedAt]
      .flatMap(([text, at]) => {
        const address = parseIPStrict(text);
        return address ? [{ address, at }] : [];
      })
      .sort((a, b) => a.at - b.at || (a.address.value < b.address.value ? -1 : 1));
    for (const f of this.freedOrder) this.freed[f.address.family].add(f.address.value);
  }

  /** Why `req` may not use `address`, or undefined when it is free or shareable. */
  conflict(req: ServiceRequest, address: IPAddress): string | undefined {
    const text = formatIP(address);
    const use = this.uses.get(text);
    const others = use ? [...use.services.keys()].filter((k) => k !== req.key) : [];
    if (!use || others.length === 0) return undefined;
    const holders = others.join(', ');
    if (use.sharingKey === '') return `address ${text} is in use by ${holders}, which does not allow sharing`;
    if (req.sharingKey === '') return `address ${text} is in use by ${holders}; this Service does not allow sharing (no allow-shared-ip annotation)`;
    if (use.sharingKey !== req.sharingKey) {
      return `address ${text} is in use by ${holders} with sharing key ${JSON.stringify(use.sharingKey)}, not ${JSON.stringify(req.sharingKey)}`;
    }
    if (use.backendKey !== req.backendKey) {
      return `address ${text} is in use by ${holders} with other backends (Services with externalTrafficPolicy Local share an address only with the same selector)`;
    }
    for (const other of others) {
      const clash = overlappingPorts(req.ports, use.services.get(other) ?? []);
      if (clash.length > 0) return `port ${clash[0].protocol}/${clash[0].port} is already in use on ${JSON.stringify(text)} by ${other}`;
    }
    return undefined;
  }

  assign(req: ServiceRequest, ips: IPAddress[], pool: LBPool): void {
    this.byService.set(req.key, { ips, pool });
    for (const address of ips) {
      const text = formatIP(address);
      let use = this.uses.get(text);
      if (!use) {
        use = { address, pool: pool.name, sharingKey: req.sharingKey, backendKey: req.backendKey, services: new Map() };
        this.uses.set(text, use);
        this.used[address.family].add(address.value);
      }
      use.services.set(req.key, req.ports);
      if (req.sharingKey !== '') {
        const set = this.bySharingKey.get(req.sharingKey) ?? new Set<string>();
        set.add(text);
        this.bySharingKey.set(req.sharingKey, set);
      }
    }
  }

  /** An address of `family` in `pool` for `req`: shared under its key, else never used, else least recently freed. */
  pick(req: ServiceRequest, pool: LBPool, family: IPFamily): IPAddress | undefined {
    return this.pickShared(req, pool, family) ?? this.pickFresh(pool, family) ?? this.pickFreed(pool, family);
  }

  private pickShared(req: ServiceRequest, pool: LBPool, family: IPFamily): IPAddress | undefined {
    let best: IPAddress | undefined;
    for (const text of this.bySharingKey.get(req.sharingKey) ?? []) {
      const use = this.uses.get(text);
      if (!use || use.pool !== pool.name || use.address.family !== family || this.conflict(req, use.address)) continue;
      if (!best || use.address.value < best.value) best = use.address;
    }
    return best;
  }

  private pickFresh(pool: LBPool, family: IPFamily): IPAddress | undefined {
    for (const entry of pool.entries) {
      if (entry.range.family !== family) continue;
      let v = this.cursors.get(entry) ?? entry.range.first;
      while (v <= entry.range.last && (this.used[family].has(v) || this.freed[family].has(v) || this.conflicted[family].has(v) || exclusionOf(pool, entry, v) !== undefined)) v++;
      this.cursors.set(entry, v);
      if (v <= entry.range.last) return { family, value: v };
    }
    return undefined;
  }

  private pickFreed(pool: LBPool, family: IPFamily): IPAddress | undefined {
    // Drops records of addresses in use while scanning: usage only grows once fresh addresses are being taken.
    let kept = 0;
    let found: IPAddress | undefined;
    for (const record of this.freedOrder) {
      const { address } = record;
      if (this.used[address.family].has(address.value)) continue;
      this.freedOrder[kept++] = record;
      if (found || address.family !== family || this.conflicted[family].has(address.value)) continue;
      const at = locateAddress([pool], address);
      if (at && at.exclusion === undefined) found = address;
    }
    this.freedOrder.length = kept;
    return found;
  }
}

function makeAllocation(key: string, o: Partial<ServiceAllocation> & Pick<ServiceAllocation, 'outcome' | 'reason' | 'message'>): ServiceAllocation {
  return { key, ips: [], changed: false, events: [], ...o };
}

const assigned = (key: string, ips: string[], pool: string, events: AllocationEvent[]): ServiceAllocation =>
  makeAllocation(key, { outcome: 'assigned', reason: 'Allocated', message: `Assigned IP ${quoteIPs(ips)} from pool "${pool}"`, ips, pool, events });

const problemEvent = (p: RequestProblem): AllocationEvent => ({ type: 'Warning', reason: p.eventReason, message: p.message });

const allocationFailed = (req: ServiceRequest, f: Failure): AllocationEvent => ({
  type: 'Warning',
  reason: 'AllocationFailed',
  message: `Failed to allocate IP for ${JSON.stringify(req.key)}: ${f.message}`,
});

class Pass {
  readonly usage: Usage;
  readonly results = new Map<string, ServiceAllocation>();

  constructor(
    private readonly input: AllocatorInput,
    private readonly requests: Map<string, ServiceRequest>,
  ) {
    // Addresses held now count as freed now: those not kept in this pass go to the back of the reuse order.
    const freedAt = new Map(input.freedAt ?? []);
    for (const ips of input.current.values()) for (const ip of ips) if (!freedAt.has(ip)) freedAt.set(ip, input.now);
    this.usage = new Usage(freedAt, input.conflicts);
  }

  /** Why one of `ips` may not be used: another host holds it. */
  private conflictOf(ips: IPAddress[]): string | undefined {
    for (const a of ips) {
      const why = this.usage.conflicts.get(formatIP(a));
      if (why) return why;
    }
    return undefined;
  }

  /** The one pool that hands out every address of `ips`, or why there is none. */
  private poolOf(ips: IPAddress[], what: string): LBPool | string {
    let pool: LBPool | undefined;
    for (const a of ips) {
      const at = locateAddress(this.input.pools, a);
      if (!at) return `${what} ${formatIP(a)} is not in any IPAddressPool`;
      if (at.exclusion) return `${what} ${formatIP(a)} is not handed out by IPAddressPool "${at.pool.name}": ${at.exclusion}`;
      if (pool && pool !== at.pool) return `${what}s ${quoteIPs(ips)} are not in one IPAddressPool`;
      pool = at.pool;
    }
    return pool ?? `no ${what} given`;
  }

  private sharingProblem(req: ServiceRequest, ips: IPAddress[]): string | undefined {
    for (const a of ips) {
      const conflict = this.usage.conflict(req, a);
      if (conflict) return conflict;
    }
    return undefined;
  }

  /** Keeps a current assignment when the config still allows it; returns false when the Service must start over. */
  keep(req: ServiceRequest, held: IPAddress[], events: AllocationEvent[]): boolean {
    // The user asked for other addresses: start over quietly, the new assignment explains itself.
    if (req.requestedIPs && !req.problem && !sameSet(req.requestedIPs.map(formatIP), held.map(formatIP))) return false;
    const pool = this.poolOf(held, 'IP');
    if (typeof pool !== 'string' && req.requestedPool && pool.name !== req.requestedPool) return false;
    const problem = !familiesFit(held.map((a) => a.family), req)
      ? `the IP family of ${quoteIPs(held)} does not match the Service (${req.families.join(', ') || 'unknown'})`
      : typeof pool === 'string'
        ? pool
        : (poolRefusal(pool, req.namespace, req.labels) ?? this.conflictOf(held) ?? this.sharingProblem(req, held));
    if (problem || typeof pool === 'string') {
      events.push({
        type: 'Normal',
        reason: 'ClearAssignment',
        message: `current IP for ${JSON.stringify(req.key)} not allowed by config, will attempt for new IP assignment: ${problem}`,
      });
      return false;
    }
    this.usage.assign(req, byFamily(held), pool);
    return true;
  }

  /** PreferDualStack Services holding one family try to add the other from the same pool. */
  addMissingFamily(req: ServiceRequest, result: ServiceAllocation): void {
    const held = this.usage.byService.get(req.key);
    const missing = req.families.find((f) => f !== held?.ips[0].family);
    if (!held || !missing || !req.partialOK || held.ips.length !== 1 || req.requestedIPs) return;
    const extra = held.pool.families.has(missing) && !held.pool.disabled ? this.usage.pick(req, held.pool, missing) : undefined;
    if (!extra) {
      result.events.push({
        type: 'Normal',
        reason: 'AdditionalAssignFailed',
        message: `cannot assign additional IP in PreferDualStack: no available ${missing} IPs in pool ${JSON.stringify(held.pool.name)}${held.pool.disabled ? ' (disabled)' : ''}`,
      });
      return;
    }
    const ips = byFamily([...held.ips, extra]);
    this.usage.assign(req, ips, held.pool);
    result.ips = ips.map(formatIP);
    result.message = `Assigned IP ${quoteIPs(result.ips)} from pool "${held.pool.name}"`;
    result.events.push({ type: 'Normal', reason: 'IPAllocated', message: `Assigned additional IP ${JSON.stringify(formatIP(extra))}` });
  }

  private takeRequested(req: ServiceRequest, ips: IPAddress[]): LBPool | Failure {
    const pool = this.poolOf(ips, 'requested IP');
    if (typeof pool === 'string') return { reason: 'RequestedIPNotInPool', message: pool };
    if (req.requestedPool && req.requestedPool !== pool.name) {
      return {
        reason: 'RequestedPoolMismatch',
        message: `requested loadBalancer IP(s) ${quoteIPs(ips)} is not compatible with requested address pool ${req.requestedPool}`,
      };
    }
    const refusal = poolRefusal(pool, req.namespace, req.labels);
    if (refusal) return { reason: 'PoolNotCompatible', message: refusal };
    if (pool.disabled) return { reason: 'PoolDisabled', message: `IPAddressPool "${pool.name}" is disabled (draining): no new allocations` };
    const taken = this.conflictOf(ips);
    if (taken) return { reason: 'AddressConflict', message: taken };
    const conflict = this.sharingProblem(req, ips);
    if (conflict) return { reason: 'SharingConflict', message: conflict };
    this.usage.assign(req, byFamily(ips), pool);
    return pool;
  }

  /** Addresses from one pool for every wanted family (or what is available, when partialOK). */
  private pickFrom(req: ServiceRequest, pool: LBPool): IPAddress[] {
    return req.families.flatMap((f) => {
      const a = pool.families.has(f) ? this.usage.pick(req, pool, f) : undefined;
      return a ? [a] : [];
    });
  }

  private takeFromPools(req: ServiceRequest, pools: LBPool[]): LBPool | undefined {
    // MetalLB's preference: a pool giving every family, else (PreferDualStack) one giving the first family, else the second.
    let firstFamily: [LBPool, IPAddress[]] | undefined;
    let secondFamily: [LBPool, IPAddress[]] | undefined;
    for (const pool of pools) {
      const ips = this.pickFrom(req, pool);
      if (ips.length === req.families.length) {
        this.usage.assign(req, byFamily(ips), pool);
        return pool;
      }
      if (!req.partialOK || ips.length === 0) continue;
      if (ips[0].family === req.families[0]) firstFamily ??= [pool, ips];
      else secondFamily ??= [pool, ips];
    }
    const chosen = firstFamily ?? secondFamily;
    if (chosen) this.usage.assign(req, chosen[1], chosen[0]);
    return chosen?.[0];
  }

  private takeFromRequestedPool(req: ServiceRequest, name: string): LBPool | Failure {
    const pool = this.input.pools.find((p) => p.name === name);
    if (!pool) return { reason: 'PoolNotFound', message: `unknown pool ${JSON.stringify(name)} (no valid IPAddressPool has that name)` };
    if (pool.disabled) return { reason: 'PoolDisabled', message: `IPAddressPool "${name}" is disabled (draining): no new allocations` };
    const refusal = poolRefusal(pool, req.namespace, req.labels);
    if (refusal) return { reason: 'PoolNotCompatible', message: refusal };
    return this.takeFromPools(req, [pool]) ?? { reason: 'PoolExhausted', message: `no available IPs in pool ${JSON.stringify(name)}` };
  }

  private takeAuto(req: ServiceRequest): LBPool | Failure {
    const refused: string[] = [];
    const candidates = this.input.pools.filter((p) => {
      const why = !p.autoAssign ? `"${p.name}" has autoAssign false` : p.disabled ? `"${p.name}" is disabled` : poolRefusal(p, req.namespace, req.labels);
      if (why) refused.push(why);
      return why === undefined;
    });
    const explain = refused.length > 0 ? ` (${refused.slice(0, 5).join('; ')}${refused.length > 5 ? '; …' : ''})` : '';
    if (candidates.length === 0) {
      return { reason: 'NoPoolMatches', message: `no available IPs: no IPAddressPool may serve this Service${this.input.pools.length === 0 ? ' (there are no valid pools)' : explain}` };
    }
    const needed = req.partialOK ? [] : req.families;
    const fitting = candidates.filter((p) => needed.every((f) => p.families.has(f)) && req.families.some((f) => p.families.has(f)));
    if (fitting.length === 0) {
      const what = req.families.length > 1 && !req.partialOK ? 'both IPv4 and IPv6 addresses (dual-stack addresses come from one pool)' : `${req.families.join(' or ')} addresses`;
      return { reason: 'NoPoolMatches', message: `no available IPs: no IPAddressPool that may serve this Service has ${what}` };
    }
    const pool = this.takeFromPools(req, fitting);
    return pool ?? { reason: 'PoolExhausted', message: `no available IPs in pool${fitting.length > 1 ? 's' : ''} ${fitting.map((p) => JSON.stringify(p.name)).join(', ')}` };
  }

  allocate(req: ServiceRequest, events: AllocationEvent[]): ServiceAllocation {
    const problem = req.problem;
    let taken: LBPool | Failure;
    if (problem) taken = problem;
    else if (req.requestedIPs) taken = this.takeRequested(req, req.requestedIPs);
    else if (req.requestedPool) taken = this.takeFromRequestedPool(req, req.requestedPool);
    else taken = this.takeAuto(req);
    const deprecated = req.deprecatedKeys.map(
      (k): AllocationEvent => ({ type: 'Warning', reason: 'deprecatedAnnotation', message: `annotation ${JSON.stringify(k)} is deprecated, use ${JSON.stringify(k.replace(/^[^/]+\//, 'metallb.io/'))}` }),
    );
    if ('reason' in taken) {
      const event = problem && problem.eventReason !== 'AllocationFailed' ? problemEvent(problem) : allocationFailed(req, taken);
      return makeAllocation(req.key, { outcome: 'pending', reason: taken.reason, message: taken.message, events: [...events, event, ...deprecated] });
    }
    const ips = (this.usage.byService.get(req.key)?.ips ?? []).map(formatIP);
    return assigned(req.key, ips, taken.name, [...events, { type: 'Normal', reason: 'IPAllocated', message: `Assigned IP ${quoteIPs(ips)}` }, ...deprecated]);
  }

  run(): void {
    const { current } = this.input;
    const holders: ServiceRequest[] = [];
    const pending: ServiceRequest[] = [];
    for (const req of this.requests.values()) (current.has(req.key) ? holders : pending).push(req);
    holders.sort(olderFirst);
    pending.sort(olderFirst);

    // 1. Addresses already held, oldest Service first, before anyone else is considered.
    const restart: { req: ServiceRequest; events: AllocationEvent[] }[] = [];
    const kept: ServiceRequest[] = [];
    for (const req of holders) {
      const held = (current.get(req.key) ?? []).flatMap((t) => parseIPStrict(t) ?? []);
      const events: AllocationEvent[] = [];
      if (held.length > 0 && this.keep(req, held, events)) kept.push(req);
      else restart.push({ req, events });
    }
    // 2. PreferDualStack holders missing a family (after every holder is placed, so no held address is taken).
    for (const req of kept) {
      const held = this.usage.byService.get(req.key);
      const result = assigned(req.key, (held?.ips ?? []).map(formatIP), held?.pool.name ?? '', req.problem ? [problemEvent(req.problem)] : []);
      this.addMissingFamily(req, result);
      this.results.set(req.key, result);
    }
    // 3. Services starting over, then new ones.
    for (const { req, events } of restart) this.results.set(req.key, this.allocate(req, events));
    for (const req of pending) this.results.set(req.key, this.allocate(req, []));
  }
}

/**
 * Decides the addresses of every LoadBalancer Service. Pure: same input, same output. Feed `assignments` and
 * `freedAt` of the result back as `current` and `freedAt` of the next call; a Service missing from `services`
 * but present in `current` has been deleted and its addresses are freed.
 */
export function allocate(rawInput: AllocatorInput): AllocatorResult {
  const current = new Map([...rawInput.current].map(([k, ips]) => [k, ips.map(canonicalOrAsWritten)]));
  const input: AllocatorInput = { ...rawInput, current };
  const requests = new Map<string, ServiceRequest>();
  const released = new Map<string, ServiceAllocation>();
  const seen = new Set<string>();
  for (const svc of input.services) {
    const key = serviceKey(svc);
    seen.add(key);
    if (!isHandledClass(svc, input.loadBalancerClass, input.handleUnsetClass)) continue;
    if (isLoadBalancer(svc)) requests.set(key, readServiceRequest(svc));
    else if (input.current.has(key)) {
      released.set(key, makeAllocation(key, { outcome: 'released', reason: 'NotLoadBalancer', message: 'the Service is no longer of type LoadBalancer', changed: true }));
    }
  }
  for (const key of input.current.keys()) {
    if (!seen.has(key)) released.set(key, makeAllocation(key, { outcome: 'released', reason: 'ServiceDeleted', message: 'the Service was deleted', changed: true }));
  }

  const pass = new Pass(input, requests);
  pass.run();

  const assignments = new Map<string, string[]>();
  for (const [key, { ips }] of pass.usage.byService) assignments.set(key, ips.map(formatIP));
  const usage = new Map<string, IPAddress[]>();
  for (const use of pass.usage.uses.values()) {
    const list = usage.get(use.pool);
    if (list) list.push(use.address);
    else usage.set(use.pool, [use.address]);
  }
  for (const r of pass.results.values()) r.changed = !sameSet(current.get(r.key) ?? [], r.ips);

  const freedAt = new Map(input.freedAt ?? []);
  for (const ips of current.values()) {
    for (const text of ips) if (!pass.usage.uses.has(text)) freedAt.set(text, input.now);
  }
  for (const text of pass.usage.uses.keys()) freedAt.delete(text);
  const limit = input.freedRecordLimit ?? DEFAULT_FREED_RECORD_LIMIT;
  if (freedAt.size > limit) {
    const oldest = [...freedAt].sort((a, b) => a[1] - b[1]).slice(0, freedAt.size - limit);
    for (const [text] of oldest) freedAt.delete(text);
  }

  return { services: new Map([...pass.results, ...released]), assignments, freedAt, usage };
}

const canonicalOrAsWritten = (text: string): string => canonicalIPStrict(text) ?? text;

/** The current assignments as recorded in Services (status.loadBalancer.ingress), for the first pass after a start. */
export function assignmentsFromServices(services: readonly Service[], loadBalancerClass?: string, handleUnsetClass = true): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const svc of services) {
    if (!isHandledClass(svc, loadBalancerClass, handleUnsetClass)) continue;
    const ours = isLoadBalancer(svc) || Object.prototype.hasOwnProperty.call(svc.metadata?.annotations ?? {}, ANNOTATION_ALLOCATED_FROM_POOL);
    const ips = (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [canonicalOrAsWritten(i.ip)] : []));
    if (ours && ips.length > 0) out.set(serviceKey(svc), ips);
  }
  return out;
}

export const SERVICE_CONDITION_TYPE = 'switchboard.dev/LoadBalancerIPAllocated';

/** The Service status condition for an allocation (the controller adds lastTransitionTime and observedGeneration). */
export function allocationCondition(a: ServiceAllocation): { type: string; status: 'True' | 'False'; reason: AllocationReason; message: string } {
  return { type: SERVICE_CONDITION_TYPE, status: a.outcome === 'assigned' ? 'True' : 'False', reason: a.reason, message: a.message };
}

/** status.loadBalancer.ingress for an allocation. ipMode VIP by default: the address is on the node, not a proxy. */
export const ingressFor = (a: ServiceAllocation, ipMode: 'VIP' | 'Proxy' = 'VIP'): { ip: string; ipMode: 'VIP' | 'Proxy' }[] =>
  a.ips.map((ip) => ({ ip, ipMode }));
