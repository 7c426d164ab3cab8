// Wiring of the Service-side repair (leader only): claims the values of Services that hold them unclaimed
// (Services from before Switchboard, or whose claim was lost) and reports duplicates and out-of-range values
// with upstream's Events. Decisions are repair-reconciler.ts's.
import { claimName } from '../../allocators/service/claim-names.js';
import { claimObject, claimValueText, serviceIdentity } from '../../allocators/service/claim-objects.js';
import { type AllocationConfig, heldClaims } from '../../allocators/service/service-allocation.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { isAlreadyExists, objectKey } from '../runtime/client.js';
import { Controller } from '../runtime/controller.js';
import { involvedObjectOf, type EventSink } from '../runtime/events.js';
import { telemetry } from '../runtime/telemetry.js';
import type { Service } from '../../api/wire.js';
import { notAllocatedEvent } from '../../allocators/service/repair-events.js';
import type { AllocationCaches } from './claim-controller.js';
import { repairService } from './repair-reconciler.js';

/** Which Services hold each value (by claim name), so that a claim going away re-checks them. */
class HeldValues {
  private readonly holders = new Map<string, Set<string>>();

  update(old: Service | undefined, current: Service | undefined): void {
    if (old) for (const value of heldClaims(old)) this.holders.get(claimName(value))?.delete(objectKey(old));
    if (current) {
      for (const value of heldClaims(current)) {
        const name = claimName(value);
        let keys = this.holders.get(name);
        if (!keys) this.holders.set(name, (keys = new Set()));
        keys.add(objectKey(current));
      }
    }
  }

  holdersOf(name: string): string[] {
    const keys = this.holders.get(name);
    if (keys?.size === 0) this.holders.delete(name);
    return [...(keys ?? [])];
  }
}

export interface RepairControllerDeps extends AllocationCaches {
  readonly config: AllocationConfig;
  readonly events: EventSink;
}

export function repairController(deps: RepairControllerDeps): Controller {
  const { client, claims, services, config, events, log } = deps;
  const held = new HeldValues();
  const adopted = telemetry().meter.createCounter('switchboard_serviceclaims_adopted', { description: 'Claims made for values Services held unclaimed' });
  const controller = new Controller({ name: 'service-allocation-repair', workers: 2, log, reconcile: (key) => reconcile(key) });

  services.addEventHandler({
    onAdd: (service) => {
      held.update(undefined, service);
      controller.enqueue(objectKey(service));
    },
    onUpdate: (old, service) => {
      held.update(old, service);
      controller.enqueue(objectKey(service));
    },
    onDelete: (service) => held.update(service, undefined),
  });
  const recheckHolders = (claim: ServiceClaim) => {
    for (const key of held.holdersOf(claim.metadata.name ?? '')) controller.enqueue(key);
  };
  claims.addEventHandler({ onUpdate: (_old, claim) => recheckHolders(claim), onDelete: recheckHolders });

  async function reconcile(key: string): Promise<void> {
    const service = services.store.get(key);
    if (!service) return;
    const result = repairService(service, config, { claim: (name) => claims.store.get(name), service: (k) => services.store.get(k) });
    const involved = involvedObjectOf(service, { apiVersion: 'v1', kind: 'Service' });
    for (const value of result.adopt) {
      try {
        await client.create(ServiceClaims, claimObject(value, serviceIdentity(service)));
      } catch (err) {
        // Claimed meanwhile (a request, or another Service): the claim's event brings this Service back.
        if (isAlreadyExists(err)) continue;
        throw err;
      }
      adopted.add(1, { type: value.kind === 'ip' ? 'ClusterIP' : 'NodePort' });
      log.info('claimed a value a Service held unclaimed', { service: key, value: claimValueText(value) });
      const event = notAllocatedEvent(value);
      events.event(involved, 'Warning', event.reason, event.message);
    }
    for (const event of result.events) events.event(involved, 'Warning', event.reason, event.message);
  }

  return controller;
}
