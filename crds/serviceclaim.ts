// ServiceClaim: one allocated ClusterIP or NodePort. Cluster-scoped, and named after the value alone
// (allocators/claim-names.ts: ipv4-10-96-0-10, ipv6-…, nodeport-30080), so creating it is the atomic
// allocation: the API server refuses a second object of the same name.
//
// Lifecycle: the mutating webhook creates it with an empty spec.service.uid (reserved for a request); the
// validating webhook, which sees the Service's final uid, fills the uid in with a test-and-set (confirmed);
// the controller marks status.phase Bound once the Service exists and holds the value, and deletes the claim
// when the Service lets go of the value (or never came to be). A request for a value whose Service let go of it
// takes the claim over without waiting for the controller (controllers/serviceallocation/claim-takeover.ts).
//
// A reservation is a claim with spec.reserved: true, made by a user (or by patching a claim to reserved). It keeps
// the value for spec.service's namespace/name only: that Service gets it when it asks for it and, first, when it asks
// for none; nobody else can take it over; it outlives the Service (the controller binds it while the Service holds
// the value and never frees it). Deleting the claim ends the reservation. A validating webhook refuses bad ones
// (controllers/serviceallocation/reservations.ts).
import type { ObjectMeta } from '../api/wire.js';
import { switchboardResource } from './meta.js';

export const ServiceClaims = switchboardResource('serviceclaims', 'ServiceClaim', false);

export const CLAIM_TYPE = { clusterIP: 'ClusterIP', nodePort: 'NodePort' } as const;
export type ClaimType = (typeof CLAIM_TYPE)[keyof typeof CLAIM_TYPE];

/** Label with the claim's type, for `kubectl get serviceclaims -l switchboard.dev/claim-type=NodePort`. */
export const LABEL_CLAIM_TYPE = 'switchboard.dev/claim-type';

export const CLAIM_PHASE_BOUND = 'Bound';

export interface ServiceClaimServiceRef {
  namespace: string;
  name: string;
  /** Empty while the claim is only reserved for a request; the Service's uid once confirmed. */
  uid: string;
}

export interface ServiceClaimSpec {
  type: ClaimType;
  /** The IP in canonical form, or the port number in decimal. */
  value: string;
  /** ClusterIP claims only. */
  family?: 'IPv4' | 'IPv6';
  service: ServiceClaimServiceRef;
  /**
   * uid of the admission request that last reserved, confirmed, took over or contested the claim. Every such
   * write changes the spec, so metadata.generation moves with each one and status.observedGeneration tells
   * whether any came after the controller last checked.
   */
  request?: string;
  /** A reservation: kept for spec.service's namespace/name across deletes of that Service, never freed by Switchboard. */
  reserved?: boolean;
}

export interface ServiceClaimStatus {
  /** Bound: the controller saw the Service (spec.service.uid) holding the value. Empty while reserved. */
  phase?: string;
  /** The uid of the Service seen holding the value: that Service existed, so once it is gone it stays gone. */
  boundUID?: string;
  /** metadata.generation when the controller last saw that Service (live, not cached) holding the value. */
  observedGeneration?: number;
}

export interface ServiceClaim {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: ServiceClaimSpec;
  status?: ServiceClaimStatus;
}
