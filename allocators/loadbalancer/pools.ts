// IPAddressPool parsing and validation, pool precedence, address exclusions and capacity.
// Differences from MetalLB on purpose: a CIDR with host bits set is rejected (MetalLB silently widens it); the
// network and broadcast addresses of a CIDR entry are skipped unless allowNetworkAndBroadcast; pool order is
// deterministic (priority, then name); overlapping pools are a soft error when the webhook was bypassed
// (the older pool keeps its addresses, the newer one is reported invalid) rather than a dead config.
import { PoolConditionDisabled, PoolConditionValid, type IPAddressPool } from '../../crds/ipaddresspool.js';
import type { LabelSelector } from '../../crds/meta.js';
import type { Namespace } from '../../api/wire.js';
import { addressBits, formatIP, type IPAddress, type IPFamily } from '../../api/ip.js';
import { parseCIDR, parseRange, rangeContains, rangesOverlap, rangeSize, type AddressRange } from './addresses.js';
import { aggregateMessage, duplicateEntries, invalid, required, type FieldError } from '../../api/status.js';
import { anySelectorMatches, selectorMatches, validateSelectors, type Labels } from './selector.js';

export interface PoolEntry {
  /** Index in spec.addresses, for field paths. */
  index: number;
  text: string;
  range: AddressRange;
  /** Prefix length when the entry is a CIDR; ranges never lose their first and last address. */
  prefixLength?: number;
}

export interface LBPool {
  name: string;
  labels: Labels;
  autoAssign: boolean;
  avoidBuggyIPs: boolean;
  allowNetworkAndBroadcast: boolean;
  disabled: boolean;
  /** serviceAllocation.priority; 0 when unset. */
  priority: number;
  /** Namespaces allowed by serviceAllocation (list ∪ selected); undefined means every namespace. */
  namespaces?: ReadonlySet<string>;
  serviceSelectors: readonly LabelSelector[];
  hasServiceAllocation: boolean;
  /** In spec.addresses order. */
  entries: readonly PoolEntry[];
  families: ReadonlySet<IPFamily>;
}

export interface ParsedPools {
  /** The usable pools, in allocation order (see comparePools). */
  pools: LBPool[];
  /** Pools left out, with the reasons (for their Valid=False condition). */
  invalid: Map<string, FieldError[]>;
}

const ADDRESSES = 'spec.addresses';

function parseEntry(text: string, index: number): PoolEntry | FieldError {
  const field = `${ADDRESSES}[${index}]`;
  if (text.includes('/')) {
    const cidr = parseCIDR(text.trim());
    return cidr.ok ? { index, text, range: cidr.value.range, prefixLength: cidr.value.length } : invalid(field, text, cidr.detail);
  }
  if (text.includes('-')) {
    const range = parseRange(text);
    return range.ok ? { index, text, range: range.value } : invalid(field, text, range.detail);
  }
  return invalid(field, text, 'must be a CIDR (a single address is written /32 or /128) or a range a-b');
}

function parseEntries(pool: IPAddressPool): { entries: PoolEntry[]; errors: FieldError[] } {
  const entries: PoolEntry[] = [];
  const errors: FieldError[] = [];
  (pool.spec?.addresses ?? []).forEach((text, i) => {
    const e = parseEntry(text, i);
    if ('type' in e) errors.push(e);
    else entries.push(e);
  });
  return { entries, errors };
}

const overlapError = (entry: PoolEntry, other: PoolEntry, otherPool?: string): FieldError =>
  invalid(
    `${ADDRESSES}[${entry.index}]`,
    entry.text,
    otherPool === undefined
      ? `overlaps with ${ADDRESSES}[${other.index}] ${JSON.stringify(other.text)} of the same pool`
      : `overlaps with already defined ${JSON.stringify(other.text)} in IPAddressPool ${JSON.stringify(otherPool)}`,
  );

