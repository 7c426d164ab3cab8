// A bound on the claims nobody has settled yet. The mutating webhook reserves values (claims with no Service uid),
// the validating webhook confirms them for a Service uid, and the claim controller marks them Bound once it sees the
// Service holding them. Until then a claim refuses its value to everyone else, and a claim whose Service never
// comes is freed only after the grace period (reserved) or kube-apiserver's request bound (confirmed). Whoever can
// call the webhooks without being the API server (no client authentication, no NetworkPolicy) could so hold the
// whole NodePort range with forged reviews. Past the bound, per namespace and cluster-wide, new claims are refused,
// so a flood holds at most the bound, and only for those delays after it stops.
//
// Counted: claims in the informer's cache that are not Bound (or reserved again) and whose Service is not in the
// Service cache holding the value under the confirmed uid (decided again on every change of either; under load the
// controller binds much later than the watch shows the Service, and a forged confirmation names a Service that does
// not hold the value); plus claims this replica created that its cache has not shown yet (a burst arrives faster
// than the watch); plus values requests in progress are claiming. Other replicas' writes count once watched.
// A claim once seen held by its Service stays settled when that Service goes away: a real workload that deletes
// Services as fast as it creates them leaves such claims for the controller to free, and they must not use up the
// bound (a forged confirmation never gets that far: no stored Service holds its value). The Service's events and
// the claim's confirmation arrive in either order, so what stored Services held is remembered for a while.
import { CLAIM_PHASE_BOUND, type ServiceClaim } from '../../crds/serviceclaim.js';
import type { Store } from '../runtime/store.js';

export interface PendingClaimLimits {
  /** Pending claims cluster-wide at most; 0: no bound. */
  readonly total: number;
  /** Pending claims per Service namespace at most; 0: no bound. */
  readonly perNamespace: number;
}

/** A created claim the cache never shows (deleted before the watch saw it) stops counting after this long. */
const UNSEEN_EXPIRY_MS = 60_000;
/** How long a stored Service's values are remembered for a claim confirmation that arrives after its events. */
const STORED_HOLDER_MEMORY_MS = 120_000;

// A user's reservation waits for its Service by design: it is no request's to settle.
const unbound = (claim: ServiceClaim): boolean =>
  claim.spec?.reserved !== true && ((claim.spec?.service?.uid ?? '') === '' || claim.status?.phase !== CLAIM_PHASE_BOUND);

export interface PendingClaimSources {
  /** The claims cache. */
  readonly claims: Pick<Store<ServiceClaim>, 'get'>;
  /** Whether a Service in the cache holds the claim's value under the uid the claim was confirmed for. */
  readonly heldByService: (claim: ServiceClaim) => boolean;
}

/** Admission of one request's claims: either why it is refused, or a ticket to hand in when done. */
export type ClaimAdmission = { readonly refusal: string } | { readonly ticket: ClaimTicket };

export interface ClaimTicket {
  /** The request is done; `created` are the claims it created (they count until the cache shows them). */
  done(created: Iterable<string>): void;
}

export class PendingClaims {
  /** Cached claims that count: name → the namespace of their Service. */
  private readonly cached = new Map<string, string>();
  /** Claims created here that the cache has not shown yet: name → namespace and when. */
  private readonly unseen = new Map<string, { namespace: string; at: number }>();
  /** Values being claimed by requests in progress, per namespace. */
  private readonly inProgress = new Map<string, number>();
  /** Cached claims seen held by their Service: name → the Service uid they were held under. */
  private readonly settled = new Map<string, string>();
  /** Claim names stored Services held, recently: `name uid` → when seen (insertion order is age order). */
  private readonly storedHolders = new Map<string, number>();

