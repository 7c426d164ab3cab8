// Pure core of the EndpointSlice mirroring controller: (Endpoints of a selector-less Service, its Service, the
// mirrored slices) → slice writes.
//
//   reconcileMirroredSlices(input: MirroringReconcileInput): MirroringReconcileResult
//   shouldMirror(endpoints): boolean        — for the Endpoints event handlers
//
// The wiring passes the Endpoints and the Service of the queue key (undefined when missing) and the slices labelled
// {kubernetes.io/service-name: <name>, endpointslice.kubernetes.io/managed-by: <managedBy>}, after checking
// `EndpointSliceTracker.staleSlices` against the Endpoints object. It sends toCreate, toUpdate, toDelete in that
// order. Updates carry no resourceVersion (the slice is rewritten whole, as upstream): unconditional PUTs.
// `events` go on the Endpoints object. Upstream behaviour is spec/endpointslice.md §3.
import { type EndpointSlice, type Endpoints, type Service, copyWire } from '../../api/wire.js';
import {
  ANNOTATION_LAST_APPLIED,
  ANNOTATION_LEADER_ELECTION,
  ANNOTATION_TRIGGER_TIME,
  ADDRESS_TYPES,
  type AddressType,
  DEFAULT_MAX_ENDPOINTS_PER_SUBSET,
  DEFAULT_MIRRORING_MANAGED_BY,
  LABEL_ENDPOINTSLICE_SERVICE_NAME,
  LABEL_MANAGED_BY,
  LABEL_SKIP_MIRROR,
  clampEndpointLimit,
} from '../endpointutil/constants.js';
import { EndpointSet, endpointsEqualBeyondKey } from '../endpointutil/endpoint-identity.js';
import { isSpecialIP, readIPField } from '../endpointutil/ip.js';
import { stringMapsEqual, withoutKeys } from '../endpointutil/maps.js';
import { controllerOwnerReference, generateNamePrefix, managedSlices } from '../endpointutil/owner.js';
import { portSetKey } from '../endpointutil/ports.js';
import { type SliceWrites, noSliceWrites } from '../endpointutil/report.js';
import { hasSelector } from '../endpointutil/service.js';
import { repackSubsets } from '../endpointutil/subsets.js';
import type { SliceEndpoint, SlicePort, SubsetAddress, SubsetPort } from '../endpointutil/types.js';

export interface MirroringReconcileOptions {
  /** Value of endpointslice.kubernetes.io/managed-by on mirrored slices. */
  managedBy?: string;
  /** --mirroring-max-endpoints-per-subset: 1..1000, default 1000; out-of-range values are clamped. */
  maxEndpointsPerSubset?: number;
}

export interface MirroringReconcileInput {
  /** Undefined when the Endpoints object does not exist. */
  endpoints: Endpoints | undefined;
  /** The Service of the same name; undefined when it does not exist. */
  service: Service | undefined;
  existingSlices: readonly EndpointSlice[];
  options?: MirroringReconcileOptions;
}

export interface MirroringReconcileResult extends SliceWrites {
  /** `mirrored`, or why every mirrored slice is being removed instead. */
  outcome: 'mirrored' | 'endpoints-missing' | 'not-mirrored' | 'service-missing' | 'service-has-selector';
  stats: { endpointsAdded: number; endpointsUpdated: number; endpointsRemoved: number; addressesSkipped: number };
}

/** Annotations of the Endpoints that are not copied to its slices. */
const UNMIRRORED_ANNOTATIONS = [ANNOTATION_TRIGGER_TIME, ANNOTATION_LAST_APPLIED];

/** Mirrored unless absent, labelled skip-mirror "true", or a leader-election lock. */
export function shouldMirror(endpoints: Endpoints | undefined): boolean {
  if (!endpoints) return false;
  if (endpoints.metadata?.labels?.[LABEL_SKIP_MIRROR] === 'true') return false;
  return endpoints.metadata?.annotations?.[ANNOTATION_LEADER_ELECTION] === undefined;
}

function toSlicePorts(ports: readonly SubsetPort[] | undefined): SlicePort[] {
  return (ports ?? []).map((port) => {
    const slicePort: SlicePort = { name: port.name ?? '', port: port.port, protocol: port.protocol ?? 'TCP' };
    if (port.appProtocol != null) slicePort.appProtocol = port.appProtocol;
    return slicePort;
  });
}

