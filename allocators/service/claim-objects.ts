// ServiceClaim objects for claim values: building them, reading them back, and who they belong to.
import type { Service } from '../../api/wire.js';
import { CLAIM_TYPE, LABEL_CLAIM_TYPE, type ServiceClaim, type ServiceClaimServiceRef } from '../../crds/serviceclaim.js';
import { type ClaimValue, claimName, claimValueFromName } from './claim-names.js';

/** The Service a claim is made for: its namespace and name, and its uid once known. */
export interface ServiceIdentity {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
}

export function serviceIdentity(service: Service): ServiceIdentity {
  return { namespace: service.metadata?.namespace ?? '', name: service.metadata?.name ?? '', uid: service.metadata?.uid ?? '' };
}

export const serviceKeyOf = (ref: { namespace: string; name: string }): string => `${ref.namespace}/${ref.name}`;

/** The claim object for `value`, reserved for `owner` (confirmed when owner.uid is set) by admission `request`. */
export function claimObject(value: ClaimValue, owner: ServiceIdentity, request?: string): ServiceClaim {
  const type = value.kind === 'ip' ? CLAIM_TYPE.clusterIP : CLAIM_TYPE.nodePort;
  const service: ServiceClaimServiceRef = { namespace: owner.namespace, name: owner.name, uid: owner.uid ?? '' };
  const spec: ServiceClaim['spec'] =
    value.kind === 'ip' ? { type, value: value.ip, family: value.family, service } : { type, value: String(value.port), service };
  if (request) spec.request = request;
  return { metadata: { name: claimName(value), labels: { [LABEL_CLAIM_TYPE]: type } }, spec };
}

/** The value a claim holds: from its name, which the API server keeps unique (the spec only repeats it). */
export function claimValueOf(claim: ServiceClaim): ClaimValue | undefined {
  return claimValueFromName(claim.metadata.name ?? '');
}

/** Human form of a value, as in events and logs: "10.96.0.10", "30080". */
export function claimValueText(value: ClaimValue): string {
  return value.kind === 'ip' ? value.ip : String(value.port);
}

/** Whether the claim is for this Service by name (any incarnation of the name). */
export function claimNamesService(claim: ServiceClaim, ref: { namespace: string; name: string }): boolean {
  return claim.spec?.service?.namespace === ref.namespace && claim.spec?.service?.name === ref.name;
}

export const claimServiceKey = (claim: ServiceClaim): string =>
  serviceKeyOf({ namespace: claim.spec?.service?.namespace ?? '', name: claim.spec?.service?.name ?? '' });

/** A user's reservation (spec.reserved): never freed, never taken over, kept across deletes of its Service. */
export const isReservedClaim = (claim: ServiceClaim): boolean => claim.spec?.reserved === true;

/** Empty while only reserved for a request. */
export const claimServiceUID = (claim: ServiceClaim): string => claim.spec?.service?.uid ?? '';

/**
 * Reserve an existing claim of this Service's name for a new request (a re-created Service, or an update
 * taking back a value it let go of and whose release is still pending): only if it still names `ref`.
 */
export function reserveAgainPatch(ref: { namespace: string; name: string }, request: string): unknown[] {
  return [...testName(ref), { op: 'add', path: '/spec/service/uid', value: '' }, requestOp(request)];
}

/**
 * Confirm a claim for `owner` (name and uid) only if it still reads `seen`: the API server applies a JSON patch
 * to the stored object atomically, so of two writers that saw the same claim only one can win. `request` is
 * the admission request confirming it (none when the controller binds).
 */
export function confirmPatch(seen: ServiceClaimServiceRef, owner: Required<ServiceIdentity>, request?: string): unknown[] {
  return [
    ...testRef(seen),
    { op: 'replace', path: '/spec/service/name', value: owner.name },
    { op: 'replace', path: '/spec/service/uid', value: owner.uid },
    ...(request ? [requestOp(request)] : []),
  ];
}

/** Confirm again a claim already confirmed for `owner`: a spec write all the same, so the generation moves. */
export function reconfirmPatch(owner: Required<ServiceIdentity>, request: string): unknown[] {
  return [...testRef(owner), requestOp(request)];
}

/**
 * Take over another Service's claim for `owner` (reserved when owner.uid is empty, confirmed otherwise), only if
 * it is still at the resourceVersion the decision was made on: of two takers that saw the same claim one wins.
 */
export function takeOverPatch(resourceVersion: string, owner: ServiceIdentity, request: string): unknown[] {
  const service: ServiceClaimServiceRef = { namespace: owner.namespace, name: owner.name, uid: owner.uid ?? '' };
  return [testVersion(resourceVersion), { op: 'replace', path: '/spec/service', value: service }, requestOp(request)];
}

/**
 * Mark a claim as contested by `request` without changing whose it is: a spec write, so a delete the claim
 * controller decided on the version before fails, and its wait for a confirmed claim starts again.
 */
export function contestPatch(resourceVersion: string, request: string): unknown[] {
  return [testVersion(resourceVersion), requestOp(request)];
}

/** Undo a confirmation by `owner` (its request was denied after all): reserved again, so freed after the grace. */
export function unconfirmPatch(owner: Required<ServiceIdentity>): unknown[] {
  return [...testRef(owner), { op: 'replace', path: '/spec/service/uid', value: '' }];
}

const requestOp = (request: string) => ({ op: 'add', path: '/spec/request', value: request });
const testVersion = (resourceVersion: string) => ({ op: 'test', path: '/metadata/resourceVersion', value: resourceVersion });

function testName(ref: { namespace: string; name: string }): unknown[] {
  return [
    { op: 'test', path: '/spec/service/namespace', value: ref.namespace },
    { op: 'test', path: '/spec/service/name', value: ref.name },
  ];
}

function testRef(ref: ServiceClaimServiceRef): unknown[] {
  return [...testName(ref), { op: 'test', path: '/spec/service/uid', value: ref.uid }];
}
