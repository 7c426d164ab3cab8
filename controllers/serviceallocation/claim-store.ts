// The ClaimStore of allocators/service-allocation.ts on the API: a claim is a ServiceClaim created under the
// value's name, so the API server's create-if-absent decides every race between requests and replicas.
// The informer caches only let picks skip values known to be taken; they never decide that a value is free.
import { type ClaimValue, claimName } from '../../allocators/service/claim-names.js';
import { type ServiceIdentity, claimObject, reserveAgainPatch } from '../../allocators/service/claim-objects.js';
import type { ClaimResult, ClaimStore, PickResult } from '../../allocators/service/service-allocation.js';
import { ALLOCATOR_ERRORS } from '../../api/status.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { ApiError, isAlreadyExists, isConflict, isNotFound, type KubeClient } from '../runtime/client.js';

export interface TakenValues {
  /** A claim exists, or (for IPs) the API server's own allocator holds the address. */
  isKnownTaken(value: ClaimValue): boolean;
}

export const alreadyAllocated = (value: ClaimValue): string =>
  value.kind === 'ip' ? ALLOCATOR_ERRORS.ipAlreadyAllocated : ALLOCATOR_ERRORS.portAlreadyAllocated;

/** The text an API failure shows inside upstream's messages. */
export function apiFailureReason(err: unknown): string {
  if (err instanceof ApiError) return err.status.message ?? err.message;
  return err instanceof Error ? err.message : String(err);
}

/** Writes that lose a race (the object changed or went away in between) are retried this many times. */
const RACE_RETRIES = 3;

/** One admission request's claims: reserved for `owner`, recorded so that a denied request can hand them back. */
export class ApiClaimStore implements ClaimStore {
  /** Claims this request created: name → uid, so that releasing never deletes someone else's later claim. */
  private readonly created = new Map<string, string>();

  constructor(
    private readonly client: KubeClient,
    private readonly taken: TakenValues,
    private readonly owner: ServiceIdentity,
    /** The admission request's uid, recorded in each claim it writes. */
    private readonly request: string,
  ) {}

  async claim(value: ClaimValue): Promise<ClaimResult> {
    for (let attempt = 0; attempt <= RACE_RETRIES; attempt++) {
      try {
        await this.create(value);
        return { ok: true };
      } catch (err) {
        if (!isAlreadyExists(err)) return { ok: false, reason: apiFailureReason(err) };
      }
      // Held already. Still ours if it names this Service: a re-created Service, a retried webhook call, or an
      // update taking back a value whose release is pending.
      try {
        await this.client.patch(ServiceClaims, claimName(value), reserveAgainPatch(this.owner, this.request), 'json');
        return { ok: true };
      } catch (err) {
        if (err instanceof ApiError && err.code === 422) return { ok: false, reason: alreadyAllocated(value) };
        if (!isNotFound(err)) return { ok: false, reason: apiFailureReason(err) };
        // Freed in between: try to create it again.
      }
    }
    return { ok: false, reason: alreadyAllocated(value) };
  }

  async claimFirstFree(candidates: Iterable<ClaimValue>): Promise<PickResult> {
    for (const value of candidates) {
      if (this.taken.isKnownTaken(value)) continue;
      try {
        await this.create(value);
        return { ok: true, value };
      } catch (err) {
        // Lost a race with another request or replica: go on with the next candidate.
        if (!isAlreadyExists(err)) return { ok: false, reason: apiFailureReason(err) };
      }
    }
    return { ok: false, reason: ALLOCATOR_ERRORS.rangeFull };
  }

  async isTaken(value: ClaimValue): Promise<boolean> {
    return this.taken.isKnownTaken(value);
  }

  /** The claims this request created, by name. */
  get createdClaims(): ReadonlyMap<string, string> {
    return this.created;
  }

  /** Hands back what this request created (it was denied); claims it only re-reserved stay for repair. */
  async releaseCreated(): Promise<void> {
    await Promise.all(
      [...this.created].map(([name, uid]) =>
        // Gone, or (uid precondition failed) already freed and claimed again by someone else.
        this.client.delete(ServiceClaims, name, { uid }).catch((err: unknown) => {
          if (!isNotFound(err) && !isConflict(err)) throw err;
        }),
      ),
    );
    this.created.clear();
  }

  private async create(value: ClaimValue): Promise<void> {
    const made = await this.client.create<ServiceClaim>(ServiceClaims, claimObject(value, { ...this.owner, uid: '' }, this.request));
    this.created.set(claimName(value), made.metadata.uid ?? '');
  }
}
