// Pure core of the EndpointSlice controller: (Service, its pods, Nodes, the slices it has) → slice writes.
//
//   reconcileEndpointSlices(input: EndpointSliceReconcileInput): EndpointSliceReconcileResult
//
// The wiring lists the pods matching the selector (more pods are fine: others are ignored), all Nodes, and the
// slices labelled {kubernetes.io/service-name: <svc>, endpointslice.kubernetes.io/managed-by: <managedBy>}; it
// checks `EndpointSliceTracker.staleSlices` first and computes `triggerTime` with `computeTriggerTime`. It then
// sends toCreate, then toUpdate, then toDelete, stopping at the first error. An update without a resourceVersion
// (a recycled slice) is an unconditional PUT. `retry` asks for a later sync even when all writes succeed;
// `skipped` lists input that could not be used, with a reason, for logs and Events; `events` go on the Service.
// Upstream behaviour is spec/endpointslice.md §1, except deliberate improvements marked "Switchboard".
import { type EndpointSlice, type Node, type Pod, type Service, copyWire } from '../../api/wire.js';
import {
  type AddressType,
  DEFAULT_ENDPOINTSLICE_MANAGED_BY,
  DEFAULT_MAX_ENDPOINTS_PER_SLICE,
  LABEL_TOPOLOGY_ZONE,
  clampEndpointLimit,
} from '../endpointutil/constants.js';
import { EndpointSet, endpointsEqualBeyondKey } from '../endpointutil/endpoint-identity.js';
import { managedSlices } from '../endpointutil/owner.js';
import { isPodReady, isPodTerminating, podIPsOfFamily, podName, podTargetRef, podsToPublish, shouldSetHostname } from '../endpointutil/pod.js';
import { type ResolvedPort, portSetKey, resolvePodPorts, usableServicePorts } from '../endpointutil/ports.js';
import { type ControllerEvent, type SkippedItem, type SliceWrites, noSliceWrites } from '../endpointutil/report.js';
import { addressTypesForService, hasSelector, isExternalName } from '../endpointutil/service.js';
import { applyTriggerTime } from '../endpointutil/trigger-time.js';
import type { SliceEndpoint, SlicePort } from '../endpointutil/types.js';
import { isOwnedBy, isSamePlaceholder, newServiceSlice, reservedLabelsOnService, sliceLabels } from './slice-meta.js';
import {
  type SliceSets,
  type ZoneEndpointCounts,
  addTopologyHints,
  applyTrafficDistributionHints,
  hintsDisabledEvent,
  removeHintsFromSlices,
  topologyHintsEnabled,
  validTrafficDistribution,
  zoneRatiosFromNodes,
} from './topology.js';

export interface EndpointSliceReconcileOptions {
  /** Value of endpointslice.kubernetes.io/managed-by on our slices. */
  managedBy?: string;
  /** --max-endpoints-per-slice: 1..1000, default 100; out-of-range values are clamped. */
  maxEndpointsPerSlice?: number;
  /** Accept PreferSameZone/PreferSameNode (GA in 1.35); default true. PreferClose is always accepted. */
  preferSameTrafficDistribution?: boolean;
}

export interface EndpointSliceReconcileInput {
  service: Service;
  pods: readonly Pod[];
  nodes: readonly Node[];
  existingSlices: readonly EndpointSlice[];
  /** RFC 3339 time for the last-change-trigger-time annotation; undefined removes it from written slices. */
  triggerTime?: string;
  /** Whether the previous sync left topology hints in place for this Service (the wiring remembers the result). */
  topologyHintsPopulated?: boolean;
  options?: EndpointSliceReconcileOptions;
}

export interface EndpointSliceReconcileResult extends SliceWrites {
  /** `reconciled`, or why nothing was computed from pods: an ExternalName Service, or a selector that was removed. */
  outcome: 'reconciled' | 'external-name' | 'selector-removed';
  /** Some pods were left out for now (Node not in the cache): sync again later even if the writes succeed. */
  retry: boolean;
  /** Remember for the next sync's `topologyHintsPopulated`. */
  topologyHintsPopulated: boolean;
  /** Hints per zone by address type where topology hints are in place (input to `isServiceOverloaded`). */
  zoneEndpointCounts: Partial<Record<AddressType, ZoneEndpointCounts>>;
  stats: { endpointsDesired: number; endpointsAdded: number; endpointsRemoved: number; desiredSlices: number };
}

/** A pod as it enters the per-family loop: checked once, used for each address type. */
interface CandidatePod {
  pod: Pod;
  ports: ResolvedPort[];
  portKey: string;
  /** The pod's Node is unknown and publishNotReadyAddresses is off: it makes a port group but no endpoint. */
  withheld: boolean;
  node: Node | undefined;
}

