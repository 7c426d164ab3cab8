// L2Advertisement: which pools are announced with ARP/NDP, from which nodes and on which interfaces.
// MetalLB's field names and meaning; cluster-scoped like IPAddressPool.
import type { ObjectMeta } from '../api/wire.js';
import { switchboardResource, type LabelSelector } from './meta.js';

export const L2Advertisements = switchboardResource('l2advertisements', 'L2Advertisement', false);

export interface PreferredNodeSelector {
  /** 1..100, summed over every matching selector of every advertisement that applies to the Service. */
  weight: number;
  preference: LabelSelector;
}

export interface L2AdvertisementSpec {
  /** Pool names; with ipAddressPoolSelectors also empty, the advertisement applies to every pool. */
  ipAddressPools?: string[];
  ipAddressPoolSelectors?: LabelSelector[];
  /** Nodes allowed to announce; empty means every node. */
  nodeSelectors?: LabelSelector[];
  /** Exact interface names; empty means every eligible interface. */
  interfaces?: string[];
  /** Limits the advertisement to matching Services of its pools. */
  serviceSelectors?: LabelSelector[];
  /** Soft preference among the eligible nodes (MetalLB main). */
  preferredNodeSelectors?: PreferredNodeSelector[];
}

export interface L2Advertisement {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: L2AdvertisementSpec;
  status?: Record<string, never>;
}
