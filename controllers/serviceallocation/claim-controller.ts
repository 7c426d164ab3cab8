// Wiring of the claim controller (leader only): binds claims to the Services holding them, and frees claims
// whose Service let go of the value, was deleted, or was never written. Decisions are claim-reconciler.ts's.
import { heldClaims } from '../../allocators/service/service-allocation.js';
import { claimName } from '../../allocators/service/claim-names.js';
import { claimServiceKey, claimServiceUID, confirmPatch } from '../../allocators/service/claim-objects.js';
import { CLAIM_PHASE_BOUND, ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { ApiError, isConflict, isNotFound, objectKey, splitKey, type KubeClient } from '../runtime/client.js';
import { Controller, type ReconcileResult } from '../runtime/controller.js';
import type { Informer } from '../runtime/informer.js';
import type { Logger } from '../runtime/log.js';
import { Services } from '../../api/resources.js';
import { telemetry } from '../runtime/telemetry.js';
import type { Service } from '../../api/wire.js';
import { type ClaimAction, type ClaimTimings, holdsClaim, reconcileClaim, serverAgeMs } from './claim-reconciler.js';

export const CLAIMS_BY_SERVICE = 'byService';

/** When this process first saw each claim with its current resourceVersion: the clock waits are measured on. */
class ClaimAges {
  private readonly seen = new Map<string, { resourceVersion: string; since: number }>();

  observe(claim: ServiceClaim, now = Date.now()): void {
    const name = claim.metadata.name ?? '';
    const rv = claim.metadata.resourceVersion ?? '';
    if (this.seen.get(name)?.resourceVersion !== rv) this.seen.set(name, { resourceVersion: rv, since: now });
  }

  forget(name: string): void {
    this.seen.delete(name);
  }

  /** 0 for a version not seen yet, so a wait never starts before this process saw the claim as it is. */
  unchangedFor(claim: ServiceClaim, now = Date.now()): number {
    const entry = this.seen.get(claim.metadata.name ?? '');
    return entry && entry.resourceVersion === claim.metadata.resourceVersion ? now - entry.since : 0;
  }
}

/**
 * Uids of the Services this process's watch has seen stored: live ones, and deleted ones for as long as a claim could
 * otherwise wait for them. Fed on every replica, so a new leader knows the Services created and deleted while
 * nobody led (their claims were confirmed but never bound).
 */
export class StoredServiceUIDs {
  private readonly live = new Set<string>();
  private readonly deleted = new Map<string, number>();

  constructor(private readonly rememberDeletedMs: number) {}

  stored(service: Service): void {
    const uid = service.metadata?.uid;
    if (uid) this.live.add(uid);
  }

  removed(service: Service, now = Date.now()): void {
    const uid = service.metadata?.uid;
    if (!uid) return;
    this.live.delete(uid);
    this.deleted.delete(uid); // a relist may report a deletion again: keep the map in deletion order
    this.deleted.set(uid, now);
    for (const [old, at] of this.deleted) {
      if (now - at <= this.rememberDeletedMs) break; // in deletion order
      this.deleted.delete(old);
    }
  }

  has(uid: string): boolean {
    return uid !== '' && (this.live.has(uid) || this.deleted.has(uid));
  }
}

/** What both allocation controllers work from: the API and the two caches. */
export interface AllocationCaches {
  readonly client: KubeClient;
  readonly claims: Informer<ServiceClaim>;
  readonly services: Informer<Service>;
  readonly log: Logger;
}

export interface ClaimControllerDeps extends AllocationCaches {
  readonly timings: ClaimTimings;
}

export function claimController(deps: ClaimControllerDeps): Controller {
  const { client, claims, services, log } = deps;
  const ages = new ClaimAges();
  // Past the commit window a confirmed claim is freed anyway.
  const storedUIDs = new StoredServiceUIDs(deps.timings.commitWindowMs);
  const released = telemetry().meter.createCounter('switchboard_serviceclaims_released', { description: 'Claims freed, by reason' });

  const controller: Controller = new Controller({
    name: 'serviceclaims',
    workers: 4,
    log,
    reconcile: (name) => reconcile(name),
  });
  const enqueueFor = (service: Service) => {
    const key = objectKey(service);
    for (const claim of claims.store.byIndex(CLAIMS_BY_SERVICE, key)) controller.enqueue(claim.metadata.name ?? '');
    for (const value of heldClaims(service)) controller.enqueue(claimName(value));
  };
  claims.addEventHandler({
    onAdd: (claim) => {
      ages.observe(claim);
      controller.enqueue(claim.metadata.name ?? '');
    },
    onUpdate: (_old, claim) => {
      ages.observe(claim);
      controller.enqueue(claim.metadata.name ?? '');
    },
    onDelete: (claim) => ages.forget(claim.metadata.name ?? ''),
  });
  services.addEventHandler({
    onAdd: (service) => {
      storedUIDs.stored(service);
      enqueueFor(service);
    },
    onUpdate: (old, service) => {
      storedUIDs.stored(service);
      enqueueFor(old);
      enqueueFor(service);
    },
    onDelete: (service) => {
      storedUIDs.removed(service);
      enqueueFor(service);
    },
  });

  async function reconcile(name: string): Promise<ReconcileResult | void> {
    const claim = claims.store.get(name);
    if (!claim) return;
    const unchangedForMs = Math.max(ages.unchangedFor(claim), serverAgeMs(claim, client.serverNow()));
    const input = { claim, unchangedForMs, confirmedUIDSeenStored: storedUIDs.has(claimServiceUID(claim)), timings: deps.timings };
    const action = reconcileClaim({ ...input, service: services.store.get(claimServiceKey(claim)) });
    if (action.kind !== 'free') return act(claim, action);
    // The cache may lag behind a write that gave the Service this value: ask the API server itself.
    const { namespace, name: serviceName } = splitKey(claimServiceKey(claim));
    // A reservation for a generateName create names no Service yet.
    const live = serviceName ? await client.getOrUndefined<Service>(Services, serviceName, namespace) : undefined;
    const confirmed = reconcileClaim({ ...input, service: live });
    if (confirmed.kind !== 'free') return act(claim, confirmed);
    try {
      // Conditional on the version decided on: a request that confirmed the claim since then wins.
      await client.delete(ServiceClaims, name, { uid: claim.metadata.uid, resourceVersion: claim.metadata.resourceVersion });
      released.add(1, { reason: confirmed.reason });
      log.info('freed claim', { claim: name, service: claimServiceKey(claim), uid: claimServiceUID(claim), reason: confirmed.reason });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  async function act(claim: ServiceClaim, action: ClaimAction): Promise<ReconcileResult | void> {
    if (action.kind === 'wait') return { requeueAfterMs: action.afterMs };
    if (action.kind !== 'bind') return;
    const name = claim.metadata.name ?? '';
    try {
      let current = claim;
      if (action.setUID) {
        const seen = claim.spec.service;
        current = await client.patch<ServiceClaim>(ServiceClaims, name, confirmPatch(seen, { namespace: seen.namespace, name: seen.name, uid: action.uid }), 'json');
      }
      if (!action.setPhase) return;
      // Settle on the live Service only: a cached one may predate an update that let the value go.
      const { namespace, name: serviceName } = splitKey(claimServiceKey(current));
      const live = await client.getOrUndefined<Service>(Services, serviceName, namespace);
      if (!holdsClaim(live, current) || live?.metadata?.uid !== action.uid) return; // its next event brings it back
      const status = { phase: CLAIM_PHASE_BOUND, boundUID: action.uid, observedGeneration: current.metadata.generation };
      // Conditional on the version read: a confirmation in between must leave it unsettled.
      const patch = { metadata: { resourceVersion: current.metadata.resourceVersion }, status };
      await client.patch(ServiceClaims, name, patch, 'merge', { subresource: 'status' });
    } catch (err) {
      // The claim changed or went away meanwhile; its informer event brings it back here.
      if (!(err instanceof ApiError && (err.code === 422 || err.code === 404 || err.code === 409))) throw err;
    }
  }

  return controller;
}

export const claimIndexers = { [CLAIMS_BY_SERVICE]: (claim: ServiceClaim) => [claimServiceKey(claim)] };
