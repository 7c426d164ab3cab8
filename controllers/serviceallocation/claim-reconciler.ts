// Pure core of the claim controller: one ServiceClaim and the Service it names → bind, wait, free or nothing.
//
// Why freeing cannot take the value of an in-flight request:
// - A reserved claim (empty uid) is freed by a delete conditional on the resourceVersion seen. The validating
//   webhook, which runs after every mutating webhook and the API server's own allocation but before the Service
//   is written, confirms the claim with a test-and-set of the uid. Exactly one of the two writes wins; if the
//   delete won, the validating webhook re-creates the claim (or denies the request when someone else took the
//   value meanwhile). So the grace period only spares slow requests work; it is not what makes freeing safe.
// - A confirmed claim (uid set) may belong to a request between its validating webhook and the write. The API
//   server bounds that: a create or update handler gives up after 34 s (requestTimeoutUpperBound). Such a claim
//   is freed only once this controller has seen it unchanged for longer than that, and the live Service
//   (not the cache) does not hold the value. Every confirmation writes the claim, so "unchanged" restarts then.
// - Two cases need no wait. The claim's Service was seen stored (status.boundUID, or this process's watch saw
//   its uid, e.g. as a follower while no leader bound it) and is gone now: a deleted uid is never written again
//   (delete). Or the claim is settled: the controller saw the live Service holding it
//   at this very generation, and every webhook write to a claim changes its spec (spec.request), so no request
//   has confirmed it since; one still in flight from before would write over an older Service version, which
//   the API server refuses and retries through admission, confirming the claim anew (type change).
// - A reservation (spec.reserved) is bound while its Service holds the value and otherwise left alone: never freed.
import { heldClaims } from '../../allocators/service/service-allocation.js';
import { claimName } from '../../allocators/service/claim-names.js';
import { claimServiceUID, claimValueOf, isReservedClaim } from '../../allocators/service/claim-objects.js';
import { CLAIM_PHASE_BOUND, type ServiceClaim } from '../../crds/serviceclaim.js';
import type { Service } from '../../api/wire.js';

/** kube-apiserver's requestTimeoutUpperBound: no create or update handler runs longer. */
export const API_SERVER_REQUEST_BOUND_MS = 34_000;

export interface ClaimTimings {
  /** How long a reserved (never confirmed) claim is left alone. */
  readonly graceMs: number;
  /** How long a confirmed claim whose Service does not hold it is left alone (≥ the API server's bound). */
  readonly commitWindowMs: number;
}

export interface ClaimReconcileInput {
  readonly claim: ServiceClaim | undefined;
  /** The Service the claim names (namespace/name), if it exists. */
  readonly service: Service | undefined;
  /** How long the claim has been seen with its current resourceVersion. */
  readonly unchangedForMs: number;
  /** Whether this process's watch has seen a Service with the claim's confirmed uid stored (so it is past admission). */
  readonly confirmedUIDSeenStored: boolean;
  readonly timings: ClaimTimings;
}

export type FreeReason = 'never-confirmed' | 'service-gone' | 'released';

export type ClaimAction =
  | { readonly kind: 'none' }
  /** Point the claim at the Service holding the value and mark it Bound. */
  | { readonly kind: 'bind'; readonly uid: string; readonly setUID: boolean; readonly setPhase: boolean }
  /** Not yet: look again after this long. */
  | { readonly kind: 'wait'; readonly afterMs: number }
  /** Delete it, conditional on the resourceVersion seen, once the live Service confirms it does not hold it. */
  | { readonly kind: 'free'; readonly reason: FreeReason };

/** Whether the Service holds the claim's value; one being deleted still does until it is gone, as upstream. */
export function holdsClaim(service: Service | undefined, claim: ServiceClaim): boolean {
  if (!service) return false;
  const name = claim.metadata.name;
  return heldClaims(service).some((value) => claimName(value) === name);
}

/** Bound to `uid` at the claim's current generation: no request has reserved or confirmed it since. */
export function isSettled(claim: ServiceClaim, uid: string): boolean {
  const status = claim.status;
  return (
    uid !== '' &&
    status?.phase === CLAIM_PHASE_BOUND &&
    status.boundUID === uid &&
    status.observedGeneration !== undefined &&
    status.observedGeneration === claim.metadata.generation
  );
}

/**
 * How long ago, on the API server's clock, the claim was last written: from the latest managedFields time (every
 * webhook write changes a field it owns, which moves its entry's time) or the creation time. Those are whole seconds,
 * truncated, so the write may have been up to a second later. 0 when unknown. A new leader measures waits by this as
 * well as by what it saw itself: replaced often enough, no replica would see a claim unchanged for a whole window.
 */
export function serverAgeMs(claim: ServiceClaim, serverNow: number | undefined): number {
  if (serverNow === undefined) return 0;
  const times = [claim.metadata.creationTimestamp, ...(claim.metadata.managedFields ?? []).map((f) => f.time)].map((t) => Date.parse(t ?? ''));
  const last = Math.max(...times.filter(Number.isFinite));
  return Number.isFinite(last) ? Math.max(0, serverNow - (last + 1000)) : 0;
}

/**
 * The claims informer's transform: managedFields reduced to the time of the last write, all serverAgeMs reads (the
 * informers' default drops them whole).
 */
export function keepLastWriteTime(claim: ServiceClaim): ServiceClaim {
  const times = (claim.metadata.managedFields ?? []).map((f) => f.time).filter((t): t is string => t !== undefined);
  const last = times.reduce<string | undefined>((latest, t) => (latest === undefined || Date.parse(t) > Date.parse(latest) ? t : latest), undefined);
  claim.metadata.managedFields = last === undefined ? undefined : [{ time: last }];
  return claim;
}

export function reconcileClaim(input: ClaimReconcileInput): ClaimAction {
  const { claim, service, timings } = input;
  if (!claim || claim.metadata.deletionTimestamp || !claimValueOf(claim)) return { kind: 'none' };

  if (holdsClaim(service, claim)) {
    // The name can belong to one Service at a time, so the one holding the value now is the owner, even when
    // the claim still names an earlier incarnation's uid.
    const uid = service?.metadata?.uid ?? '';
    const setUID = claimServiceUID(claim) !== uid;
    // Reserved again just now: it may be a re-created Service's request, and the cached one a deleted
    // incarnation. Its validating webhook confirms it within the grace if so.
    if (setUID && claimServiceUID(claim) === '' && input.unchangedForMs < timings.graceMs) {
      return { kind: 'wait', afterMs: timings.graceMs - input.unchangedForMs };
    }
    const setPhase = !isSettled(claim, uid);
    return setUID || setPhase ? { kind: 'bind', uid, setUID, setPhase } : { kind: 'none' };
  }
  // A reservation outlives its Service: only deleting the claim ends it.
  if (isReservedClaim(claim)) return { kind: 'none' };

  const confirmedUID = claimServiceUID(claim);
  const reason: FreeReason = confirmedUID === '' ? 'never-confirmed' : service?.metadata?.uid === confirmedUID ? 'released' : 'service-gone';
  if (reason === 'service-gone' && (claim.status?.boundUID === confirmedUID || input.confirmedUIDSeenStored)) return { kind: 'free', reason };
  if (reason === 'released' && isSettled(claim, confirmedUID)) return { kind: 'free', reason };
  const window = confirmedUID === '' ? timings.graceMs : Math.max(timings.graceMs, timings.commitWindowMs);
  if (input.unchangedForMs < window) return { kind: 'wait', afterMs: window - input.unchangedForMs };
  return { kind: 'free', reason };
}