/** Checks of one pool on its own (what the webhook denies regardless of other pools). */
export function validateIPAddressPool(pool: IPAddressPool): FieldError[] {
  const errors: FieldError[] = [];
  const addresses = pool.spec?.addresses ?? [];
  if (addresses.length === 0) errors.push(required(ADDRESSES, 'pool has no addresses defined'));
  const { entries, errors: entryErrors } = parseEntries(pool);
  errors.push(...entryErrors);
  entries.forEach((e, i) => {
    const earlier = entries.slice(0, i).find((o) => rangesOverlap(o.range, e.range));
    if (earlier) errors.push(overlapError(e, earlier));
  });
  const alloc = pool.spec?.serviceAllocation;
  if (alloc?.priority !== undefined && (!Number.isInteger(alloc.priority) || alloc.priority < 0)) {
    errors.push(invalid('spec.serviceAllocation.priority', alloc.priority, 'must be an integer greater than or equal to 0'));
  }
  errors.push(...duplicateEntries(alloc?.namespaces, 'spec.serviceAllocation.namespaces'));
  errors.push(...validateSelectors(alloc?.namespaceSelectors, 'spec.serviceAllocation.namespaceSelectors'));
  errors.push(...validateSelectors(alloc?.serviceSelectors, 'spec.serviceAllocation.serviceSelectors'));
  return errors;
}

/** Overlaps of `pool` with other pools (the webhook passes every other existing pool). */
export function poolOverlaps(pool: IPAddressPool, others: readonly IPAddressPool[]): FieldError[] {
  const mine = parseEntries(pool).entries;
  const errors: FieldError[] = [];
  for (const other of others) {
    if (other.metadata.name === pool.metadata.name) continue;
    const theirs = parseEntries(other).entries;
    for (const e of mine) {
      const hit = theirs.find((o) => rangesOverlap(o.range, e.range));
      if (hit) errors.push(overlapError(e, hit, other.metadata.name));
    }
  }
  return errors;
}

/** What the webhook denies on create or update: the pool's own errors and overlaps with every other pool. */
export const validateIPAddressPoolChange = (pool: IPAddressPool, existing: readonly IPAddressPool[]): FieldError[] => [
  ...validateIPAddressPool(pool),
  ...poolOverlaps(pool, existing),
];

function allowedNamespaces(pool: IPAddressPool, namespaces: readonly Namespace[]): Set<string> | undefined {
  const alloc = pool.spec.serviceAllocation;
  const listed = alloc?.namespaces ?? [];
  const selectors = alloc?.namespaceSelectors ?? [];
  if (listed.length === 0 && selectors.length === 0) return undefined;
  const out = new Set(listed);
  for (const ns of namespaces) {
    if (ns.metadata?.name && anySelectorMatches(selectors, ns.metadata.labels)) out.add(ns.metadata.name);
  }
  return out;
}

function toLBPool(pool: IPAddressPool, entries: PoolEntry[], namespaces: readonly Namespace[]): LBPool {
  const spec = pool.spec;
  const alloc = spec.serviceAllocation;
  return {
    name: pool.metadata.name ?? '',
    labels: pool.metadata.labels ?? {},
    autoAssign: spec.autoAssign ?? true,
    avoidBuggyIPs: spec.avoidBuggyIPs ?? false,
    allowNetworkAndBroadcast: spec.allowNetworkAndBroadcast ?? false,
    disabled: spec.disabled ?? false,
    priority: alloc?.priority ?? 0,
    namespaces: allowedNamespaces(pool, namespaces),
    serviceSelectors: alloc?.serviceSelectors ?? [],
    hasServiceAllocation: alloc !== undefined,
    entries,
    families: new Set(entries.map((e) => e.range.family)),
  };
}

/**
 * Allocation order: pools with serviceAllocation (MetalLB's "pinned" pools) first, by positive priority ascending
 * with 0/unset after them; then pools without serviceAllocation. Ties are broken by name, so the order never
 * depends on map iteration or informer order.
 */