interface PortGroup {
  ports: SlicePort[];
  desired: EndpointSet;
}

interface Context {
  service: Service;
  managedBy: string;
  maxPerSlice: number;
  triggerTime: string | undefined;
  skipped: SkippedItem[];
  stats: EndpointSliceReconcileResult['stats'];
}

function emptyResult(outcome: EndpointSliceReconcileResult['outcome'], populated: boolean): EndpointSliceReconcileResult {
  return {
    ...noSliceWrites(),
    outcome,
    retry: false,
    topologyHintsPopulated: populated,
    zoneEndpointCounts: {},
    stats: { endpointsDesired: 0, endpointsAdded: 0, endpointsRemoved: 0, desiredSlices: 0 },
  };
}

function endpointsOf(slice: EndpointSlice): SliceEndpoint[] {
  return slice.endpoints ?? [];
}

function sliceName(slice: EndpointSlice): string {
  return slice.metadata?.name ?? '';
}

/** Checks each pod once: eligibility, resolved ports and Node. */
function candidatePods(input: EndpointSliceReconcileInput, servicePorts: ReturnType<typeof usableServicePorts>['ports'], ctx: Context) {
  const { service } = input;
  const publishNotReady = service.spec?.publishNotReadyAddresses === true;
  const nodesByName = new Map(input.nodes.map((node) => [node.metadata?.name ?? '', node]));
  const candidates: CandidatePod[] = [];
  let retry = false;
  // Terminating pods are always published in slices (with terminating: true).
  for (const pod of podsToPublish(service, input.pods, true, ctx.skipped)) {
    const name = podName(pod);
    const ports = resolvePodPorts(pod, servicePorts, ctx.skipped);
    const nodeName = pod.spec?.nodeName ?? '';
    const node = nodesByName.get(nodeName);
    // Upstream (PR #110639): without the Node, leave the pod out and retry later, unless the user asked for
    // not-ready addresses to be published, in which case the pod goes in without a zone.
    const withheld = node === undefined && !publishNotReady;
    if (withheld) {
      retry = true;
      ctx.skipped.push({ kind: 'Pod', name, code: 'PodNodeNotFound', reason: `node "${nodeName}" is not in the cache; pod left out until it is` });
    }
    candidates.push({ pod, ports, portKey: portSetKey(ports), withheld, node });
  }
  return { candidates, retry };
}

/** The endpoint of a pod for one family, or undefined if the pod has no valid IP of that family. */
function podEndpoint(candidate: CandidatePod, service: Service, addressType: AddressType, ctx: Context): SliceEndpoint | undefined {
  const { pod, node } = candidate;
  const addresses = [...new Set(podIPsOfFamily(pod, addressType, ctx.skipped).map((ip) => ip.canonical))];
  if (addresses.length === 0) return undefined;
  const serving = isPodReady(pod);
  const terminating = isPodTerminating(pod);
  // publishNotReadyAddresses makes even terminating endpoints ready (upstream #116285, kept for compatibility).
  const ready = service.spec?.publishNotReadyAddresses === true || (serving && !terminating);
  const endpoint: SliceEndpoint = { addresses, conditions: { ready, serving, terminating }, targetRef: podTargetRef(pod) };
  if (pod.spec?.nodeName) endpoint.nodeName = pod.spec.nodeName;
  const zone = node?.metadata?.labels?.[LABEL_TOPOLOGY_ZONE];
  if (zone) endpoint.zone = zone;
  if (shouldSetHostname(pod, service)) endpoint.hostname = pod.spec?.hostname;
  return endpoint;
}

function toSlicePorts(ports: ResolvedPort[]): SlicePort[] {
  return ports.map((port) => ({ ...port }));
}

/** Among unchanged slices, the one that ends closest to full after taking `count` more; exact fit wins at once. */
function sliceToFill(slices: EndpointSlice[], count: number, max: number): EndpointSlice | undefined {
  let closest = max;
  let best: EndpointSlice | undefined;
  for (const slice of slices) {
    const room = max - (count + endpointsOf(slice).length);
    if (room >= 0 && room < closest) {
      closest = room;
      best = slice;
      if (room === 0) break;
    }
  }
  return best;
}

/**
 * Minimal-churn update of one port group's slices (upstream reconcileByPortMapping): keep endpoints where they
 * are, refresh changed ones, drop unwanted ones, then put new endpoints into slices being written anyway (fullest
 * first), then into the unchanged slice that ends closest to full, then into new slices. Never rebalances; the
 * only move is step 4's, into a slice written anyway.
 */