/** The mirrored endpoint of an address: canonical IP, `ready` only, targetRef/nodeName/hostname copied. */
function addressToEndpoint(address: SubsetAddress, canonicalIP: string, ready: boolean): SliceEndpoint {
  const endpoint: SliceEndpoint = { addresses: [canonicalIP], conditions: { ready } };
  if (address.targetRef) endpoint.targetRef = copyWire(address.targetRef);
  if (address.nodeName != null) endpoint.nodeName = address.nodeName;
  if (address.hostname) endpoint.hostname = address.hostname;
  return endpoint;
}

function groupKey(addressType: AddressType | string, ports: readonly { name?: string; port?: number; protocol?: string; appProtocol?: string }[] | undefined): string {
  return `${addressType}-${portSetKey(ports)}`;
}

interface DesiredGroup {
  addressType: AddressType;
  ports: SlicePort[];
  desired: EndpointSet;
}

/** Desired endpoints per (address type, port set), at most `max` addresses per subset, ready ones first. */
function desiredGroups(endpoints: Endpoints, max: number, result: MirroringReconcileResult): Map<string, DesiredGroup> {
  const groups = new Map<string, DesiredGroup>();
  let invalid = 0;
  repackSubsets(endpoints.subsets).forEach((subset, index) => {
    const ports = toSlicePorts(subset.ports);
    for (const addressType of ADDRESS_TYPES) {
      const key = groupKey(addressType, ports);
      if (!groups.has(key)) groups.set(key, { addressType, ports, desired: new EndpointSet() });
    }
    const candidates = [
      ...(subset.addresses ?? []).map((address) => ({ address, ready: true })),
      ...(subset.notReadyAddresses ?? []).map((address) => ({ address, ready: false })),
    ];
    let added = 0;
    let invalidHere = 0;
    for (const { address, ready } of candidates) {
      if (added >= max) break;
      const ip = readIPField(address.ip);
      // Special addresses would make the API server refuse the whole slice; treat them as invalid too.
      if (!ip || isSpecialIP(ip)) {
        invalidHere += 1;
        const reason = ip ? 'address is unspecified, loopback or link-local' : 'address is not an IP';
        result.skipped.push({ kind: 'Address', name: String(address.ip), code: 'AddressInvalidIP', reason });
        continue;
      }
      groups.get(groupKey(ip.family, ports))!.desired.insert(addressToEndpoint(address, ip.canonical, ready));
      added += 1;
    }
    invalid += invalidHere;
    result.stats.addressesSkipped += candidates.length - added;
    const beyondCap = candidates.length - added - invalidHere;
    if (beyondCap > 0) {
      const reason = `${beyondCap} of the ${candidates.length} addresses of subset #${index} exceed the cap of ${max} and are not mirrored`;
      result.skipped.push({ kind: 'Address', name: `subset #${index}`, code: 'AddressOverCapacity', reason });
    }
  });
  if (invalid > 0) {
    result.events.push({ type: 'Warning', reason: 'InvalidIPAddress', message: `Skipped ${invalid} invalid IP addresses when mirroring to EndpointSlices` });
  }
  if (result.stats.addressesSkipped > invalid) {
    const message = `A max of ${max} addresses can be mirrored to EndpointSlices per Endpoints subset. ${result.stats.addressesSkipped} addresses were skipped`;
    result.events.push({ type: 'Warning', reason: 'TooManyAddressesToMirror', message });
  }
  return groups;
}

/** A slice mirroring the Endpoints: its labels and annotations (minus two) plus ours, owned by the Endpoints. */
function mirroredSlice(endpoints: Endpoints, group: DesiredGroup, managedBy: string, name: string | undefined): EndpointSlice {
  const metadata: EndpointSlice['metadata'] = {
    namespace: endpoints.metadata?.namespace,
    labels: { ...(endpoints.metadata?.labels ?? {}), [LABEL_ENDPOINTSLICE_SERVICE_NAME]: endpoints.metadata?.name ?? '', [LABEL_MANAGED_BY]: managedBy },
    annotations: withoutKeys(endpoints.metadata?.annotations, UNMIRRORED_ANNOTATIONS),
    ownerReferences: [controllerOwnerReference('Endpoints', endpoints)],
  };
  if (name) metadata.name = name;
  else metadata.generateName = generateNamePrefix(endpoints.metadata?.name ?? '');
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata, addressType: group.addressType, endpoints: [], ports: copyWire(group.ports) };
}

/** Endpoint changes between a slice and the desired set (upstream totalChanges). */
function changesAgainst(slice: EndpointSlice, desired: EndpointSet): { added: number; updated: number; removed: number } {
  let matched = 0;
  let updated = 0;
  let removed = 0;
  for (const endpoint of slice.endpoints ?? []) {
    const wanted = desired.get(endpoint);
    if (!wanted) removed += 1;
    else {
      matched += 1;
      if (!endpointsEqualBeyondKey(wanted, endpoint)) updated += 1;
    }
  }
  return { added: desired.size - matched, updated, removed };
}

