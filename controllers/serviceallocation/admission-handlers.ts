// The two admission webhooks on Service create and update.
//
// mutate: plans the allocation (allocators/service-allocation.ts), reserves each value by creating its
//   ServiceClaim, and patches the values into the Service, or denies with upstream's exact Status. Dry-run
//   requests reserve nothing and are not patched: the API server then fills in its own dry-run placeholders.
// validate: runs after every mutating webhook and after the API server's own allocation, when the Service has
//   its final name and uid, just before it is written. It confirms each new value's claim for that uid with a
//   test-and-set, re-creating a claim that was freed meanwhile; a value someone else took in between denies
//   the request. This is what makes freeing reserved claims safe (see claim-reconciler.ts).
// Both take over a requested value's claim from a Service that no longer holds it (claim-takeover.ts), so that a
// value freed by a delete or a type change is the next request's at once, as with kube-apiserver's allocator.
import { allowResponse, denyResponse, type AdmissionRequest, type AdmissionReviewResponse } from '../../api/admission.js';
import { allocationResponse } from '../../allocators/service/admission.js';
import { type ClaimValue, claimName } from '../../allocators/service/claim-names.js';
import {
  type ServiceIdentity,
  claimObject,
  confirmPatch,
  reconfirmPatch,
  serviceIdentity,
  takeOverPatch,
  unconfirmPatch,
} from '../../allocators/service/claim-objects.js';
import {
  type AllocationConfig,
  claimInConfiguredRange,
  executePlan,
  heldClaims,
  planAllocation,
  plannedClaims,
} from '../../allocators/service/service-allocation.js';
import type { RandomBelow } from '../../allocators/service/bands.js';
import {
  type Status,
  clusterIPAllocationStatus,
  healthCheckNodePortStatus,
  internalErrorStatus,
  nodePortAllocationStatus,
  tooManyRequestsStatus,
} from '../../api/status.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { isAlreadyExists, type KubeClient } from '../runtime/client.js';
import type { Logger } from '../runtime/log.js';
import type { Service } from '../../api/wire.js';
import { ApiClaimStore, alreadyAllocated, apiFailureReason, decideTakeoverLive, lostRace, type TakenValues, type TakeoverReporter } from './claim-store.js';
import type { TakeoverDecision, TakeoverReason } from './claim-takeover.js';
import type { PendingClaims } from './pending-claims.js';

/** An AdmissionReview request for a Service. */
export type ServiceAdmissionRequest = AdmissionRequest<Service>;

export interface AdmissionDeps {
  readonly client: KubeClient;
  readonly taken: TakenValues;
  readonly config: AllocationConfig;
  readonly log: Logger;
  readonly reportTakeover: TakeoverReporter;
  /** Bounds the claims not settled yet (see pending-claims.ts); none: unbounded. */
  readonly pendingClaims?: PendingClaims;
  /** Values reserved (spec.reserved) for the Service of this namespace and name, from the claims cache. */
  readonly reservationsOf?: (namespace: string, name: string) => ClaimValue[];
  /** Where dynamic picks start; crypto-random unless a test pins it. */
  readonly random?: RandomBelow;
  /**
   * Fault injection for the leak test: once a request has created claims, never answer it, so that the replica
   * can be killed between claim and Service write. Set from SWITCHBOARD_FAULT_INJECTION=stall-after-claim.
   */
  readonly stallAfterClaim?: boolean;
}

/** The Service under review, with the namespace from the request when the object leaves it out. */
function requestedService(request: ServiceAdmissionRequest, which: 'object' | 'oldObject'): Service | undefined {
  const service = request[which];
  if (!service) return undefined;
  return { ...service, metadata: { ...service.metadata, namespace: service.metadata?.namespace || request.namespace || '' } };
}

