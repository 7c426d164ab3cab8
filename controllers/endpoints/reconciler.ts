// Pure core of the legacy Endpoints controller: (Service, its pods, the current Endpoints) → one write or none.
//
//   reconcileEndpoints(input: EndpointsReconcileInput): EndpointsReconcileResult
//
// The wiring passes the Service (undefined once it is gone), the pods matching its selector, the Endpoints of the
// same name from the cache and the trigger time from `computeTriggerTime` (its own state, separate from the slice
// controller's). It performs `action`: create, update (a PUT carrying the cached resourceVersion), delete (ignore
// NotFound; with the precondition when one is given), or nothing. Before reconciling it should ask
// `StaleEndpointsTracker.isStale` and retry if so. Upstream behaviour is spec/endpointslice.md §2, except the
// deliberate improvements marked "Switchboard".
import { type Endpoints, type Pod, type Service, copyWire } from '../../api/wire.js';
import {
  ANNOTATION_LEADER_ELECTION,
  ANNOTATION_OVER_CAPACITY,
  type AddressType,
  DEFAULT_ENDPOINTS_MANAGED_BY,
  ENDPOINTS_MAX_CAPACITY,
  LABEL_ENDPOINTS_MANAGED_BY,
  LABEL_HEADLESS,
  LABEL_SKIP_MIRROR,
  OVER_CAPACITY_TRUNCATED,
} from '../endpointutil/constants.js';
import { readIPField } from '../endpointutil/ip.js';
import { stringMapsEqual, withoutKeys } from '../endpointutil/maps.js';
import { isPodReady, podIPsOfFamily, podTargetRef, podsToPublish, shouldSetHostname } from '../endpointutil/pod.js';
import { resolvePodPorts, usableServicePorts } from '../endpointutil/ports.js';
import type { SkippedItem } from '../endpointutil/report.js';
import { hasSelector, isExternalName, isServiceIPSet } from '../endpointutil/service.js';
import { countAddresses, repackSubsets, subsetsEqual } from '../endpointutil/subsets.js';
import { applyTriggerTime } from '../endpointutil/trigger-time.js';
import type { EndpointSubset, SubsetAddress, SubsetPort } from '../endpointutil/types.js';

export interface EndpointsReconcileOptions {
  /** Value of the endpoints.kubernetes.io/managed-by label (1.33+); null leaves the label off (older clusters). */
  managedByLabel?: string | null;
}

export interface EndpointsReconcileInput {
  /** Namespace and name of the Service, which are also those of its Endpoints object. */
  namespace: string;
  name: string;
  /** Undefined when the Service no longer exists. */
  service: Service | undefined;
  pods: readonly Pod[];
  /** The Endpoints object from the cache, if any. */
  existing: Endpoints | undefined;
  triggerTime?: string;
  options?: EndpointsReconcileOptions;
}

export type EndpointsAction =
  | { type: 'none' }
  | { type: 'create'; endpoints: Endpoints }
  | { type: 'update'; endpoints: Endpoints }
  | { type: 'delete'; namespace: string; name: string; precondition?: { uid?: string; resourceVersion?: string } };

export interface EndpointsReconcileResult {
  action: EndpointsAction;
  /** More than 1000 addresses: the written object was cut down and carries over-capacity: truncated. */
  truncated: boolean;
  /** Addresses before truncation. */
  counts: { ready: number; notReady: number };
  skipped: SkippedItem[];
}

/** An Endpoints object used as a leader-election lock; the controller never touches these. */
export function isLeaderElectionEndpoints(endpoints: Endpoints | undefined): boolean {
  return endpoints?.metadata?.annotations?.[ANNOTATION_LEADER_ELECTION] !== undefined;
}

/** The family the Endpoints object carries: the primary one only. */
function primaryFamily(service: Service, pod: Pod): AddressType {
  const first = service.spec?.ipFamilies?.[0];
  if (first === 'IPv4' || first === 'IPv6') return first;
  // No ipFamilies (old apiserver): the ClusterIP's family, or for headless Services the pod's own primary IP.
  const reference = isServiceIPSet(service) ? service.spec?.clusterIP : pod.status?.podIP;
  return readIPField(reference)?.family === 'IPv6' ? 'IPv6' : 'IPv4';
}

