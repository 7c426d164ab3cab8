// Admission of reservations: ServiceClaims with spec.reserved: true, made by hand for one Service's namespace/name
// (crds/serviceclaim.ts). The validating webhook sees only those (a matchCondition in webhook-configurations.ts),
// so Switchboard's own claim writes never wait on it, and refuses, all at once and before anything is stored:
// - a malformed one: a name that is not a value's (ipv4-10-96-0-5, ipv6-…, nodeport-30080), a spec that does not
//   repeat that value (type, value, family), no or an invalid Service namespace/name;
// - a value the cluster would never give: a family it does not serve, an IP in no ServiceCIDR it allocates from, a
//   port outside the node port range;
// - a value another Service holds: its claim names another Service, kube-apiserver's IPAddress for it does, or a
//   cached Service holds it.
import { allowResponse, denyResponse, type AdmissionRequest, type AdmissionReviewResponse } from '../../api/admission.js';
import { type ClaimValue, claimName, claimValueFromName } from '../../allocators/service/claim-names.js';
import { claimValueText, isReservedClaim, serviceKeyOf } from '../../allocators/service/claim-objects.js';
import { rangeHoldingIP } from '../../allocators/service/ip-range.js';
import { formatPortRange, portInRange } from '../../allocators/service/port-range.js';
import { type AllocationConfig, clusterFamilies, heldClaims } from '../../allocators/service/service-allocation.js';
import { type FieldError, FieldPath, forbidden, internalErrorStatus, invalid, invalidStatus, required } from '../../api/status.js';
import type { KubeObject, Service } from '../../api/wire.js';
import { CLAIM_TYPE, ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { SWITCHBOARD_GROUP } from '../../crds/meta.js';
import type { KubeClient } from '../runtime/client.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const MAX_LABEL = 63;

const spec = (...path: string[]) => FieldPath.of('spec', ...path);

/** Pure: what is wrong with a reservation in itself and against the ranges; [] when nothing. */
export function reservationErrors(claim: ServiceClaim, config: AllocationConfig): FieldError[] {
  const name = claim.metadata?.name ?? '';
  const value = claimValueFromName(name);
  if (!value) {
    return [invalid(FieldPath.of('metadata', 'name'), name, 'a reservation is named after its value, e.g. ipv4-10-96-0-5, ipv6-fd00-0-0-0-0-0-0-5 or nodeport-30080')];
  }
  const errors: FieldError[] = [];
  const expectedType = value.kind === 'ip' ? CLAIM_TYPE.clusterIP : CLAIM_TYPE.nodePort;
  if (claim.spec?.type !== expectedType) errors.push(invalid(spec('type'), claim.spec?.type ?? '', `must be ${expectedType} for ${name}`));
  if (claim.spec?.value !== claimValueText(value)) {
    errors.push(invalid(spec('value'), claim.spec?.value ?? '', `must be ${JSON.stringify(claimValueText(value))}, the value ${name} stands for`));
  }
  if (value.kind === 'ip' && claim.spec?.family !== undefined && claim.spec.family !== value.family) {
    errors.push(invalid(spec('family'), claim.spec.family, `must be ${value.family} for ${value.ip}`));
  }
  if (value.kind === 'nodePort' && claim.spec?.family !== undefined) errors.push(forbidden(spec('family'), 'only ClusterIP claims have a family'));
  errors.push(...serviceRefErrors(claim));
  errors.push(...rangeErrors(value, config));
  return errors;
}

function serviceRefErrors(claim: ServiceClaim): FieldError[] {
  const errors: FieldError[] = [];
  const { namespace = '', name = '' } = claim.spec?.service ?? {};
  if (namespace === '') errors.push(required(spec('service', 'namespace'), 'a reservation names the namespace of its Service'));
  else if (namespace.length > MAX_LABEL || !DNS1123_LABEL.test(namespace)) errors.push(invalid(spec('service', 'namespace'), namespace, 'must be a namespace name (a DNS-1123 label)'));
  if (name === '') errors.push(required(spec('service', 'name'), 'a reservation names its Service'));
  else if (name.length > MAX_LABEL || !DNS1035_LABEL.test(name)) errors.push(invalid(spec('service', 'name'), name, 'must be a Service name (a DNS-1035 label)'));
  return errors;
}

function rangeErrors(value: ClaimValue, config: AllocationConfig): FieldError[] {
  if (value.kind === 'nodePort') {
    if (portInRange(config.nodePortRange, value.port)) return [];
    return [invalid(spec('value'), String(value.port), `provided port is not in the valid range. The range of valid ports is ${formatPortRange(config.nodePortRange)}`)];
  }
  if (!clusterFamilies(config).includes(value.family)) return [invalid(spec('value'), value.ip, `${value.family} is not configured on this cluster`)];
  const ranges = config.ipRanges.filter((r) => r.family === value.family);
  if (rangeHoldingIP(ranges, value.ip)) return [];
  const cidrs = ranges.map((r) => r.cidr).join(', ') || 'none';
  return [invalid(spec('value'), value.ip, `is in no Service CIDR the cluster allocates from (${cidrs}): create a ServiceCIDR for it first`)];
}

export interface ReservationDeps {
  readonly client: KubeClient;
  readonly config: AllocationConfig;
  /** The Services cache. */
  readonly services: () => readonly Service[];
  /** kube-apiserver's IPAddress for an IP, from the cache (undefined before v1.33, or none). */
  readonly ipAddress: (ip: string) => (KubeObject & { spec?: { parentRef?: { resource?: string; namespace?: string; name?: string } } }) | undefined;
}

/** Who other than `owner` holds `value`: "Service ns/name", or undefined. */
async function otherHolder(value: ClaimValue, owner: { namespace: string; name: string }, deps: ReservationDeps, isCreate: boolean): Promise<string | undefined> {
  const ownerKey = serviceKeyOf(owner);
  if (isCreate) {
    // Read live: the create itself would only say AlreadyExists.
    const existing = await deps.client.getOrUndefined<ServiceClaim>(ServiceClaims, claimName(value));
    if (existing) {
      const holder = serviceKeyOf(existing.spec.service);
      if (holder !== ownerKey) return `Service ${holder}${isReservedClaim(existing) ? ' (reserved)' : ''}`;
    }
  }
  if (value.kind === 'ip') {
    const parent = deps.ipAddress(value.ip)?.spec?.parentRef;
    if (parent && parent.resource === 'services' && serviceKeyOf({ namespace: parent.namespace ?? '', name: parent.name ?? '' }) !== ownerKey) {
      return `Service ${parent.namespace}/${parent.name}`;
    }
  }
  const name = claimName(value);
  for (const service of deps.services()) {
    const key = serviceKeyOf({ namespace: service.metadata?.namespace ?? '', name: service.metadata?.name ?? '' });
    if (key !== ownerKey && heldClaims(service).some((v) => claimName(v) === name)) return `Service ${key}`;
  }
  return undefined;
}

export async function validateReservation(request: AdmissionRequest<ServiceClaim>, deps: ReservationDeps): Promise<AdmissionReviewResponse> {
  const claim = request.object;
  if (!claim || !isReservedClaim(claim) || (request.operation !== 'CREATE' && request.operation !== 'UPDATE')) return allowResponse(request.uid);
  const name = claim.metadata?.name ?? request.name ?? '';
  const deny = (errors: FieldError[]) => denyResponse(request.uid, invalidStatus('ServiceClaim', name, errors, { group: SWITCHBOARD_GROUP }));
  const errors = reservationErrors({ ...claim, metadata: { ...claim.metadata, name } }, deps.config);
  if (errors.length > 0) return deny(errors);

  const old = request.operation === 'UPDATE' ? request.oldObject : undefined;
  const owner = claim.spec.service;
  // Switchboard's own writes to a reservation (reserve again, confirm, bind) keep its Service: nothing new to check.
  if (old && isReservedClaim(old) && serviceKeyOf(old.spec.service) === serviceKeyOf(owner)) return allowResponse(request.uid);
  const value = claimValueFromName(name) as ClaimValue;
  let holder: string | undefined;
  try {
    holder = await otherHolder(value, owner, deps, request.operation === 'CREATE');
  } catch (err) {
    return denyResponse(request.uid, internalErrorStatus(`could not check who holds ${claimValueText(value)}: ${String(err)}`));
  }
  if (holder) return deny([invalid(spec('value'), claimValueText(value), `is already allocated to ${holder}: only a free value or one that Service ${serviceKeyOf(owner)} holds can be reserved for it`)]);
  return allowResponse(request.uid);
}