function isServiceWrite(request: ServiceAdmissionRequest): boolean {
  const kind = request.kind;
  return (
    (kind?.group ?? '') === '' &&
    kind?.kind === 'Service' &&
    (request.operation === 'CREATE' || request.operation === 'UPDATE') &&
    request.object !== undefined
  );
}

export async function mutateService(request: ServiceAdmissionRequest, deps: AdmissionDeps): Promise<AdmissionReviewResponse> {
  const service = requestedService(request, 'object');
  if (!service || !isServiceWrite(request)) return allowResponse(request.uid);
  const old = request.operation === 'UPDATE' ? requestedService(request, 'oldObject') : undefined;
  const dryRun = request.dryRun === true;

  const plan = planAllocation(old, service, deps.config);
  const admission = deps.pendingClaims?.admit(service.metadata?.namespace ?? '', dryRun ? 0 : plannedClaims(plan));
  if (admission && 'refusal' in admission) return denyResponse(request.uid, tooManyRequestsStatus(admission.refusal));
  // A create with generateName has no name yet: its claims are reserved for "" until validation names them.
  const store = new ApiClaimStore(deps.client, deps.taken, serviceIdentity(service), request.uid, deps.reportTakeover);
  const reserved = deps.reservationsOf?.(service.metadata?.namespace ?? '', service.metadata?.name ?? '') ?? [];
  const outcome = await executePlan(plan, deps.config, store, { dryRun, random: deps.random, reserved })
    .catch(async (err: unknown) => {
      await store.releaseCreated();
      throw err;
    })
    .finally(() => admission?.ticket.done(store.createdClaims.keys()));
  if (outcome.outcome === 'denied') {
    await store.releaseCreated().catch((err: unknown) => deps.log.warn('could not release claims of a denied request', { error: String(err) }));
    return denyResponse(request.uid, outcome.status);
  }
  if (dryRun) return allowResponse(request.uid);
  if (deps.stallAfterClaim && store.createdClaims.size > 0) {
    deps.log.warn('fault injection: not answering after taking claims', { claims: [...store.createdClaims.keys()] });
    await new Promise(() => {});
  }
  return allocationResponse(request.uid, request.object ?? service, outcome);
}

export async function validateService(request: ServiceAdmissionRequest, deps: AdmissionDeps): Promise<AdmissionReviewResponse> {
  const service = requestedService(request, 'object');
  if (!service || !isServiceWrite(request) || request.dryRun) return allowResponse(request.uid);
  const owner = serviceIdentity(service) as Required<ServiceIdentity>;
  // Values the stored Service already holds are bound; only new ones were reserved by this request.
  const before = new Set(request.operation === 'UPDATE' ? heldClaims(requestedService(request, 'oldObject') ?? {}).map(claimName) : []);
  const values = heldClaims(service).filter((v) => claimInConfiguredRange(deps.config, v) && !before.has(claimName(v)));
  const unnamedReservation = Boolean(service.metadata?.generateName);
  // Values no claim is known for are created here (reserved by nobody, or freed on the way): bounded like reservations.
  const unknown = values.filter((v) => !deps.taken.isKnownTaken(v)).map(claimName);
  const admission = deps.pendingClaims?.admit(owner.namespace, unknown.length);
  if (admission && 'refusal' in admission) return denyResponse(request.uid, tooManyRequestsStatus(admission.refusal));

  const confirmed: ClaimValue[] = [];
  for (const value of values) {
    const result = await confirmClaim(deps, value, owner, unnamedReservation, request.uid);
    if (result !== true) {
      await Promise.all(confirmed.map((v) => deps.client.patch(ServiceClaims, claimName(v), unconfirmPatch(owner), 'json').catch(() => undefined)));
      admission?.ticket.done([]);
      return denyResponse(request.uid, takenValueStatus(service, value, result, deps.config));
    }
    confirmed.push(value);
  }
  admission?.ticket.done(unknown);
  return allowResponse(request.uid);
}

