// Pure core of the Service-side repair: one Service against the claims → claims to make (adopting values of
// Services that predate Switchboard or lost their claim) and upstream's Events for what cannot be fixed.
import { type ClaimValue, claimName } from '../../allocators/service/claim-names.js';
import { claimNamesService, claimServiceKey } from '../../allocators/service/claim-objects.js';
import { formatPortRange } from '../../allocators/service/port-range.js';
import { alreadyAllocatedEvent, outOfRangeEvent, type RepairEvent } from '../../allocators/service/repair-events.js';
import { type AllocationConfig, claimInConfiguredRange, heldClaims } from '../../allocators/service/service-allocation.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import type { Service } from '../../api/wire.js';

export interface RepairLookups {
  claim(name: string): ServiceClaim | undefined;
  /** A Service by "namespace/name". */
  service(key: string): Service | undefined;
}

export interface RepairResult {
  /** Values the Service holds that nobody claims: claim them for it (and report notAllocatedEvent). */
  readonly adopt: readonly ClaimValue[];
  /** Duplicates and values out of range: reported, never fixed. */
  readonly events: readonly RepairEvent[];
}

export function repairService(service: Service, config: AllocationConfig, lookups: RepairLookups): RepairResult {
  const adopt: ClaimValue[] = [];
  const events: RepairEvent[] = [];
  const ref = { namespace: service.metadata?.namespace ?? '', name: service.metadata?.name ?? '' };

  for (const value of heldClaims(service)) {
    if (!claimInConfiguredRange(config, value)) {
      events.push(outOfRangeEvent(value, rangeText(config, value)));
      continue;
    }
    const claim = lookups.claim(claimName(value));
    if (!claim) {
      adopt.push(value);
    } else if (!claimNamesService(claim, ref)) {
      // A claim for another Service that also holds the value is a duplicate. One whose Service does not hold
      // it is stale or in flight: the claim controller frees it, and this Service adopts the value afterwards.
      const other = lookups.service(claimServiceKey(claim));
      if (other && heldClaims(other).some((v) => claimName(v) === claim.metadata.name)) events.push(alreadyAllocatedEvent(value));
    }
  }
  return { adopt, events };
}

/** The family's CIDRs, or the port range, as upstream prints them in events. */
function rangeText(config: AllocationConfig, value: ClaimValue): string | undefined {
  if (value.kind === 'nodePort') return formatPortRange(config.nodePortRange);
  const cidrs = config.ipRanges.filter((range) => range.family === value.family).map((range) => range.cidr);
  return cidrs.length === 0 ? undefined : cidrs.join(',');
}