/** The pod's first IP of the family, copied verbatim (Endpoints IPs are not canonicalised). */
function podAddress(service: Service, pod: Pod, skipped: SkippedItem[]): SubsetAddress | undefined {
  const ip = podIPsOfFamily(pod, primaryFamily(service, pod), skipped)[0]?.text;
  if (ip === undefined) return undefined;
  const address: SubsetAddress = { ip, targetRef: podTargetRef(pod) };
  if (pod.spec?.nodeName) address.nodeName = pod.spec.nodeName;
  if (shouldSetHostname(pod, service)) address.hostname = pod.spec?.hostname;
  return address;
}

/** One subset per (pod, Service port) — or per pod for a headless Service without ports — then repacked. */
function desiredSubsets(service: Service, pods: readonly Pod[], skipped: SkippedItem[]): EndpointSubset[] {
  const publishNotReady = service.spec?.publishNotReadyAddresses === true;
  const { ports: servicePorts, skipped: portProblems } = usableServicePorts(service);
  skipped.push(...portProblems);
  const headlessWithoutPorts = (service.spec?.ports ?? []).length === 0 && service.spec?.clusterIP === 'None';
  const subsets: EndpointSubset[] = [];
  // Terminating pods stay only with publishNotReadyAddresses (slices always keep them).
  for (const pod of podsToPublish(service, pods, publishNotReady, skipped)) {
    const address = podAddress(service, pod, skipped);
    if (!address) continue;
    const ready = publishNotReady || isPodReady(pod);
    const subsetFor = (ports: SubsetPort[]): EndpointSubset =>
      ready ? { addresses: [address], ports } : { notReadyAddresses: [address], ports };
    if (headlessWithoutPorts) subsets.push(subsetFor([]));
    else for (const port of resolvePodPorts(pod, servicePorts, skipped)) subsets.push(subsetFor([port]));
  }
  return repackSubsets(subsets);
}

/**
 * Cuts subsets down to 1000 addresses (upstream truncateEndpoints). Ready addresses go first: if they fit, the
 * remaining slots are shared among the subsets' not-ready lists; otherwise all not-ready addresses go and the 1000
 * slots are shared among the ready lists. Each subset gets ceil(its share · slots), capped by what is left, in
 * subset order, and keeps the first addresses of its list. Returns undefined when no truncation is needed.
 * Switchboard: drops subsets left without any address, which upstream would send and the API server reject.
 */
export function truncateSubsets(subsets: readonly EndpointSubset[]): EndpointSubset[] | undefined {
  const { ready, notReady } = countAddresses(subsets);
  if (ready + notReady <= ENDPOINTS_MAX_CAPACITY) return undefined;
  const truncateReady = ready > ENDPOINTS_MAX_CAPACITY;
  const slots = truncateReady ? ENDPOINTS_MAX_CAPACITY : ENDPOINTS_MAX_CAPACITY - ready;
  const total = truncateReady ? ready : notReady;
  let left = slots;
  const truncated: EndpointSubset[] = [];
  for (const subset of subsets) {
    const list = truncateReady ? subset.addresses : subset.notReadyAddresses;
    const kept = (list ?? []).slice(0, Math.min(Math.ceil(((list?.length ?? 0) / total) * slots), left));
    left -= kept.length;
    const copy: EndpointSubset = { ...subset };
    delete copy.notReadyAddresses;
    if (truncateReady) copy.addresses = kept;
    else if (kept.length > 0) copy.notReadyAddresses = kept;
    if (!copy.addresses?.length) delete copy.addresses;
    if (copy.addresses || copy.notReadyAddresses) truncated.push(copy);
  }
  return truncated;
}

/** Upstream capacityAnnotationSetCorrectly: never "correct" above capacity, else the annotation must be absent. */
function capacityAnnotationCorrect(endpoints: Endpoints): boolean {
  const { ready, notReady } = countAddresses(endpoints.subsets);
  if (ready + notReady > ENDPOINTS_MAX_CAPACITY) return false;
  return endpoints.metadata?.annotations?.[ANNOTATION_OVER_CAPACITY] === undefined;
}