  constructor(
    private readonly sources: PendingClaimSources,
    private readonly limits: PendingClaimLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** A claim the cache added or changed, or whose Service changed in the Service cache: counts or not, from now on. */
  update(claim: ServiceClaim): void {
    const name = claim.metadata.name ?? '';
    const uid = claim.spec.service.uid ?? '';
    this.unseen.delete(name);
    if (this.settled.get(name) !== uid) this.settled.delete(name); // taken over or reserved again: settles anew
    if (uid !== '' && (this.sources.heldByService(claim) || this.storedHolders.has(`${name} ${uid}`))) this.settled.set(name, uid);
    if (unbound(claim) && !this.settled.has(name)) this.cached.set(name, claim.spec.service.namespace);
    else this.cached.delete(name);
  }

  /** The Service cache showed a stored Service (added, updated or deleted) with `uid`, holding `claimNames`. */
  serviceStored(uid: string, claimNames: readonly string[]): void {
    const now = this.now();
    for (const [key, at] of this.storedHolders) {
      if (at >= now - STORED_HOLDER_MEMORY_MS) break;
      this.storedHolders.delete(key);
    }
    for (const name of claimNames) {
      const key = `${name} ${uid}`;
      this.storedHolders.delete(key); // re-inserted last: the map stays in age order
      this.storedHolders.set(key, now);
      const claim = this.sources.claims.get(name);
      if (claim) this.update(claim);
    }
  }

  /** A claim the cache deleted. */
  remove(claim: ServiceClaim): void {
    const name = claim.metadata.name ?? '';
    this.unseen.delete(name);
    this.cached.delete(name);
    this.settled.delete(name);
  }

  /** Before a request claims up to `values` values for a Service in `namespace`. */
  admit(namespace: string, values: number): ClaimAdmission {
    if (values === 0) return { ticket: { done: () => undefined } };
    const refusal = this.refusal(namespace);
    if (refusal) return { refusal };
    this.inProgress.set(namespace, (this.inProgress.get(namespace) ?? 0) + values);
    let open = true;
    return {
      ticket: {
        done: (created) => {
          if (!open) return;
          open = false;
          const left = (this.inProgress.get(namespace) ?? 0) - values;
          if (left > 0) this.inProgress.set(namespace, left);
          else this.inProgress.delete(namespace);
          for (const name of created) if (!this.sources.claims.get(name)) this.unseen.set(name, { namespace, at: this.now() });
        },
      },
    };
  }

  /** How many pending claims count against `namespace`, or against the cluster without one. */
  count(namespace?: string): number {
    const { inNamespace, inCluster } = this.counts(namespace ?? '');
    return namespace === undefined ? inCluster : inNamespace;
  }

  /** Pending claims for `namespace` and in all. */
  private counts(namespace: string): { inNamespace: number; inCluster: number } {
    this.expireUnseen();
    let inNamespace = 0;
    let inCluster = 0;
    const add = (ns: string, n: number) => {
      inCluster += n;
      if (ns === namespace) inNamespace += n;
    };
    for (const ns of this.cached.values()) add(ns, 1);
    for (const [ns, n] of this.inProgress) add(ns, n);
    for (const entry of this.unseen.values()) add(entry.namespace, 1);
    return { inNamespace, inCluster };
  }

  private refusal(namespace: string): string | undefined {
    const { perNamespace, total } = this.limits;
    if (perNamespace === 0 && total === 0) return undefined;
    const { inNamespace, inCluster } = this.counts(namespace);
    if (perNamespace > 0 && inNamespace >= perNamespace) {
      return `${inNamespace} ClusterIPs/NodePorts claimed for Services of namespace ${JSON.stringify(namespace)} are not settled yet (at most ${perNamespace}): retry in a few seconds`;
    }
    if (total > 0 && inCluster >= total) {
      return `${inCluster} ClusterIPs/NodePorts claimed cluster-wide are not settled yet (at most ${total}): retry in a few seconds`;
    }
    return undefined;
  }

  private expireUnseen(): void {
    const oldest = this.now() - UNSEEN_EXPIRY_MS;
    for (const [name, entry] of this.unseen) if (entry.at < oldest) this.unseen.delete(name);
  }
}
