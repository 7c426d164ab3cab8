// IPAddressPool: MetalLB's field names and meaning (a MetalLB manifest only needs its apiVersion changed),
// plus Switchboard's additions: allowNetworkAndBroadcast, disabled, and status conditions.
// Cluster-scoped: a MetalLB manifest's metadata.namespace is ignored instead of hiding the pool in a namespace
// nobody watches.
import type { ObjectMeta } from '../api/wire.js';
import { switchboardResource, type Condition, type LabelSelector } from './meta.js';

export const IPAddressPools = switchboardResource('ipaddresspools', 'IPAddressPool', false);

export interface ServiceAllocation {
  /** Lower wins; 0 or unset sorts after every positive priority. */
  priority?: number;
  /** Namespaces whose Services may take addresses from this pool (a duplicate entry is an error). */
  namespaces?: string[];
  /** Namespaces selected by label, added to `namespaces`. */
  namespaceSelectors?: LabelSelector[];
  /** ORed with each other, ANDed with the namespace restriction. */
  serviceSelectors?: LabelSelector[];
}

export interface IPAddressPoolSpec {
  /** CIDRs (host bits must be zero) or `a-b` ranges; a single address is `/32` or `/128`. */
  addresses: string[];
  /** Default true. When false, only explicit requests (loadBalancerIPs / address-pool) use the pool. */
  autoAssign?: boolean;
  /** Skip IPv4 addresses ending in .0 or .255. */
  avoidBuggyIPs?: boolean;
  /** Default false: the first and last address of a CIDR entry (network, broadcast) are not handed out. */
  allowNetworkAndBroadcast?: boolean;
  /** Drain: no new allocations from this pool; Services holding an address keep it. */
  disabled?: boolean;
  serviceAllocation?: ServiceAllocation;
}

export interface IPAddressPoolStatus {
  assignedIPv4?: number;
  availableIPv4?: number;
  assignedIPv6?: number;
  availableIPv6?: number;
  /** conflicts.length, for the printer column. */
  addressesInConflict?: number;
  /** Written by the speakers (controllers/speaker/conflicts.ts): addresses another host answered for before first use. */
  conflicts?: AddressConflict[];
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface AddressConflict {
  address: string;
  macs?: string[];
  node?: string;
  /** RFC 3339. */
  lastSeen?: string;
}

export interface IPAddressPool {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: IPAddressPoolSpec;
  status?: IPAddressPoolStatus;
}

/** Condition types on IPAddressPool.status.conditions. */
export const PoolConditionValid = 'Valid';
export const PoolConditionDisabled = 'Disabled';
