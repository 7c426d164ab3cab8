// ClusterIP and NodePort allocation, wired into a Manager:
// - on every replica: the claims and IPAddress caches and the admission webhook (mutate + validate), served by
//   the runtime's webhook stack (which renews its certificates and writes its configurations on the leader);
// - on the leader: the claim controller (bind, release, free leaks) and the Service-side repair (adopt, report
//   duplicates and out-of-range values).
import { claimName } from '../../allocators/service/claim-names.js';
import { claimServiceKey, claimServiceUID, claimValueOf, isReservedClaim } from '../../allocators/service/claim-objects.js';
import { heldClaims, type AllocationConfig } from '../../allocators/service/service-allocation.js';
import { IPAddresses, ServiceCIDRs, Services, type ResourceType } from '../../api/resources.js';
import type { ServiceCIDRObject } from '../../allocators/service/service-cidrs.js';
import type { ClaimValue } from '../../allocators/service/claim-names.js';
import type { KubeObject, Service } from '../../api/wire.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { isNotFound, objectKey, type KubeClient } from '../runtime/client.js';
import type { Manager } from '../runtime/manager.js';
import { registerAdmissionWebhook } from '../runtime/webhook/admission-webhook.js';
import type { CertificateSettings } from '../runtime/webhook/certificates.js';
import type { ClientAuthentication } from '../runtime/webhook/server.js';
import { mutateService, validateService, type AdmissionDeps } from './admission-handlers.js';
import { CLAIMS_BY_SERVICE, claimController, claimIndexers } from './claim-controller.js';
import { holdsClaim, keepLastWriteTime, type ClaimTimings } from './claim-reconciler.js';
import { takeoverReporter, type TakenValues } from './claim-store.js';
import { registerRangeMetrics } from './metrics.js';
import { repairController } from './repair-controller.js';
import { PendingClaims, type PendingClaimLimits } from './pending-claims.js';
import { MUTATE_PATH, RESERVATIONS_PATH, VALIDATE_PATH, desiredConfigurations, type WebhookSettings } from './webhook-configurations.js';
import { validateReservation } from './reservations.js';
import { liveAllocationConfig } from './service-cidrs.js';

export interface ServiceAllocationOptions {
  /** With liveServiceCIDRs, ipRanges are the `kubernetes` ServiceCIDR's (the served families, and the start). */
  readonly allocation: AllocationConfig;
  /** Follow the API server's ServiceCIDR objects (no --service-cluster-ip-range given). */
  readonly liveServiceCIDRs?: boolean;
  readonly timings: ClaimTimings;
  readonly webhook: WebhookSettings & {
    /** host:port the HTTPS server listens on. */
    readonly bindAddress: string;
    /** Secret (in `namespace`) holding the CA bundle and the serving certificate. */
    readonly certificateSecret: string;
    readonly certificates: CertificateSettings;
    /** Serve only kube-apiserver (its client certificate); none: any caller. */
    readonly clientAuthentication?: ClientAuthentication;
  };
  readonly pendingClaimLimits: PendingClaimLimits;
  /** Switchboard's own namespace. */
  readonly namespace: string;
  readonly stallAfterClaim?: boolean;
}

export async function registerServiceAllocation(manager: Manager, options: ServiceAllocationOptions): Promise<void> {
  const log = manager.log.child('service-allocation');
  const client = manager.client;
  const claims = manager.informer<ServiceClaim>(ServiceClaims, { indexers: claimIndexers, transform: keepLastWriteTime });
  // Picks skip addresses the API server's own allocator holds (Services from before us, opted-out namespaces).
  // Before v1.33 it has no IPAddress objects, and an informer of an unserved resource would never sync.
  const ipAddresses = (await serves(client, IPAddresses)) ? manager.informer<KubeObject>(IPAddresses) : undefined;
  const services = manager.informer<Service>(Services);
  const config = options.liveServiceCIDRs
    ? liveAllocationConfig(options.allocation, manager.informer<KubeObject & ServiceCIDRObject>(ServiceCIDRs), log.child('service-cidrs'))
    : options.allocation;
  const reservationsOf = (namespace: string, name: string): ClaimValue[] =>
    claims.store
      .byIndex(CLAIMS_BY_SERVICE, `${namespace}/${name}`)
      .filter(isReservedClaim)
      .flatMap((claim) => claimValueOf(claim) ?? [])
      .sort((a, b) => (a.kind === 'nodePort' && b.kind === 'nodePort' ? a.port - b.port : 0));

  const taken: TakenValues = {
    isKnownTaken: (value) =>
      claims.store.get(claimName(value)) !== undefined || (value.kind === 'ip' && ipAddresses?.store.get(value.ip) !== undefined),
  };
  const heldByService = (claim: ServiceClaim) => {
    const service = services.store.get(claimServiceKey(claim));
    return claimServiceUID(claim) !== '' && service?.metadata?.uid === claimServiceUID(claim) && holdsClaim(service, claim);
  };
  const pendingClaims = new PendingClaims({ claims: claims.store, heldByService }, options.pendingClaimLimits);
  claims.addEventHandler({ onAdd: (c) => pendingClaims.update(c), onUpdate: (_old, c) => pendingClaims.update(c), onDelete: (c) => pendingClaims.remove(c) });
  const updateClaimsOf = (service: Service) => {
    pendingClaims.serviceStored(service.metadata?.uid ?? '', heldClaims(service).map(claimName));
    for (const claim of claims.store.byIndex(CLAIMS_BY_SERVICE, objectKey(service))) pendingClaims.update(claim);
  };
  services.addEventHandler({ onAdd: updateClaimsOf, onUpdate: (_old, service) => updateClaimsOf(service), onDelete: updateClaimsOf });
  const webhookLog = log.child('webhook');
  const deps: AdmissionDeps = {
    client,
    taken,
    pendingClaims,
    config,
    reservationsOf,
    log: webhookLog,
    reportTakeover: takeoverReporter(webhookLog),
    stallAfterClaim: options.stallAfterClaim,
  };
  const server = registerAdmissionWebhook(manager, {
    name: 'service-allocation',
    bindAddress: options.webhook.bindAddress,
    clientAuthentication: options.webhook.clientAuthentication,
    certificates: { secret: { namespace: options.namespace, name: options.webhook.certificateSecret }, settings: options.webhook.certificates },
    configurations: (caBundle) => desiredConfigurations(options.webhook, caBundle),
  });
  server.handle<Service>(MUTATE_PATH, (request) => mutateService(request, deps));
  server.handle<Service>(VALIDATE_PATH, (request) => validateService(request, deps));
  server.handle<ServiceClaim>(RESERVATIONS_PATH, (request) =>
    validateReservation(request, { client, config, services: () => services.store.list(), ipAddress: (ip) => ipAddresses?.store.get(ip) }),
  );

  manager.addController(claimController({ client, claims, services, timings: options.timings, log: log.child('claims') }));
  manager.addController(repairController({ client, claims, services, config, events: manager.events, log: log.child('repair') }));
  registerRangeMetrics(config, () => claims.store.list());
}

async function serves(client: KubeClient, rt: ResourceType): Promise<boolean> {
  try {
    await client.list(rt, { limit: 1 });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
