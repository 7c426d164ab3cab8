// Endpoint hints: Topology Aware Routing (annotation `Auto`, upstream topologycache) and trafficDistribution
// (upstream trafficdist). Pure: zone ratios come from the Node list, the "hints were populated" memory is passed in.
//
// Slices in toCreate/toUpdate are the reconciler's own copies and are edited in place; slices in `unchanged` come
// from the cache and are deep-copied before they move to toUpdate.
import { type EndpointSlice, type Node, copyWire } from '../../api/wire.js';
import {
  ANNOTATION_TOPOLOGY_AWARE_HINTS,
  ANNOTATION_TOPOLOGY_MODE,
  type AddressType,
  LABEL_TOPOLOGY_ZONE,
} from '../endpointutil/constants.js';
import type { ControllerEvent } from '../endpointutil/report.js';
import type { SliceEndpoint } from '../endpointutil/types.js';

/** Each zone may get at most 20% more than its share before hints are refused. */
const OVERLOAD_THRESHOLD = 0.2;

export const HINTS_MESSAGES = {
  noZoneSpecified: 'One or more endpoints do not have a zone specified',
  noAllocatedHintsForZones: 'No hints allocated for zones',
  enabled: 'Topology Aware Hints has been enabled',
  disabled: 'Topology Aware Hints has been disabled',
  insufficientNodeInfo: 'Insufficient Node information: allocatable CPU or zone not specified on one or more nodes',
  nodesReadyInOneZoneOnly: 'Nodes only ready in one zone',
  insufficientNumberOfEndpoints: 'Insufficient number of endpoints',
  minAllocationExceedsOverloadThreshold:
    'Unable to allocate minimum required endpoints to each zone without exceeding overload threshold',
} as const;

export interface SliceSets {
  toCreate: EndpointSlice[];
  toUpdate: EndpointSlice[];
  unchanged: EndpointSlice[];
}

/** Share of allocatable CPU per zone; null when hints cannot be computed from the Nodes. */
export type ZoneRatios = ReadonlyMap<string, number> | null;

/** Zone endpoint counts recorded for a Service after hints were assigned (for the overload check). */
export type ZoneEndpointCounts = Record<string, number>;

/** `service.kubernetes.io/topology-aware-hints` (deprecated, wins when set) or `topology-mode` is Auto/auto. */
export function topologyHintsEnabled(annotations: Record<string, string> | undefined): boolean {
  const value = annotations?.[ANNOTATION_TOPOLOGY_AWARE_HINTS] ?? annotations?.[ANNOTATION_TOPOLOGY_MODE];
  return value === 'Auto' || value === 'auto';
}

export function validTrafficDistribution(value: string | undefined | null, preferSame: boolean): boolean {
  if (value === 'PreferClose') return true;
  return preferSame && (value === 'PreferSameZone' || value === 'PreferSameNode');
}

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/;
const SUFFIX_FACTOR: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A CPU quantity ("4", "3500m", "1.5", "2k") in milli-CPU, rounded up like Quantity.MilliValue(); 0 if unreadable. */
export function cpuMillis(quantity: string | number | undefined): number {
  if (typeof quantity === 'number') return Number.isFinite(quantity) && quantity > 0 ? Math.ceil(quantity * 1000) : 0;
  const match = QUANTITY.exec((quantity ?? '').trim());
  if (!match) return 0;
  const factor = match[2] ? 10 ** Number(match[2].slice(1)) : SUFFIX_FACTOR[match[3] ?? ''];
  // Scale in two steps so that "3500m" stays exactly 3500 despite binary floating point.
  const millis = factor < 1 ? Number(match[1]) * (factor * 1000) : Number(match[1]) * factor * 1000;
  const rounded = Math.round(millis);
  const value = Math.abs(millis - rounded) < 1e-6 ? rounded : Math.ceil(millis);
  return value > 0 ? value : 0;
}

function isNodeReady(node: Node): boolean {
  return node.status?.conditions?.find((condition) => condition.type === 'Ready')?.status === 'True';
}

function isExcludedNode(node: Node): boolean {
  const labels = node.metadata?.labels ?? {};
  return 'node-role.kubernetes.io/control-plane' in labels || 'node-role.kubernetes.io/master' in labels;
}

/**
 * Ratio of allocatable CPU per zone over the ready worker Nodes. Any such Node without a zone or CPU, fewer than two
 * zones, or no CPU at all gives null (hints off for every Service), as upstream SetNodes.
 */
