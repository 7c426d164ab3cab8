// A bound on what reservations nobody has confirmed may hold. The mutating webhook reserves values (claims with
// no Service uid) that only the validating webhook confirms; until the claim controller frees them after the
// grace period, they refuse the same values to everyone else. Whoever can call the webhook without being the
// API server (no client authentication, no NetworkPolicy) could so hold the whole NodePort range with forged
// reviews. Past the bound, per namespace and cluster-wide, new reservations are refused, so a flood holds at most
// the bound, and only for the grace period after it stops.
//
// Counted: unconfirmed claims in the informer's cache, plus claims this replica created that its cache has not
// shown yet (a burst of requests arrives faster than the watch), plus values requests in progress are reserving.
// Other replicas' writes count once their watch events arrive.
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import type { Store } from '../runtime/store.js';

export interface ReservationLimits {
  /** Unconfirmed reservations cluster-wide at most; 0: no bound. */
  readonly total: number;
  /** Unconfirmed reservations per Service namespace at most; 0: no bound. */
  readonly perNamespace: number;
}

const UNCONFIRMED_INDEX = 'unconfirmedByNamespace';
/** The index key under which every unconfirmed claim is filed too (no namespace is named "*"). */
const ALL_NAMESPACES = '*';
/** A created claim the cache never shows (deleted before the watch saw it) stops counting after this long. */
const UNSEEN_EXPIRY_MS = 60_000;

const isUnconfirmed = (claim: ServiceClaim): boolean => (claim.spec?.service?.uid ?? '') === '';

/** Admission for one request's reservations: either why it is refused, or a ticket to hand in when done. */
export type ReservationAdmission = { readonly refusal: string } | { readonly ticket: ReservationTicket };

export interface ReservationTicket {
  /** The request is done; `created` are the claims it created (they count until the cache shows them). */
  done(created: Iterable<string>): void;
}

export class UnconfirmedReservations {
  /** Claims created here that the cache has not shown yet: name → namespace and when. */
  private readonly unseen = new Map<string, { namespace: string; at: number }>();
  /** Values being reserved by requests in progress, per namespace. */
  private readonly inProgress = new Map<string, number>();

  constructor(
    private readonly claims: Store<ServiceClaim>,
    private readonly limits: ReservationLimits,
    private readonly now: () => number = Date.now,
  ) {
    claims.addIndexer(UNCONFIRMED_INDEX, (claim) => (isUnconfirmed(claim) ? [claim.spec.service.namespace, ALL_NAMESPACES] : []));
  }

  /** Call with each claim the cache adds, updates or deletes: from then on the cache counts it. */
  observed(claim: ServiceClaim): void {
    this.unseen.delete(claim.metadata.name ?? '');
  }

  /** Before a request reserves up to `values` values for a Service in `namespace`. */
  admit(namespace: string, values: number): ReservationAdmission {
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
          for (const name of created) if (!this.claims.get(name)) this.unseen.set(name, { namespace, at: this.now() });
        },
      },
    };
  }

  /** How many unconfirmed reservations count against `namespace`, or against the cluster without one. */
  count(namespace?: string): number {
    this.expireUnseen();
    const counts = (ns: string) => namespace === undefined || ns === namespace;
    const cached = this.claims.byIndex(UNCONFIRMED_INDEX, namespace ?? ALL_NAMESPACES).length;
    let pending = 0;
    for (const [ns, n] of this.inProgress) if (counts(ns)) pending += n;
    for (const entry of this.unseen.values()) if (counts(entry.namespace)) pending++;
    return cached + pending;
  }

  private refusal(namespace: string): string | undefined {
    const { perNamespace, total } = this.limits;
    const inNamespace = perNamespace > 0 ? this.count(namespace) : 0;
    if (perNamespace > 0 && inNamespace >= perNamespace) {
      return `${inNamespace} ClusterIPs/NodePorts reserved for Services of namespace ${JSON.stringify(namespace)} are not confirmed yet (at most ${perNamespace}): retry in a few seconds`;
    }
    const inCluster = total > 0 ? this.count() : 0;
    if (total > 0 && inCluster >= total) {
      return `${inCluster} ClusterIPs/NodePorts reserved cluster-wide are not confirmed yet (at most ${total}): retry in a few seconds`;
    }
    return undefined;
  }

  private expireUnseen(): void {
    const oldest = this.now() - UNSEEN_EXPIRY_MS;
    for (const [name, entry] of this.unseen) if (entry.at < oldest) this.unseen.delete(name);
  }
}