function reconcilePortGroup(existing: EndpointSlice[], group: PortGroup, addressType: AddressType, ctx: Context) {
  const { desired } = group;
  const current = new Map<string, EndpointSlice>(); // by name: the latest version of each existing slice
  const unchanged = new Set<string>();
  const updated = new Set<string>();
  const deleted = new Set<string>();

  for (const slice of existing) {
    const name = sliceName(slice);
    current.set(name, slice);
    const kept: SliceEndpoint[] = [];
    let endpointChanged = false;
    for (const endpoint of endpointsOf(slice)) {
      const wanted = desired.take(endpoint);
      if (!wanted) continue; // not desired, or already claimed by an earlier slice
      kept.push(wanted);
      if (!endpointsEqualBeyondKey(wanted, endpoint)) endpointChanged = true;
    }
    const labels = sliceLabels(ctx.service, ctx.managedBy, slice.metadata?.labels);
    const before = endpointsOf(slice).length;
    if (endpointChanged || before !== kept.length) {
      if (before > kept.length) ctx.stats.endpointsRemoved += before - kept.length;
      if (kept.length === 0) {
        deleted.add(name);
      } else {
        // Its endpoints are replaced: copying them was most of the copy's cost.
        const copy = copyWire<EndpointSlice>({ ...slice, endpoints: [] });
        copy.endpoints = kept;
        copy.metadata = { ...copy.metadata, labels: labels.labels };
        current.set(name, copy);
        updated.add(name);
      }
    } else if (labels.changed) {
      const copy = copyWire(slice);
      copy.metadata = { ...copy.metadata, labels: labels.labels };
      current.set(name, copy);
      updated.add(name);
    } else {
      unchanged.add(name);
    }
  }
  ctx.stats.endpointsAdded += desired.size;

  const fill = (slice: EndpointSlice) => {
    slice.endpoints = endpointsOf(slice);
    while (desired.size > 0 && slice.endpoints.length < ctx.maxPerSlice) slice.endpoints.push(desired.popAny()!);
  };

  // Step 2: slices we write anyway take new endpoints first, fullest first.
  if (desired.size > 0 && updated.size > 0) {
    const byFullness = [...updated].map((name) => current.get(name)!).sort((a, b) => endpointsOf(b).length - endpointsOf(a).length);
    for (const slice of byFullness) fill(slice);
  }

  // Step 3: the remainder goes into the unchanged slice that ends nearest to full, else into new slices.
  const toCreate: EndpointSlice[] = [];
  while (desired.size > 0) {
    let target: EndpointSlice | undefined;
    if (desired.size < ctx.maxPerSlice && unchanged.size > 0) {
      const candidate = sliceToFill([...unchanged].map((name) => current.get(name)!), desired.size, ctx.maxPerSlice);
      if (candidate) {
        target = copyWire(candidate);
        current.set(sliceName(target), target);
        unchanged.delete(sliceName(target));
        updated.add(sliceName(target));
      }
    }
    if (!target) {
      target = newServiceSlice(ctx.service, copyWire(group.ports), addressType, ctx.managedBy);
      toCreate.push(target);
    }
    fill(target);
  }

  packIntoWrittenSlices(toCreate, current, { unchanged, updated, deleted }, ctx.maxPerSlice);

  return {
    toCreate,
    toUpdate: [...updated].map((name) => current.get(name)!),
    toDelete: [...deleted].map((name) => current.get(name)!),
  };
}

/**
 * Switchboard step 4: a slice written anyway takes in whole other slices of its group that fit in its room, which
 * are then deleted (after the write, so no endpoint is ever missing). Each merge costs at most one delete now and
 * leaves one slice fewer for every later change to touch and every kube-proxy to hold; upstream leaves slices
 * fragmented until churn refills them (a flap after a rolling update then writes two slices where one would do).
 * Smallest slices go first, each into the written slice it fills closest to full.
 */
function packIntoWrittenSlices(
  created: EndpointSlice[],
  current: Map<string, EndpointSlice>,
  state: { unchanged: Set<string>; updated: Set<string>; deleted: Set<string> },
  max: number,
): void {
  const targets = new Set([...created, ...[...state.updated].map((name) => current.get(name)!)]);
  if (targets.size === 0) return;
  const candidates = [...state.unchanged, ...state.updated].map((name) => current.get(name)!);
  candidates.sort((a, b) => endpointsOf(a).length - endpointsOf(b).length);
  for (const candidate of candidates) {
    const moving = endpointsOf(candidate);
    let best: EndpointSlice | undefined;
    for (const target of targets) {
      if (target === candidate) continue;
      const room = max - endpointsOf(target).length;
      if (room >= moving.length && (!best || room < max - endpointsOf(best).length)) best = target;
    }
    if (!best) continue;
    const name = sliceName(candidate);
    // An unchanged slice is the cache's object: its endpoints are copied before they go into another slice.
    best.endpoints = [...endpointsOf(best), ...(state.unchanged.has(name) ? copyWire(moving) : moving)];
    targets.delete(candidate);
    state.unchanged.delete(name);
    state.updated.delete(name);
    state.deleted.add(name);
  }
}