export function zoneRatiosFromNodes(nodes: readonly Node[]): ZoneRatios {
  const cpuByZone = new Map<string, number>();
  let total = 0;
  for (const node of nodes) {
    if (isExcludedNode(node) || !isNodeReady(node)) continue;
    const zone = node.metadata?.labels?.[LABEL_TOPOLOGY_ZONE] ?? '';
    const cpu = cpuMillis(node.status?.allocatable?.cpu);
    if (zone === '' || cpu === 0) return null;
    total += cpu;
    cpuByZone.set(zone, (cpuByZone.get(zone) ?? 0) + cpu);
  }
  if (total === 0 || cpuByZone.size < 2) return null;
  return new Map([...cpuByZone].map(([zone, cpu]) => [zone, cpu / total]));
}

function isEndpointReady(endpoint: SliceEndpoint): boolean {
  return endpoint.conditions?.ready === true;
}

function endpointsOf(slice: EndpointSlice): SliceEndpoint[] {
  return slice.endpoints ?? [];
}

function countReady(slices: readonly EndpointSlice[]): number {
  return slices.reduce((sum, slice) => sum + endpointsOf(slice).filter(isEndpointReady).length, 0);
}

interface Allocation {
  minimum: number;
  maximum: number;
  desired: number;
}

function warning(message: string, addressType: AddressType): ControllerEvent {
  return { type: 'Warning', reason: 'TopologyAwareHintsDisabled', message: `${message}, addressType: ${addressType}` };
}

/** Per-zone minimum/maximum endpoint counts, or the reason hints cannot be given. */
function allocationsFor(ratios: ZoneRatios, total: number): Map<string, Allocation> | string {
  if (ratios === null) return HINTS_MESSAGES.insufficientNodeInfo;
  if (ratios.size < 2) return HINTS_MESSAGES.nodesReadyInOneZoneOnly;
  if (ratios.size > total) return `${HINTS_MESSAGES.insufficientNumberOfEndpoints} (${total} endpoints, ${ratios.size} zones)`;
  const allocations = new Map<string, Allocation>();
  let minTotal = 0;
  for (const [zone, ratio] of ratios) {
    const desired = ratio * total;
    const minimum = Math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)));
    allocations.set(zone, { minimum, maximum: 0, desired: Math.max(desired, minimum) });
    minTotal += minimum;
  }
  if (minTotal > total) {
    return `${HINTS_MESSAGES.minAllocationExceedsOverloadThreshold} (${total} endpoints, ${ratios.size} zones)`;
  }
  for (const allocation of allocations.values()) allocation.maximum = allocation.minimum + total - minTotal;
  return allocations;
}

/** Hint counts per zone of an unchanged slice, or undefined if the slice must be rewritten. */
function hintsByZone(slice: EndpointSlice, allocated: ZoneEndpointCounts, allocations: Map<string, Allocation>): ZoneEndpointCounts | undefined {
  const counts: ZoneEndpointCounts = {};
  for (const endpoint of endpointsOf(slice)) {
    if (!isEndpointReady(endpoint)) continue;
    const zones = endpoint.hints?.forZones ?? [];
    if (zones.length === 0) return undefined;
    for (const { name } of zones) {
      if (!allocations.has(name)) return undefined;
      counts[name] = (counts[name] ?? 0) + 1;
    }
  }
  for (const [zone, count] of Object.entries(counts)) {
    if (count + (allocated[zone] ?? 0) > allocations.get(zone)!.maximum) return undefined;
  }
  return counts;
}

/** The zone with the largest strictly positive value (ties: first by name). */
function largest(values: Map<string, number>): [string, number] | undefined {
  let best: [string, number] | undefined;
  for (const zone of [...values.keys()].sort()) {
    const value = values.get(zone)!;
    if (value > (best?.[1] ?? 0)) best = [zone, value];
  }
  return best;
}