/** Pairs creates with deletes of the same address type, turning each pair into an update of the doomed slice. */
function recycleSlices(result: MirroringReconcileResult): void {
  for (const addressType of ADDRESS_TYPES) {
    const creates = result.toCreate.filter((slice) => slice.addressType === addressType);
    const deletes = result.toDelete.filter((slice) => slice.addressType === addressType);
    for (let i = 0; i < creates.length && i < deletes.length; i += 1) {
      const slice = creates[i];
      slice.metadata = { ...slice.metadata, name: deletes[i].metadata?.name };
      delete slice.metadata.generateName;
      result.toCreate.splice(result.toCreate.indexOf(slice), 1);
      result.toDelete.splice(result.toDelete.indexOf(deletes[i]), 1);
      result.toUpdate.push(slice);
    }
  }
}

export function reconcileMirroredSlices(input: MirroringReconcileInput): MirroringReconcileResult {
  const { endpoints, service } = input;
  const managedBy = input.options?.managedBy ?? DEFAULT_MIRRORING_MANAGED_BY;
  const result: MirroringReconcileResult = {
    ...noSliceWrites(),
    outcome: 'mirrored',
    stats: { endpointsAdded: 0, endpointsUpdated: 0, endpointsRemoved: 0, addressesSkipped: 0 },
  };
  const ownerMeta = endpoints?.metadata ?? service?.metadata;
  const { usable: existing, skipped } = managedSlices(input.existingSlices, { namespace: ownerMeta?.namespace, name: ownerMeta?.name }, managedBy);
  result.skipped.push(...skipped);

  // Nothing to mirror: remove every mirrored slice.
  const unmirrored: MirroringReconcileResult['outcome'] | undefined = !endpoints
    ? 'endpoints-missing'
    : !shouldMirror(endpoints)
      ? 'not-mirrored'
      : !service
        ? 'service-missing'
        : hasSelector(service)
          ? 'service-has-selector'
          : undefined;
  if (unmirrored || !endpoints) {
    return { ...result, outcome: unmirrored ?? 'endpoints-missing', toDelete: existing };
  }

  const max = clampEndpointLimit(input.options?.maxEndpointsPerSubset, DEFAULT_MAX_ENDPOINTS_PER_SUBSET);
  const groups = desiredGroups(endpoints, max, result);
  const existingByKey = new Map<string, EndpointSlice[]>();
  for (const slice of existing) {
    const key = groupKey(slice.addressType, slice.ports ?? []);
    existingByKey.set(key, [...(existingByKey.get(key) ?? []), slice]);
  }
  const wantedAnnotations = withoutKeys(endpoints.metadata?.annotations, UNMIRRORED_ANNOTATIONS);

  for (const [key, group] of groups) {
    const slices = existingByKey.get(key) ?? [];
    if (group.desired.size === 0) {
      result.toDelete.push(...slices);
      result.stats.endpointsRemoved += slices.reduce((sum, slice) => sum + (slice.endpoints ?? []).length, 0);
      continue;
    }
    const [first, ...extra] = slices;
    // One slice per group: the first is kept (rewritten if needed), any others go.
    result.toDelete.push(...extra);
    if (first) {
      const changes = changesAgainst(first, group.desired);
      result.stats.endpointsAdded += changes.added;
      result.stats.endpointsUpdated += changes.updated;
      result.stats.endpointsRemoved += changes.removed;
      const untouched =
        changes.added + changes.updated + changes.removed === 0 &&
        stringMapsEqual(endpoints.metadata?.labels, withoutKeys(first.metadata?.labels, [LABEL_MANAGED_BY, LABEL_ENDPOINTSLICE_SERVICE_NAME])) &&
        stringMapsEqual(wantedAnnotations, first.metadata?.annotations);
      if (untouched) continue;
    } else {
      result.stats.endpointsAdded += group.desired.size;
    }
    const slice = mirroredSlice(endpoints, group, managedBy, first?.metadata?.name);
    while (group.desired.size > 0 && slice.endpoints.length < max) slice.endpoints.push(group.desired.popAny()!);
    (first ? result.toUpdate : result.toCreate).push(slice);
  }
  for (const [key, slices] of existingByKey) if (!groups.has(key)) result.toDelete.push(...slices);

  recycleSlices(result);
  // No new slices while the Endpoints object is being deleted.
  if (endpoints.metadata?.deletionTimestamp) result.toCreate = [];
  return result;
}
