// Used and free values per range, counted from the claims cache at scrape time (upstream's names, with the
// switchboard_ prefix instead of kube_apiserver_).
import { claimValueOf } from '../../allocators/service/claim-objects.js';
import { formatPortRange, portInRange } from '../../allocators/service/port-range.js';
import { rangeContainsIP } from '../../allocators/service/ip-range.js';
import type { AllocationConfig } from '../../allocators/service/service-allocation.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import { telemetry } from '../runtime/telemetry.js';

export interface RangeUsage {
  readonly kind: 'ClusterIP' | 'NodePort';
  /** The CIDR, or "base-end" for the node port range. */
  readonly range: string;
  readonly used: number;
  readonly free: number;
}

/**
 * Pure: how many claims fall in each range. The ranges are read at each call, so they follow the ServiceCIDRs: one
 * being deleted is reported until it is gone; a claim in overlapping CIDRs counts in each.
 */
export function rangeUsage(config: AllocationConfig, claims: readonly ServiceClaim[]): RangeUsage[] {
  const ipRanges = config.existingIPRanges ?? config.ipRanges;
  const ipUsed = ipRanges.map(() => 0);
  let portsUsed = 0;
  for (const claim of claims) {
    const value = claimValueOf(claim);
    if (!value) continue;
    if (value.kind === 'nodePort') {
      if (portInRange(config.nodePortRange, value.port)) portsUsed++;
      continue;
    }
    ipRanges.forEach((range, i) => rangeContainsIP(range, value.ip) && ipUsed[i]++);
  }
  return [
    ...ipRanges.map((range, i) => ({ kind: 'ClusterIP' as const, range: range.cidr, used: ipUsed[i], free: Number(range.size) - ipUsed[i] })),
    { kind: 'NodePort', range: formatPortRange(config.nodePortRange), used: portsUsed, free: config.nodePortRange.size - portsUsed },
  ];
}

export function registerRangeMetrics(config: AllocationConfig, claims: () => readonly ServiceClaim[]): void {
  const meter = telemetry().meter;
  const allocatedIPs = meter.createObservableGauge('switchboard_clusterip_allocator_allocated_ips', { description: 'ClusterIPs claimed, per Service CIDR' });
  const availableIPs = meter.createObservableGauge('switchboard_clusterip_allocator_available_ips', { description: 'ClusterIPs free, per Service CIDR' });
  const allocatedPorts = meter.createObservableGauge('switchboard_nodeport_allocator_allocated_ports', { description: 'NodePorts claimed' });
  const availablePorts = meter.createObservableGauge('switchboard_nodeport_allocator_available_ports', { description: 'NodePorts free' });
  meter.addBatchObservableCallback(
    (observer) => {
      for (const usage of rangeUsage(config, claims())) {
        if (usage.kind === 'ClusterIP') {
          observer.observe(allocatedIPs, usage.used, { cidr: usage.range });
          observer.observe(availableIPs, usage.free, { cidr: usage.range });
        } else {
          observer.observe(allocatedPorts, usage.used, { range: usage.range });
          observer.observe(availablePorts, usage.free, { range: usage.range });
        }
      }
    },
    [allocatedIPs, availableIPs, allocatedPorts, availablePorts],
  );
}