/**
 * Switchboard: the Endpoints we wrote before the Service lost its selector. Upstream leaves them (#118376) and
 * the mirroring controller then mirrors them, so traffic keeps going to the old pods; we delete them, as the
 * EndpointSlice controller deletes its slices. Only an object still carrying our managed-by label goes (not a
 * hand-made one, nor the API server's skip-mirror one), and only in the version we saw.
 */
function isOurLeftover(existing: Endpoints, managedBy: string | null): boolean {
  const labels = existing.metadata?.labels ?? {};
  return managedBy !== null && labels[LABEL_ENDPOINTS_MANAGED_BY] === managedBy && labels[LABEL_SKIP_MIRROR] !== 'true';
}

export function reconcileEndpoints(input: EndpointsReconcileInput): EndpointsReconcileResult {
  const { service, existing } = input;
  const result: EndpointsReconcileResult = { action: { type: 'none' }, truncated: false, counts: { ready: 0, notReady: 0 }, skipped: [] };

  if (isLeaderElectionEndpoints(existing)) {
    const reason = `annotation ${ANNOTATION_LEADER_ELECTION} marks a leader-election lock; left alone`;
    result.skipped.push({ kind: 'Endpoints', name: input.name, code: 'EndpointsLeaderElection', reason });
    return result;
  }
  if (!service) {
    result.action = { type: 'delete', namespace: input.namespace, name: input.name };
    return result;
  }
  const managedBy = input.options?.managedByLabel === undefined ? DEFAULT_ENDPOINTS_MANAGED_BY : input.options.managedByLabel;
  // ExternalName Services get no endpoints; selector-less Services have theirs written by someone else.
  if (isExternalName(service)) return result;
  if (!hasSelector(service)) {
    if (existing && isOurLeftover(existing, managedBy)) {
      const { uid, resourceVersion } = existing.metadata ?? {};
      result.action = { type: 'delete', namespace: input.namespace, name: input.name, precondition: { uid, resourceVersion } };
    }
    return result;
  }

  const subsets = desiredSubsets(service, input.pods, result.skipped);
  result.counts = countAddresses(subsets);
  const serviceLabels = service.metadata?.labels ?? {};

  // Skip no-op writes. The comparison uses the untruncated subsets, so an over-capacity Service is written on
  // every sync (as upstream; the API server turns the identical PUT into a no-op).
  if (
    existing &&
    subsetsEqual(existing.subsets, subsets) &&
    stringMapsEqual(withoutKeys(existing.metadata?.labels, [LABEL_HEADLESS, LABEL_ENDPOINTS_MANAGED_BY]), serviceLabels) &&
    capacityAnnotationCorrect(existing)
  ) {
    return result;
  }

  const labels: Record<string, string> = { ...serviceLabels };
  if (!isServiceIPSet(service)) labels[LABEL_HEADLESS] = '';
  else delete labels[LABEL_HEADLESS];
  if (managedBy !== null) labels[LABEL_ENDPOINTS_MANAGED_BY] = managedBy;

  const truncated = truncateSubsets(subsets);
  result.truncated = truncated !== undefined;
  const annotations = applyTriggerTime(existing?.metadata?.annotations, input.triggerTime);
  if (truncated) annotations[ANNOTATION_OVER_CAPACITY] = OVER_CAPACITY_TRUNCATED;
  else delete annotations[ANNOTATION_OVER_CAPACITY];

  // Its subsets are replaced: copying them was most of the copy's cost.
  const base: Endpoints = existing ? copyWire({ ...existing, subsets: [] }) : { apiVersion: 'v1', kind: 'Endpoints' };
  const endpoints: Endpoints = {
    ...base,
    metadata: { ...base.metadata, name: input.name, namespace: input.namespace, labels, annotations },
    subsets: truncated ?? subsets,
  };
  result.action = existing ? { type: 'update', endpoints } : { type: 'create', endpoints };
  return result;
}
