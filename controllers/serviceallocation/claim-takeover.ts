// Pure core of taking over a claim: a request asks for a value whose ServiceClaim names another Service.
//
// kube-apiserver frees a value in the very request that lets go of it (a delete, a type change); the claim
// controller frees the claim afterwards, under load seconds later. So the webhook decides at once, from the claim
// and its holder read live from the API server (the cache lags under load), whether the holder still has the value:
//
// - A reservation (no uid yet) is a request between its mutating and validating calls, perhaps a create whose
//   Service does not exist yet; or an abandoned one, which the grace period frees. It is never taken.
// - A holder that holds the value keeps it, whatever its uid (the claim may name an earlier incarnation).
// - Mutating call: the claim is taken at once, reserved for the requester, only where the controller too would free
//   it at once: its Service was seen holding it (status.boundUID) and is gone now, for a deleted uid is never
//   written again; or the claim is settled (the controller saw the live Service holding it at this very
//   generation, so no request confirmed it since) and the Service no longer holds it.
// - Otherwise the request that confirmed the claim may still be on its way to storage: a create not written yet
//   (no such Service) or an update not written yet (the Service does not show the value yet). The request goes on
//   with the value, contesting the claim, and kube-apiserver's own allocator decides: it runs before validating
//   admission and holds the value for a request in flight, so it refuses this one with the same 422, or grants it.
// - Validating call: kube-apiserver has allocated the value to this very request, so no other Service holds it or
//   is being written with it: a confirmed claim of another Service is taken.
// - A user's reservation (spec.reserved) is never taken, at either stage: only the Service it names gets it.
// Every take is a write conditional on the claim's resourceVersion: of two takers, one wins.
import { claimServiceUID, isReservedClaim } from '../../allocators/service/claim-objects.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import type { Service } from '../../api/wire.js';
import { holdsClaim, isSettled } from './claim-reconciler.js';

/** `reserve`: the mutating call; `confirm`: the validating call, after kube-apiserver's own allocation. */
export type TakeoverStage = 'reserve' | 'confirm';

export type TakeoverReason = 'holder-deleted' | 'holder-released' | 'granted-by-api-server';

export type TakeoverDecision =
  | { readonly kind: 'refuse'; readonly why: 'reserved' | 'held' }
  | { readonly kind: 'take'; readonly reason: TakeoverReason }
  /** Let the request through with the value and the claim as it is: kube-apiserver's allocator decides. */
  | { readonly kind: 'contest' };

export interface TakeoverInput {
  readonly claim: ServiceClaim;
  /** The Service the claim names (namespace/name), read live; undefined when there is none. */
  readonly holder: Service | undefined;
  readonly stage: TakeoverStage;
}

/** A claim only reserved for a request, or a user's reservation: nobody's to take, and its holder need not be read. */
export const isReservation = (claim: ServiceClaim): boolean => claimServiceUID(claim) === '' || isReservedClaim(claim);

export function decideTakeover({ claim, holder, stage }: TakeoverInput): TakeoverDecision {
  if (isReservation(claim)) return { kind: 'refuse', why: 'reserved' };
  if (holdsClaim(holder, claim)) return { kind: 'refuse', why: 'held' };
  if (stage === 'confirm') return { kind: 'take', reason: 'granted-by-api-server' };
  const uid = claimServiceUID(claim);
  const sameService = holder?.metadata?.uid === uid;
  if (!sameService && claim.status?.boundUID === uid) return { kind: 'take', reason: 'holder-deleted' };
  if (sameService && isSettled(claim, uid)) return { kind: 'take', reason: 'holder-released' };
  return { kind: 'contest' };
}