/** Creates that would coexist with deletes become updates of the doomed slices instead (upstream finalize). */
function recycleDeletedSlices(sets: { toCreate: EndpointSlice[]; toUpdate: EndpointSlice[]; toDelete: EndpointSlice[] }, service: Service) {
  const toCreate = [...sets.toCreate];
  const toUpdate = [...sets.toUpdate];
  const toDelete = [...sets.toDelete];
  for (let i = 0; i < toDelete.length && toCreate.length > 0; ) {
    const doomed = toDelete[i];
    const created = toCreate[toCreate.length - 1];
    if (doomed.addressType === created.addressType && isOwnedBy(doomed, service)) {
      // Sent without resourceVersion: an unconditional PUT that takes over the doomed slice's name.
      created.metadata = { ...created.metadata, name: sliceName(doomed) };
      delete created.metadata.generateName;
      toCreate.pop();
      toUpdate.push(created);
      toDelete.splice(i, 1);
    } else {
      i += 1;
    }
  }
  return { toCreate, toUpdate, toDelete };
}

interface AddressTypeOutcome {
  toCreate: EndpointSlice[];
  toUpdate: EndpointSlice[];
  toDelete: EndpointSlice[];
  events: ControllerEvent[];
  populated: boolean;
  zoneCounts?: ZoneEndpointCounts;
}

function reconcileAddressType(
  addressType: AddressType,
  existing: EndpointSlice[],
  candidates: CandidatePod[],
  populated: boolean,
  input: EndpointSliceReconcileInput,
  ctx: Context,
): AddressTypeOutcome {
  const { service } = input;
  let toDelete: EndpointSlice[] = [];
  const existingByPorts = new Map<string, EndpointSlice[]>();
  for (const slice of existing) {
    // Slices of a deleted Service with the same name (another uid) go away.
    if (!isOwnedBy(slice, service)) {
      toDelete.push(slice);
      continue;
    }
    const key = portSetKey(slice.ports);
    existingByPorts.set(key, [...(existingByPorts.get(key) ?? []), slice]);
  }

  const groups = new Map<string, PortGroup>();
  for (const candidate of candidates) {
    let group = groups.get(candidate.portKey);
    if (!group) {
      group = { ports: toSlicePorts(candidate.ports), desired: new EndpointSet() };
      groups.set(candidate.portKey, group);
    }
    if (candidate.withheld) continue;
    const endpoint = podEndpoint(candidate, service, addressType, ctx);
    if (endpoint) group.desired.insert(endpoint);
  }

  let toCreate: EndpointSlice[] = [];
  let toUpdate: EndpointSlice[] = [];
  for (const [key, group] of groups) {
    ctx.stats.endpointsDesired += group.desired.size;
    ctx.stats.desiredSlices += Math.ceil(group.desired.size / ctx.maxPerSlice);
    const outcome = reconcilePortGroup(existingByPorts.get(key) ?? [], group, addressType, ctx);
    toCreate.push(...outcome.toCreate);
    toUpdate.push(...outcome.toUpdate);
    toDelete.push(...outcome.toDelete);
  }
  for (const [key, slices] of existingByPorts) if (!groups.has(key)) toDelete.push(...slices);

  // Every selector Service keeps at least one slice per family: an empty placeholder, reused if it already exists.
  if (existing.length === toDelete.length && toCreate.length === 0) {
    const placeholder = newServiceSlice(service, [], addressType, ctx.managedBy);
    if (toDelete.length === 1 && isSamePlaceholder(toDelete[0], placeholder)) toDelete = [];
    else toCreate.push(placeholder);
  }

  // Hints: the topology annotation first, then trafficDistribution, otherwise none at all.
  const writtenNames = new Set([...toUpdate, ...toDelete].map(sliceName));
  let sets: SliceSets = { toCreate, toUpdate, unchanged: existing.filter((slice) => !writtenNames.has(sliceName(slice))) };
  const events: ControllerEvent[] = [];
  const trafficDistribution = service.spec?.trafficDistribution;
  const annotationHints = topologyHintsEnabled(service.metadata?.annotations);
  const useTrafficDistribution =
    validTrafficDistribution(trafficDistribution, input.options?.preferSameTrafficDistribution ?? true) && !annotationHints;
  let zoneCounts: ZoneEndpointCounts | undefined;
  if (annotationHints) {
    const outcome = addTopologyHints(sets, zoneRatiosFromNodes(input.nodes), addressType, populated);
    sets = outcome.sets;
    events.push(...outcome.events);
    zoneCounts = outcome.zoneCounts;
    populated = zoneCounts !== undefined;
  } else {
    if (populated) events.push(hintsDisabledEvent(addressType));
    populated = false;
    if (!useTrafficDistribution) sets = removeHintsFromSlices(sets);
  }
  if (useTrafficDistribution && trafficDistribution) sets = applyTrafficDistributionHints(trafficDistribution, sets);

  const recycled = recycleDeletedSlices({ toCreate: sets.toCreate, toUpdate: sets.toUpdate, toDelete }, service);
  // No new slices for a Service being deleted: the garbage collector would race us.
  toCreate = service.metadata?.deletionTimestamp ? [] : recycled.toCreate;
  toUpdate = recycled.toUpdate;
  for (const slice of [...toCreate, ...toUpdate]) {
    slice.metadata = { ...slice.metadata, annotations: applyTriggerTime(slice.metadata?.annotations, ctx.triggerTime) };
  }
  return { toCreate, toUpdate, toDelete: recycled.toDelete, events, populated, zoneCounts };
}

