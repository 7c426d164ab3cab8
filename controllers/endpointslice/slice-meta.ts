// Metadata of the slices the EndpointSlice controller writes: labels, owner reference, name prefix, placeholder.
import type { EndpointSlice, Service } from '../../api/wire.js';
import { type AddressType, LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_HEADLESS, LABEL_MANAGED_BY } from '../endpointutil/constants.js';
import { stringMapsEqual, withoutKeys } from '../endpointutil/maps.js';
import { controllerOwnerReference, generateNamePrefix } from '../endpointutil/owner.js';
import { isServiceIPSet } from '../endpointutil/service.js';
import type { Labels, OwnerReference, SlicePort } from '../endpointutil/types.js';

/** Label keys the controller owns on a slice; the Service cannot set them through its own labels. */
export const RESERVED_SLICE_LABELS = [LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS] as const;

export function reservedLabelsOnService(service: Service): string[] {
  return Object.keys(service.metadata?.labels ?? {}).filter((key) => (RESERVED_SLICE_LABELS as readonly string[]).includes(key));
}

/**
 * The labels a slice of this Service must carry: the Service's labels minus reserved keys, then service-name,
 * managed-by and (headless only) the headless label. `changed` compares only the non-reserved keys, as upstream.
 */
export function sliceLabels(service: Service, managedBy: string, current?: Labels): { labels: Labels; changed: boolean } {
  const fromService = withoutKeys(service.metadata?.labels, RESERVED_SLICE_LABELS);
  const changed = !stringMapsEqual(withoutKeys(current, RESERVED_SLICE_LABELS), fromService);
  const labels: Labels = { ...fromService };
  if (!isServiceIPSet(service)) labels[LABEL_HEADLESS] = '';
  labels[LABEL_ENDPOINTSLICE_SERVICE_NAME] = service.metadata?.name ?? '';
  labels[LABEL_MANAGED_BY] = managedBy;
  return { labels, changed };
}

/** The slice names this Service (uid, kind and apiVersion) as an owner. */
export function isOwnedBy(slice: EndpointSlice, service: Service): boolean {
  const uid = service.metadata?.uid;
  return (slice.metadata?.ownerReferences ?? []).some((ref) => ref.uid === uid && ref.kind === 'Service' && ref.apiVersion === 'v1');
}

/** A new, empty slice of this Service; the API server names it from generateName. */
export function newServiceSlice(service: Service, ports: SlicePort[], addressType: AddressType, managedBy: string): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      generateName: generateNamePrefix(service.metadata?.name ?? ''),
      namespace: service.metadata?.namespace,
      labels: sliceLabels(service, managedBy).labels,
      ownerReferences: [controllerOwnerReference('Service', service)],
    },
    addressType,
    endpoints: [],
    ports,
  };
}

function ownerReferencesEqual(a: readonly OwnerReference[] | undefined, b: readonly OwnerReference[] | undefined): boolean {
  const text = (refs: readonly OwnerReference[] | undefined) =>
    JSON.stringify((refs ?? []).map((r) => [r.apiVersion, r.kind, r.name, r.uid, r.controller ?? null, r.blockOwnerDeletion ?? null]));
  return text(a) === text(b);
}

/**
 * The slice already is the placeholder this Service would get (upstream placeholderSliceCompare): same namespace,
 * exactly the same labels and owner references, address type, and no ports and no endpoints (absent = empty).
 */
export function isSamePlaceholder(slice: EndpointSlice, placeholder: EndpointSlice): boolean {
  return (
    (slice.metadata?.namespace ?? '') === (placeholder.metadata?.namespace ?? '') &&
    stringMapsEqual(slice.metadata?.labels, placeholder.metadata?.labels) &&
    ownerReferencesEqual(slice.metadata?.ownerReferences, placeholder.metadata?.ownerReferences) &&
    slice.addressType === placeholder.addressType &&
    (slice.ports ?? []).length === 0 &&
    (slice.endpoints ?? []).length === 0
  );
}
