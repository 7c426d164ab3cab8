// The API server's own Service CIDRs (ServiceCIDR objects; "kubernetes" is its --service-cluster-ip-range).
// kube-apiserver still allocates whatever the webhook fills in, in its own allocator, so Switchboard's ranges
// must lie inside these or every Service would be refused with "the provided network does not match".
import { addressBits } from '../../api/ip.js';
import { type ServiceIPRange, parseServiceClusterIPRangeFlag, serviceIPRange } from '../../allocators/service/ip-range.js';
import type { KubeClient } from '../runtime/client.js';
import type { KubeObject } from '../../api/wire.js';
import { ServiceCIDRs } from '../../api/resources.js';

interface ServiceCIDR extends KubeObject {
  spec?: { cidrs?: string[] };
}

export const DEFAULT_SERVICE_CIDR = 'kubernetes';

/** Whether every address of `inner` lies in `outer`. */
export function cidrWithin(inner: ServiceIPRange, outer: ServiceIPRange): boolean {
  if (inner.family !== outer.family || inner.prefixLength < outer.prefixLength) return false;
  const shift = BigInt(addressBits(outer.family) - outer.prefixLength);
  return inner.network >> shift === outer.network >> shift;
}

/**
 * The ranges of `--service-cluster-ip-range`, or the API server's own when the flag is empty: then the `kubernetes`
 * ServiceCIDR's, which fix the served families and serve until the ServiceCIDR watch takes over (service-cidrs.ts).
 */
export async function resolveServiceIPRanges(client: KubeClient, flag: string): Promise<ServiceIPRange[]> {
  if (flag.trim() !== '') return parseServiceClusterIPRangeFlag(flag);
  const cidr = await client.getOrUndefined<ServiceCIDR>(ServiceCIDRs, DEFAULT_SERVICE_CIDR);
  const cidrs = cidr?.spec?.cidrs ?? [];
  if (cidrs.length === 0) {
    throw new Error('--service-cluster-ip-range is empty and the API server publishes no ServiceCIDR "kubernetes": pass kube-apiserver\'s value');
  }
  return parseServiceClusterIPRangeFlag(cidrs.join(','));
}

/** The configured ranges no ServiceCIDR of the API server contains. */
export async function rangesOutsideApiServer(client: KubeClient, ranges: readonly ServiceIPRange[]): Promise<ServiceIPRange[]> {
  const list = await client.list<ServiceCIDR>(ServiceCIDRs);
  const outer = list.items.flatMap((item) => (item.spec?.cidrs ?? []).map(serviceIPRange));
  return ranges.filter((range) => !outer.some((o) => cidrWithin(range, o)));
}
