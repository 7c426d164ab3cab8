// The ClaimStore of allocators/service-allocation.ts on the API: a claim is a ServiceClaim created under the
// value's name, so the API server's create-if-absent decides every race between requests and replicas.
// The informer caches only let picks skip values known to be taken; they never decide that a value is free.
// A requested value whose claim names another Service is taken over when that Service, read live, no longer
// holds it (claim-takeover.ts decides).
import { type ClaimValue, claimName } from '../../allocators/service/claim-names.js';
import {
  type ServiceIdentity,
  claimNamesService,
  claimObject,
  claimServiceKey,
  claimServiceUID,
  contestPatch,
  reserveAgainPatch,
  serviceKeyOf,
  takeOverPatch,
} from '../../allocators/service/claim-objects.js';
import type { ClaimResult, ClaimStore, PickResult } from '../../allocators/service/service-allocation.js';
import { Services } from '../../api/resources.js';
import { ALLOCATOR_ERRORS } from '../../api/status.js';
import type { Service } from '../../api/wire.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { ApiError, isAlreadyExists, isConflict, isNotFound, type KubeClient } from '../runtime/client.js';
import type { Logger } from '../runtime/log.js';
import { telemetry } from '../runtime/telemetry.js';
import { type TakeoverDecision, type TakeoverReason, type TakeoverStage, decideTakeover, isReservation } from './claim-takeover.js';

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

/** A claim write lost a race: the claim changed (a JSON patch test failed: 422) or went away (404) in between. */
export function lostRace(err: unknown): boolean {
  return err instanceof ApiError && (err.code === 422 || isNotFound(err));
}

/** decideTakeover with the Service the claim names as the API server has it now, not as the cache has it. */
export async function decideTakeoverLive(client: KubeClient, claim: ServiceClaim, stage: TakeoverStage): Promise<TakeoverDecision> {
  // A reservation is never taken: its holder need not be read (a generateName create's names none yet).
  const { namespace, name } = claim.spec.service;
  const holder = isReservation(claim) ? undefined : await client.getOrUndefined<Service>(Services, name, namespace);
  return decideTakeover({ claim, holder, stage });
}

/** Tells of each claim a request took over: a log line, and a metric by reason. */
export type TakeoverReporter = (claim: ServiceClaim, reason: TakeoverReason, taker: ServiceIdentity) => void;

export function takeoverReporter(log: Logger): TakeoverReporter {
  const takeovers = telemetry().meter.createCounter('switchboard_serviceclaims_taken_over', {
    description: 'Claims a request took over from a Service that no longer held the value, by reason',
  });
  return (claim, reason, taker) => {
    takeovers.add(1, { reason });
    log.info('took over a claim', { claim: claim.metadata.name, from: claimServiceKey(claim), uid: claimServiceUID(claim), to: serviceKeyOf(taker), reason });
  };
}

/** Writes that lose a race (the object changed or went away in between) are retried this many times. */
const RACE_RETRIES = 3;

/** One admission request's claims: reserved for `owner`, recorded so that a denied request can hand them back. */
export class ApiClaimStore implements ClaimStore {
  /** Claims this request created or took over: name → uid, so that releasing never deletes someone else's later claim. */
  private readonly created = new Map<string, string>();

  constructor(
    private readonly client: KubeClient,
    private readonly taken: TakenValues,
    private readonly owner: ServiceIdentity,
    /** The admission request's uid, recorded in each claim it writes. */
    private readonly request: string,
    private readonly reportTakeover: TakeoverReporter,
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
        if (!lostRace(err)) return { ok: false, reason: apiFailureReason(err) };
        // Freed in between (404): try to create it again. Another Service's (422): see whether it still is.
        if (isNotFound(err)) continue;
      }
      try {
        const contended = await this.contend(value);
        if (contended) return contended;
      } catch (err) {
        return { ok: false, reason: apiFailureReason(err) };
      }
    }
    return { ok: false, reason: alreadyAllocated(value) };
  }

  /** A value whose claim names another Service: refused, taken over, or contested; undefined if the claim changed meanwhile. */
  private async contend(value: ClaimValue): Promise<ClaimResult | undefined> {
    const name = claimName(value);
    const claim = await this.client.getOrUndefined<ServiceClaim>(ServiceClaims, name);
    if (!claim || claimNamesService(claim, this.owner)) return undefined;
    const decision = await decideTakeoverLive(this.client, claim, 'reserve');
    if (decision.kind === 'refuse') return { ok: false, reason: alreadyAllocated(value) };
    const version = claim.metadata.resourceVersion ?? '';
    const owner = { ...this.owner, uid: '' };
    try {
      await this.client.patch(ServiceClaims, name, decision.kind === 'take' ? takeOverPatch(version, owner, this.request) : contestPatch(version, this.request), 'json');
    } catch (err) {
      if (lostRace(err)) return undefined;
      throw err;
    }
    if (decision.kind === 'take') {
      this.created.set(name, claim.metadata.uid ?? '');
      this.reportTakeover(claim, decision.reason, this.owner);
    }
    return { ok: true };
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