/** Confirming loses at most this many races (the claim changed or went away between read and write). */
const CONFIRM_ATTEMPTS = 4;

/** true, or why the value cannot be held by this Service. */
async function confirmClaim(
  { client, reportTakeover }: AdmissionDeps,
  value: ClaimValue,
  owner: Required<ServiceIdentity>,
  unnamedReservation: boolean,
  requestUID: string,
): Promise<true | string> {
  const name = claimName(value);
  const reservedForUs = { namespace: owner.namespace, name: unnamedReservation ? '' : owner.name, uid: '' };
  for (let attempt = 0; attempt < CONFIRM_ATTEMPTS; attempt++) {
    // The common case in one round trip: reserved by our own mutating call.
    if (attempt === 0 && !unnamedReservation) {
      try {
        await client.patch(ServiceClaims, name, confirmPatch(reservedForUs, owner, requestUID), 'json');
        return true;
      } catch (err) {
        if (!lostRace(err)) return apiFailureReason(err);
      }
    }
    let claim: ServiceClaim | undefined;
    try {
      claim = await client.getOrUndefined<ServiceClaim>(ServiceClaims, name);
    } catch (err) {
      return apiFailureReason(err);
    }
    if (!claim) {
      // Freed while the request was on its way (it was slower than the grace period): take it again.
      try {
        await client.create(ServiceClaims, claimObject(value, owner, requestUID));
        return true;
      } catch (err) {
        if (isAlreadyExists(err)) continue;
        return apiFailureReason(err);
      }
    }
    const seen = claim.spec.service;
    if (seen.namespace === owner.namespace && seen.name === owner.name && seen.uid === owner.uid) {
      // Confirmed for this Service already (a retried call, or a value another webhook added back). Still write
      // the spec, so that the claim counts as in flight again: a delete decided on the old version fails, and
      // the controller no longer sees it as settled.
      try {
        await client.patch(ServiceClaims, name, reconfirmPatch(owner, requestUID), 'json');
        return true;
      } catch (err) {
        if (!lostRace(err)) return apiFailureReason(err);
        continue;
      }
    }
    const ours = seen.namespace === owner.namespace && seen.uid === '' && (seen.name === owner.name || (unnamedReservation && seen.name === ''));
    let takeover: TakeoverReason | undefined;
    if (!ours) {
      // Another Service's claim, while kube-apiserver holds the value for this request (see claim-takeover.ts).
      let decision: TakeoverDecision;
      try {
        decision = await decideTakeoverLive(client, claim, 'confirm');
      } catch (err) {
        return apiFailureReason(err);
      }
      if (decision.kind !== 'take') return alreadyAllocated(value);
      takeover = decision.reason;
    }
    try {
      const patch = takeover ? takeOverPatch(claim.metadata.resourceVersion ?? '', owner, requestUID) : confirmPatch(seen, owner, requestUID);
      await client.patch(ServiceClaims, name, patch, 'json');
      if (takeover) reportTakeover(claim, takeover, owner);
      return true;
    } catch (err) {
      if (!lostRace(err)) return apiFailureReason(err);
    }
  }
  return alreadyAllocated(value);
}

/** The Status upstream answers when a value of this Service cannot be allocated. */
function takenValueStatus(service: Service, value: ClaimValue, reason: string, config: AllocationConfig): Status {
  const name = service.metadata?.name ?? '';
  if (value.kind === 'ip') return clusterIPAllocationStatus(name, service.spec?.clusterIPs ?? [], value.ip, reason, config.valueStyle);
  const portIndex = (service.spec?.ports ?? []).findIndex((p) => p.nodePort === value.port);
  if (portIndex >= 0) return nodePortAllocationStatus(name, portIndex, value.port, reason);
  if (service.spec?.healthCheckNodePort === value.port) return healthCheckNodePortStatus(value.port, reason);
  return internalErrorStatus(`failed to allocate ${value.port}: ${reason}`);
}
