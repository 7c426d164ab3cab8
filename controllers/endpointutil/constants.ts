// Well-known label and annotation keys and the upstream default values shared by the three endpoint
// controllers (spec/endpointslice.md §0).

export const LABEL_ENDPOINTSLICE_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const LABEL_SKIP_MIRROR = 'endpointslice.kubernetes.io/skip-mirror';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';
export const LABEL_ENDPOINTS_MANAGED_BY = 'endpoints.kubernetes.io/managed-by';
export const LABEL_TOPOLOGY_ZONE = 'topology.kubernetes.io/zone';

export const ANNOTATION_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';
export const ANNOTATION_OVER_CAPACITY = 'endpoints.kubernetes.io/over-capacity';
export const OVER_CAPACITY_TRUNCATED = 'truncated';
export const ANNOTATION_LEADER_ELECTION = 'control-plane.alpha.kubernetes.io/leader';
export const ANNOTATION_LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
export const ANNOTATION_TOPOLOGY_MODE = 'service.kubernetes.io/topology-mode';
export const ANNOTATION_TOPOLOGY_AWARE_HINTS = 'service.kubernetes.io/topology-aware-hints';

/** Drop-in defaults: the values kube-controller-manager writes, so Switchboard can replace it in place. */
export const DEFAULT_ENDPOINTSLICE_MANAGED_BY = 'endpointslice-controller.k8s.io';
export const DEFAULT_MIRRORING_MANAGED_BY = 'endpointslicemirroring-controller.k8s.io';
export const DEFAULT_ENDPOINTS_MANAGED_BY = 'endpoint-controller';

export const DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100;
export const DEFAULT_MAX_ENDPOINTS_PER_SUBSET = 1000;
/** Hard limit of the API (and of the flags): a slice holds at most 1000 endpoints. */
export const MAX_ENDPOINTS_PER_SLICE_LIMIT = 1000;
/** A per-slice or per-subset endpoint limit from configuration, clamped to 1..1000 (default when unusable). */
export function clampEndpointLimit(value: number | undefined, fallback: number): number {
  if (value === undefined || !Number.isFinite(value)) return fallback;
  return Math.min(MAX_ENDPOINTS_PER_SLICE_LIMIT, Math.max(1, Math.floor(value)));
}

/** The legacy Endpoints object is truncated to this many addresses (ready + not ready). */
export const ENDPOINTS_MAX_CAPACITY = 1000;

export type AddressType = 'IPv4' | 'IPv6';
export const ADDRESS_TYPES: readonly AddressType[] = ['IPv4', 'IPv6'];