export function reconcileEndpointSlices(input: EndpointSliceReconcileInput): EndpointSliceReconcileResult {
  const { service } = input;
  const managedBy = input.options?.managedBy ?? DEFAULT_ENDPOINTSLICE_MANAGED_BY;
  let populated = input.topologyHintsPopulated ?? false;

  if (isExternalName(service)) return emptyResult('external-name', populated);

  const result = emptyResult('reconciled', populated);
  const owned = managedSlices(input.existingSlices, { namespace: service.metadata?.namespace, name: service.metadata?.name }, managedBy);
  const existing = owned.usable;
  result.skipped.push(...owned.skipped);

  // Switchboard: upstream leaves the slices of a Service whose selector was removed in place (#118376), so
  // traffic keeps going to the old pods; we delete what we made and let Endpoints mirroring take over.
  if (!hasSelector(service)) {
    return { ...result, outcome: 'selector-removed', toDelete: existing, topologyHintsPopulated: false };
  }

  for (const key of reservedLabelsOnService(service)) {
    result.skipped.push({ kind: 'Service', name: key, code: 'SliceLabelReserved', reason: `label ${key} is reserved for EndpointSlices and not copied` });
  }
  const ctx: Context = {
    service,
    managedBy,
    maxPerSlice: clampEndpointLimit(input.options?.maxEndpointsPerSlice, DEFAULT_MAX_ENDPOINTS_PER_SLICE),
    triggerTime: input.triggerTime,
    skipped: result.skipped,
    stats: result.stats,
  };
  const { ports: servicePorts, skipped: portProblems } = usableServicePorts(service);
  result.skipped.push(...portProblems);
  const { candidates, retry } = candidatePods(input, servicePorts, ctx);
  result.retry = retry;

  const addressTypes = addressTypesForService(service);
  for (const addressType of addressTypes) {
    const slices = existing.filter((slice) => slice.addressType === addressType);
    const outcome = reconcileAddressType(addressType, slices, candidates, populated, input, ctx);
    populated = outcome.populated;
    result.toCreate.push(...outcome.toCreate);
    result.toUpdate.push(...outcome.toUpdate);
    result.toDelete.push(...outcome.toDelete);
    result.events.push(...outcome.events);
    if (outcome.zoneCounts) result.zoneEndpointCounts[addressType] = outcome.zoneCounts;
  }
  // Legacy `IP`, FQDN, or a family the Service dropped: deleted, never recycled (addressType is immutable).
  result.toDelete.push(...existing.filter((slice) => !addressTypes.includes(slice.addressType as AddressType)));
  result.topologyHintsPopulated = populated;
  result.stats.desiredSlices = Math.max(1, result.stats.desiredSlices);
  dedupeSkipped(result);
  return result;
}

/** One line per (object, code, reason): a pod is looked at once per address type. */
function dedupeSkipped(result: EndpointSliceReconcileResult): void {
  const seen = new Set<string>();
  result.skipped = result.skipped.filter((item) => {
    const key = JSON.stringify([item.kind, item.name, item.code, item.reason]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