/** How many endpoints each zone gives away and receives, in whole endpoints. */
function givingAndReceiving(allocations: Map<string, Allocation>, allocated: ZoneEndpointCounts) {
  const givingDesired = new Map<string, number>();
  const receivingDesired = new Map<string, number>();
  for (const [zone, { desired }] of allocations) {
    const have = allocated[zone] ?? 0;
    if (have > desired) givingDesired.set(zone, have - desired);
    else if (have < desired) receivingDesired.set(zone, desired - have);
  }
  const giving = new Map<string, number>();
  const receiving = new Map<string, number>();
  for (;;) {
    const give = largest(givingDesired);
    const receive = largest(receivingDesired);
    if (!give || !receive || (give[1] < 1 && receive[1] < 1) || give[1] < 0.5 || receive[1] < 0.5) break;
    giving.set(give[0], (giving.get(give[0]) ?? 0) + 1);
    givingDesired.set(give[0], give[1] - 1);
    receiving.set(receive[0], (receiving.get(receive[0]) ?? 0) + 1);
    receivingDesired.set(receive[0], receive[1] - 1);
  }
  return { giving, receiving };
}

/** Re-hints ready endpoints of giving zones to receiving zones; returns the change per zone. */
function redistribute(slices: EndpointSlice[], giving: Map<string, number>, receiving: Map<string, number>): Map<string, number> {
  const changes = new Map<string, number>();
  for (const slice of slices) {
    for (const endpoint of endpointsOf(slice)) {
      if (!isEndpointReady(endpoint)) continue;
      if (giving.size === 0 || receiving.size === 0) return changes;
      const from = endpoint.zone ?? '';
      if (from === '' || (giving.get(from) ?? 0) <= 0) continue;
      const to = [...receiving.keys()].sort().find((zone) => (receiving.get(zone) ?? 0) > 0);
      if (to === undefined) continue;
      endpoint.hints = { forZones: [{ name: to }] };
      decrement(giving, from);
      decrement(receiving, to);
      changes.set(to, (changes.get(to) ?? 0) + 1);
      changes.set(from, (changes.get(from) ?? 0) - 1);
    }
  }
  return changes;
}

function decrement(counts: Map<string, number>, zone: string): void {
  const left = (counts.get(zone) ?? 0) - 1;
  if (left <= 0) counts.delete(zone);
  else counts.set(zone, left);
}

/** Strips hints from every slice to write, and moves unchanged slices that still carry hints to the writes. */
export function removeHintsFromSlices(sets: SliceSets): SliceSets {
  for (const slice of [...sets.toCreate, ...sets.toUpdate]) {
    for (const endpoint of endpointsOf(slice)) delete endpoint.hints;
  }
  const toUpdate = [...sets.toUpdate];
  const unchanged: EndpointSlice[] = [];
  for (const slice of sets.unchanged) {
    if (!endpointsOf(slice).some((endpoint) => endpoint.hints != null)) {
      unchanged.push(slice);
      continue;
    }
    const copy = copyWire(slice);
    for (const endpoint of endpointsOf(copy)) delete endpoint.hints;
    toUpdate.push(copy);
  }
  return { toCreate: sets.toCreate, toUpdate, unchanged };
}

export interface TopologyHintsOutcome {
  sets: SliceSets;
  events: ControllerEvent[];
  /** Hints per zone when hints are in place; undefined when they were removed. */
  zoneCounts?: ZoneEndpointCounts;
}

/**
 * Topology Aware Routing for one address type: share the ready endpoints out across zones in proportion to CPU,
 * within the overload threshold, or remove all hints with a TopologyAwareHintsDisabled Warning saying why.
 * `previouslyPopulated` says whether this Service had hints; the first success emits TopologyAwareHintsEnabled.
 */
