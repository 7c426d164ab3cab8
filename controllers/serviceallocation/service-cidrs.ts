// Live Service CIDRs: when --service-cluster-ip-range is not given, the ClusterIP ranges follow the API server's
// ServiceCIDR objects as its own allocator does (allocators/service/service-cidrs.ts): a new ServiceCIDR is
// allocated from as soon as the watch shows it, one being deleted no longer is. The served families stay those of
// the `kubernetes` ServiceCIDR read at start (kube-apiserver's --service-cluster-ip-range).
//
// Our claims never keep a ServiceCIDR alive: kube-controller-manager's ServiceCIDR controller removes the finalizer
// once no IPAddress object (written by kube-apiserver for every ClusterIP it allocates, managed-by
// ipallocator.k8s.io) lies only in that CIDR (pkg/controller/servicecidrs canDeleteCIDR); ServiceClaims are not
// looked at, and Switchboard writes no IPAddress.
import { type ServiceCIDRObject, serviceCIDRRanges } from '../../allocators/service/service-cidrs.js';
import { type AllocationConfig, clusterFamilies } from '../../allocators/service/service-allocation.js';
import type { ServiceIPRange } from '../../allocators/service/ip-range.js';
import type { KubeObject } from '../../api/wire.js';
import type { Informer } from '../runtime/informer.js';
import type { Logger } from '../runtime/log.js';

/**
 * `base` with ipRanges and existingIPRanges read from the ServiceCIDR cache, recomputed on each change of it. Until
 * the cache holds a ServiceCIDR of a served family, base.ipRanges (the `kubernetes` ServiceCIDR read at start).
 */
export function liveAllocationConfig(base: AllocationConfig, serviceCIDRs: Informer<KubeObject & ServiceCIDRObject>, log: Logger): AllocationConfig {
  const families = clusterFamilies(base);
  let allocatable: readonly ServiceIPRange[] = base.ipRanges;
  let existing: readonly ServiceIPRange[] = base.ipRanges;
  const recompute = () => {
    const ranges = serviceCIDRRanges(serviceCIDRs.store.list(), families);
    if (ranges.existing.length === 0) return;
    const before = allocatable.map((r) => r.cidr).join(',');
    allocatable = ranges.allocatable;
    existing = ranges.existing;
    const after = allocatable.map((r) => r.cidr).join(',');
    if (after !== before) log.info('Service CIDRs allocated from changed', { cidrs: allocatable.map((r) => r.cidr), existing: existing.map((r) => r.cidr) });
  };
  serviceCIDRs.addEventHandler({ onAdd: recompute, onUpdate: recompute, onDelete: recompute });
  return {
    ...base,
    families,
    get ipRanges() {
      return allocatable;
    },
    get existingIPRanges() {
      return existing;
    },
  };
}
