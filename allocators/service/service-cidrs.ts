// The ClusterIP ranges kube-apiserver allocates from, from its ServiceCIDR objects (networking.k8s.io/v1, KEP-1880).
//
// Mirrors the MetaAllocator of kube-apiserver v1.34 (pkg/registry/core/service/ipallocator/cidrallocator.go):
// - one allocator per distinct CIDR string of a served family (ServiceCIDRs may overlap or repeat a CIDR); a family
//   the API server does not serve (its --service-cluster-ip-range) has no MetaAllocator, so its CIDRs are ignored;
// - a CIDR is allocated from while at least one ServiceCIDR listing it is ready: its Ready condition is True or
//   absent (no kube-controller-manager) and it has no deletionTimestamp (syncAllocators);
// - a requested IP is granted by any ready CIDR holding it as a usable address (getAllocator: network, and IPv4
//   broadcast, of that CIDR excluded), else "the provided network does not match the current range";
// - a dynamic pick walks the ready CIDRs in Go map order, which is randomised, and takes the first with room
//   (AllocateNextService); all full: "range is full". So the order is a fresh random permutation per request.
// Upstream keeps a CIDR ready while any ServiceCIDR listing it was ever seen ready and another still lists it (its
// update path only clears readiness for a sole referrer); we take the settled rule, any ready referrer.
import type { IPFamily } from '../../api/ip.js';
import { type RandomBelow, cryptoRandomBelow } from './bands.js';
import { type ServiceIPRange, serviceIPRange } from './ip-range.js';

/** The fields of a networking.k8s.io/v1 ServiceCIDR this reads. */
export interface ServiceCIDRObject {
  metadata?: { name?: string; deletionTimestamp?: string; creationTimestamp?: string };
  spec?: { cidrs?: string[] };
  status?: { conditions?: { type?: string; status?: string }[] };
}

/** isReady && not being deleted, as syncAllocators decides. */
export function serviceCIDRAllocatable(cidr: ServiceCIDRObject): boolean {
  if (cidr.metadata?.deletionTimestamp) return false;
  const ready = cidr.status?.conditions?.find((c) => c.type === 'Ready');
  return ready === undefined || ready.status === 'True';
}

export interface ServiceCIDRRanges {
  /** CIDRs allocated from (ready), primary family's first; `kubernetes` first within a family. */
  readonly allocatable: ServiceIPRange[];
  /** Every CIDR of a served family, ready or being deleted: what Services may still hold. */
  readonly existing: ServiceIPRange[];
}

/**
 * The ranges of `serviceCIDRs` in the families the API server serves. Sorted for stable output (messages, metrics):
 * by family in `families` order, then the default `kubernetes` ServiceCIDR, then by creation and name.
 */
export function serviceCIDRRanges(serviceCIDRs: readonly ServiceCIDRObject[], families: readonly IPFamily[]): ServiceCIDRRanges {
  const rank = (c: ServiceCIDRObject) => (c.metadata?.name === 'kubernetes' ? 0 : 1);
  const sorted = [...serviceCIDRs].sort(
    (a, b) =>
      rank(a) - rank(b) ||
      (a.metadata?.creationTimestamp ?? '').localeCompare(b.metadata?.creationTimestamp ?? '') ||
      (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
  );
  const byCIDR = new Map<string, { range: ServiceIPRange; ready: boolean }>();
  for (const object of sorted) {
    for (const text of object.spec?.cidrs ?? []) {
      let range: ServiceIPRange;
      try {
        range = serviceIPRange(text);
      } catch {
        continue; // upstream too skips a CIDR it cannot build an allocator for (e.g. an IPv6 prefix under /64)
      }
      if (!families.includes(range.family)) continue;
      const entry = byCIDR.get(range.cidr) ?? { range, ready: false };
      entry.ready ||= serviceCIDRAllocatable(object);
      byCIDR.set(range.cidr, entry);
    }
  }
  const entries = [...byCIDR.values()].sort((a, b) => families.indexOf(a.range.family) - families.indexOf(b.range.family));
  return { allocatable: entries.filter((e) => e.ready).map((e) => e.range), existing: entries.map((e) => e.range) };
}

/** The ranges in the order one dynamic pick tries them: a random permutation, as Go's map iteration gives. */
export function pickOrder<T>(ranges: readonly T[], random: RandomBelow = cryptoRandomBelow): T[] {
  const order = [...ranges];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Number(random(BigInt(i + 1)));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
