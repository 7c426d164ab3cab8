// The Events upstream's repair controllers put on a Service (spec §3.1, §3.2), reason and message verbatim.
import type { ClaimValue } from './claim-names.js';

export interface RepairEvent {
  readonly reason: string;
  readonly message: string;
}

/** The value held without a claim; the claim is being made. */
export function notAllocatedEvent(value: ClaimValue): RepairEvent {
  return value.kind === 'ip'
    ? { reason: 'ClusterIPNotAllocated', message: `Cluster IP [${value.family}]:${value.ip} is not allocated; repairing` }
    : { reason: 'PortNotAllocated', message: `Port ${value.port} is not allocated; repairing` };
}

/** Another Service holds the claim for this value: reported, never fixed (either Service may be the right one). */
export function alreadyAllocatedEvent(value: ClaimValue): RepairEvent {
  return value.kind === 'ip'
    ? {
        reason: 'ClusterIPAlreadyAllocated',
        message: `Cluster IP [${value.family}]:${value.ip} was assigned to multiple services; please recreate service`,
      }
    : { reason: 'PortAlreadyAllocated', message: `Port ${value.port} was assigned to multiple services; please recreate service` };
}

/**
 * The value lies outside the configured range. `range` is the family's CIDR(s) or the port range "base-end";
 * undefined when no range of the IP's family is configured at all.
 */
export function outOfRangeEvent(value: ClaimValue, range: string | undefined): RepairEvent {
  if (value.kind === 'nodePort') {
    return { reason: 'PortOutOfRange', message: `Port ${value.port} is not within the port range ${range ?? ''}; please recreate service` };
  }
  if (range === undefined) {
    return {
      reason: 'ClusterIPNotValid',
      message: `Cluster IP ${value.ip}(${value.family}) is of ip family that is no longer configured on cluster; please recreate service`,
    };
  }
  return {
    reason: 'ClusterIPOutOfRange',
    message: `Cluster IP [${value.family}]:${value.ip} is not within the service CIDR ${range}; please recreate service`,
  };
}