export function addTopologyHints(sets: SliceSets, ratios: ZoneRatios, addressType: AddressType, previouslyPopulated: boolean): TopologyHintsOutcome {
  const total = countReady([...sets.toCreate, ...sets.toUpdate, ...sets.unchanged]);
  const allocations = allocationsFor(ratios, total);
  if (typeof allocations === 'string') {
    return { sets: removeHintsFromSlices(sets), events: [warning(allocations, addressType)] };
  }

  // Unchanged slices keep their hints if they still fit; the others are rewritten.
  const allocated: ZoneEndpointCounts = {};
  const toUpdate = [...sets.toUpdate];
  const unchanged: EndpointSlice[] = [];
  for (const slice of sets.unchanged) {
    const counts = hintsByZone(slice, allocated, allocations);
    if (counts === undefined) {
      toUpdate.push(copyWire(slice));
      continue;
    }
    unchanged.push(slice);
    for (const [zone, count] of Object.entries(counts)) allocated[zone] = (allocated[zone] ?? 0) + count;
  }
  const sized: SliceSets = { toCreate: sets.toCreate, toUpdate, unchanged };
  const writable = [...sized.toCreate, ...sized.toUpdate];

  // Every ready endpoint starts out hinted to its own zone. (Not-ready endpoints keep what they have, as upstream.)
  for (const slice of writable) {
    for (const endpoint of endpointsOf(slice)) {
      if (!isEndpointReady(endpoint)) continue;
      if (!endpoint.zone) {
        return { sets: removeHintsFromSlices(sized), events: [warning(HINTS_MESSAGES.noZoneSpecified, addressType)] };
      }
      allocated[endpoint.zone] = (allocated[endpoint.zone] ?? 0) + 1;
      endpoint.hints = { forZones: [{ name: endpoint.zone }] };
    }
  }

  const { giving, receiving } = givingAndReceiving(allocations, allocated);
  for (const [zone, change] of redistribute(writable, giving, receiving)) allocated[zone] = (allocated[zone] ?? 0) + change;

  if (Object.keys(allocated).length === 0) {
    return { sets: removeHintsFromSlices(sized), events: [warning(HINTS_MESSAGES.noAllocatedHintsForZones, addressType)] };
  }
  const events: ControllerEvent[] = previouslyPopulated
    ? []
    : [{ type: 'Normal', reason: 'TopologyAwareHintsEnabled', message: `${HINTS_MESSAGES.enabled}, addressType: ${addressType}` }];
  return { sets: sized, events, zoneCounts: allocated };
}

/** The Event upstream records when the topology annotation goes away from a Service that had hints. */
export function hintsDisabledEvent(addressType: AddressType): ControllerEvent {
  return warning(HINTS_MESSAGES.disabled, addressType);
}

function sameNamedHint(hints: { name: string }[] | undefined, name: string): boolean {
  return hints?.length === 1 && hints[0].name === name;
}

/**
 * trafficDistribution PreferClose / PreferSameZone (and PreferSameNode, which adds a node hint): every ready
 * endpoint is hinted to its own zone (and node). Not-ready endpoints are left alone; unchanged slices with missing
 * or stale hints are rewritten.
 */
export function applyTrafficDistributionHints(trafficDistribution: string, sets: SliceSets): SliceSets {
  const nodeHints = trafficDistribution === 'PreferSameNode';
  const needsUpdate = (slice: EndpointSlice) =>
    endpointsOf(slice).some((endpoint) => {
      if (!isEndpointReady(endpoint)) return false;
      const zones = endpoint.hints?.forZones ?? [];
      const nodes = endpoint.hints?.forNodes ?? [];
      const zoneWrong = endpoint.zone != null ? !sameNamedHint(endpoint.hints?.forZones, endpoint.zone) : zones.length > 0;
      const wantNode = endpoint.nodeName != null && nodeHints;
      const nodeWrong = wantNode ? !sameNamedHint(endpoint.hints?.forNodes, endpoint.nodeName!) : nodes.length > 0;
      return zoneWrong || nodeWrong;
    });
  const toUpdate = [...sets.toUpdate];
  const unchanged: EndpointSlice[] = [];
  for (const slice of sets.unchanged) {
    if (needsUpdate(slice)) toUpdate.push(copyWire(slice));
    else unchanged.push(slice);
  }
  for (const slice of [...sets.toCreate, ...toUpdate]) {
    for (const endpoint of endpointsOf(slice)) {
      if (!isEndpointReady(endpoint)) continue;
      const hints: NonNullable<SliceEndpoint['hints']> = {};
      if (endpoint.zone != null) hints.forZones = [{ name: endpoint.zone }];
      if (endpoint.nodeName != null && nodeHints) hints.forNodes = [{ name: endpoint.nodeName }];
      if (hints.forZones || hints.forNodes) endpoint.hints = hints;
      else delete endpoint.hints;
    }
  }
  return { toCreate: sets.toCreate, toUpdate, unchanged };
}

/** Some zone has fewer endpoints than its CPU share allows (upstream serviceOverloaded): the Service needs a sync. */
export function isServiceOverloaded(counts: ZoneEndpointCounts | undefined, ratios: ZoneRatios): boolean {
  if (!counts || Object.keys(counts).length === 0) return false;
  if (ratios === null || ratios.size === 0) return true;
  const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
  for (const [zone, ratio] of ratios) {
    const have = counts[zone];
    if (have === undefined) return true;
    if (have < Math.ceil(total * ratio * (1 / (1 + OVERLOAD_THRESHOLD)))) return true;
  }
  return false;
}