export function comparePools(a: LBPool, b: LBPool): number {
  const group = (p: LBPool): number => (p.hasServiceAllocation ? 0 : 1);
  const prio = (p: LBPool): number => (p.priority > 0 ? p.priority : Number.POSITIVE_INFINITY);
  return group(a) - group(b) || (prio(a) === prio(b) ? 0 : prio(a) < prio(b) ? -1 : 1) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

const olderFirst = (a: IPAddressPool, b: IPAddressPool): number => {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  const na = a.metadata.name ?? '';
  const nb = b.metadata.name ?? '';
  return ta < tb ? -1 : ta > tb ? 1 : na < nb ? -1 : na > nb ? 1 : 0;
};

/**
 * Turns the pools of the cluster into allocation inputs. Invalid pools are left out with their errors. When two
 * pools overlap (possible only when the webhook was bypassed), the older one (creationTimestamp, then name) is kept.
 * `namespaces` resolves serviceAllocation.namespaceSelectors; re-parse when Namespaces change.
 */
export function parsePools(pools: readonly IPAddressPool[], namespaces: readonly Namespace[] = []): ParsedPools {
  const accepted: { pool: LBPool; name: string }[] = [];
  const invalidPools = new Map<string, FieldError[]>();
  for (const pool of [...pools].sort(olderFirst)) {
    const name = pool.metadata.name ?? '';
    const errors = validateIPAddressPool(pool);
    const { entries } = parseEntries(pool);
    if (errors.length === 0) {
      for (const e of entries) {
        const clash = accepted.find((a) => a.pool.entries.some((o) => rangesOverlap(o.range, e.range)));
        const hit = clash?.pool.entries.find((o) => rangesOverlap(o.range, e.range));
        if (clash && hit) errors.push(overlapError(e, hit, clash.name));
      }
    }
    if (errors.length > 0) invalidPools.set(name, errors);
    else accepted.push({ pool: toLBPool(pool, entries, namespaces), name });
  }
  return { pools: accepted.map((a) => a.pool).sort(comparePools), invalid: invalidPools };
}

/** Why `pool` may not serve a Service in `namespace` with `labels`, or undefined when it may. */
export function poolRefusal(pool: LBPool, namespace: string, labels: Labels | undefined): string | undefined {
  if (pool.namespaces && !pool.namespaces.has(namespace)) {
    return `IPAddressPool "${pool.name}" serves only the namespaces of its serviceAllocation, not "${namespace}"`;
  }
  if (pool.serviceSelectors.length > 0 && !pool.serviceSelectors.some((s) => selectorMatches(s, labels))) {
    return `IPAddressPool "${pool.name}" serves only Services matching its serviceAllocation.serviceSelectors`;
  }
  return undefined;
}

const isBuggy = (family: IPFamily, value: bigint): boolean => family === 'IPv4' && ((value & 0xffn) === 0n || (value & 0xffn) === 0xffn);

/** Why an address inside `entry` is not handed out, or undefined when it may be. */
export function exclusionOf(pool: LBPool, entry: PoolEntry, value: bigint): string | undefined {
  const { family, first, last } = entry.range;
  const edges = !pool.allowNetworkAndBroadcast && entry.prefixLength !== undefined && addressBits(family) - entry.prefixLength >= 2;
  if (edges && value === first) {
    return family === 'IPv4'
      ? `it is the network address of ${entry.text} (set allowNetworkAndBroadcast to use it)`
      : `it is the subnet-router anycast address of ${entry.text} (set allowNetworkAndBroadcast to use it)`;
  }
  if (edges && family === 'IPv4' && value === last) return `it is the broadcast address of ${entry.text} (set allowNetworkAndBroadcast to use it)`;
  if (pool.avoidBuggyIPs && isBuggy(family, value)) return 'it ends in .0 or .255 and the pool sets avoidBuggyIPs';
  return undefined;
}

export interface AddressLocation {
  pool: LBPool;
  entry: PoolEntry;
  /** Set when the address is inside the pool but never handed out. */
  exclusion?: string;
}

/** The pool and entry holding an address (pools never overlap once parsed). */
export function locateAddress(pools: readonly LBPool[], address: IPAddress): AddressLocation | undefined {
  for (const pool of pools) {
    for (const entry of pool.entries) {
      if (rangeContains(entry.range, address)) return { pool, entry, exclusion: exclusionOf(pool, entry, address.value) };
    }
  }
  return undefined;
}

/** How many values v in [a, b] have v mod 256 == r. */
const countResidue = (a: bigint, b: bigint, r: bigint): bigint => {
  const upTo = (n: bigint): bigint => (n < r ? 0n : (n - r) / 256n + 1n);
  return upTo(b) - (a === 0n ? 0n : upTo(a - 1n));
};

/** Addresses of an entry that may be handed out. */
export function entryCapacity(pool: LBPool, entry: PoolEntry): bigint {
  const { family, first, last } = entry.range;
  let excluded = 0n;
  if (pool.avoidBuggyIPs && family === 'IPv4') excluded += countResidue(first, last, 0n) + countResidue(first, last, 255n);
  const edges = family === 'IPv4' ? [first, last] : [first];
  for (const edge of edges) {
    if (exclusionOf(pool, entry, edge) !== undefined && !(pool.avoidBuggyIPs && isBuggy(family, edge))) excluded++;
  }
  return rangeSize(entry.range) - excluded;
}

export interface PoolCounters {
  assignedIPv4: number;
  availableIPv4: number;
  assignedIPv6: number;
  availableIPv6: number;
}

/** JSON numbers are exact up to 2^53-1; a /64 pool reports that rather than a rounded int64. */
const toCount = (n: bigint): number => (n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : n < 0n ? 0 : Number(n));

/** Status counters of a pool given the distinct addresses in use from it. */
export function poolCounters(pool: LBPool, inUse: Iterable<IPAddress>): PoolCounters {
  const capacity: Record<IPFamily, bigint> = { IPv4: 0n, IPv6: 0n };
  for (const entry of pool.entries) capacity[entry.range.family] += entryCapacity(pool, entry);
  const assigned: Record<IPFamily, bigint> = { IPv4: 0n, IPv6: 0n };
  const seen = new Set<string>();
  for (const a of inUse) {
    const key = formatIP(a);
    if (!seen.has(key)) assigned[a.family]++;
    seen.add(key);
  }
  return {
    assignedIPv4: toCount(assigned.IPv4),
    availableIPv4: toCount(capacity.IPv4 - assigned.IPv4),
    assignedIPv6: toCount(assigned.IPv6),
    availableIPv6: toCount(capacity.IPv6 - assigned.IPv6),
  };
}

export interface PoolConditionDraft {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
}

/**
 * The status of one IPAddressPool: counters from the allocator's usage, a Valid condition (False with the field
 * errors when the pool is left out, which is how a bypassed webhook still shows up) and a Disabled condition.
 */
export function poolStatus(
  name: string,
  parsed: ParsedPools,
  usage: ReadonlyMap<string, readonly IPAddress[]>,
): PoolCounters & { conditions: PoolConditionDraft[] } {
  const errors = parsed.invalid.get(name);
  const pool = parsed.pools.find((p) => p.name === name);
  const counters = pool ? poolCounters(pool, usage.get(name) ?? []) : { assignedIPv4: 0, availableIPv4: 0, assignedIPv6: 0, availableIPv6: 0 };
  const valid: PoolConditionDraft = errors
    ? { type: PoolConditionValid, status: 'False', reason: 'InvalidSpec', message: aggregateMessage(errors) }
    : { type: PoolConditionValid, status: 'True', reason: 'Valid', message: 'the pool is in use' };
  const disabled: PoolConditionDraft = pool?.disabled
    ? { type: PoolConditionDisabled, status: 'True', reason: 'Draining', message: 'no new allocations; Services keep the addresses they hold' }
    : { type: PoolConditionDisabled, status: 'False', reason: 'Enabled', message: 'the pool hands out addresses' };
  return { ...counters, conditions: [valid, disabled] };
}
