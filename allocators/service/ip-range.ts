// Service CIDR ranges: which addresses may be handed out, offset <-> IP, and the dynamic pick order.
//
// Offset 0 is network+1: the network address is never handed out, nor the IPv4 broadcast address. The IPv6
// all-ones address is usable (upstream reserves only the subnet-router anycast address, ::0 of the prefix).
import {
  type Band,
  type BandedRange,
  type RandomBelow,
  SERVICE_IP_BAND_RULE,
  bandOfOffset,
  cryptoRandomBelow,
  dynamicPickOrder,
  staticBandSize,
} from './bands.js';
import { type IPFamily, addressBits, formatIP, parseIPLiteral, parseIPSloppy } from '../../api/ip.js';

export const DEFAULT_SERVICE_CLUSTER_IP_RANGE = '10.0.0.0/24';
/** kube-apiserver's floor on --service-cluster-ip-range, counted as 2^hostbits capped at 65536. */
const MIN_FLAG_RANGE_ADDRESSES = 8n;
/** The IPAddress allocator refuses IPv6 prefixes shorter than this. */
const MIN_IPV6_PREFIX_LENGTH = 64;

/** `size` counts usable addresses (offset 0 = network+1); `staticSize` is the KEP-3070 lower band. */
export interface ServiceIPRange extends BandedRange {
  /** Canonical CIDR as Go prints it, e.g. "10.96.0.0/12", "fd00:10:96::/108". */
  readonly cidr: string;
  readonly family: IPFamily;
  readonly prefixLength: number;
  /** The network address as a number. */
  readonly network: bigint;
}

/**
 * A range from one CIDR (a --service-cluster-ip-range entry or a ServiceCIDR's spec.cidrs entry). Like Go's
 * ParseCIDR, bits set beyond the prefix are masked off.
 */
export function serviceIPRange(cidrText: string): ServiceIPRange {
  const slash = cidrText.indexOf('/');
  const ip = slash === -1 ? undefined : parseIPLiteral(cidrText.slice(0, slash));
  const prefixText = slash === -1 ? '' : cidrText.slice(slash + 1);
  // An IPv4-mapped network ("::ffff:10.0.0.0/104") is refused rather than guessing which width its prefix has.
  if (!ip || ip.isIPv4Mapped || !/^[0-9]+$/.test(prefixText)) {
    throw new Error(`invalid CIDR address: ${cidrText}`);
  }
  const bits = addressBits(ip.family);
  const prefixLength = Number.parseInt(prefixText, 10);
  if (prefixLength > bits) throw new Error(`invalid CIDR address: ${cidrText}`);
  if (ip.family === 'IPv6' && prefixLength < MIN_IPV6_PREFIX_LENGTH) {
    throw new Error(`shortest allowed prefix length for service CIDR is ${MIN_IPV6_PREFIX_LENGTH}, got ${prefixLength}`);
  }
  const hostBits = BigInt(bits - prefixLength);
  const network = (ip.value >> hostBits) << hostBits;
  const blockSize = 1n << hostBits;
  const reserved = ip.family === 'IPv4' ? 2n : 1n;
  return {
    cidr: `${formatIP({ family: ip.family, value: network })}/${prefixLength}`,
    family: ip.family,
    prefixLength,
    network,
    size: blockSize > reserved ? blockSize - reserved : 0n,
    staticSize: staticBandSize(blockSize, SERVICE_IP_BAND_RULE),
  };
}

/**
 * `--service-cluster-ip-range` as kube-apiserver reads it: one or two comma-separated CIDRs of different families,
 * primary first; empty means the deprecated default 10.0.0.0/24. Throws with kube-apiserver's messages.
 */
export function parseServiceClusterIPRangeFlag(flag: string): ServiceIPRange[] {
  const entries = flag.trim() === '' ? [DEFAULT_SERVICE_CLUSTER_IP_RANGE] : flag.split(',').map((s) => s.trim());
  if (entries.length > 2) throw new Error('--service-cluster-ip-range must not contain more than two entries');
  const ranges = entries.map(serviceIPRange);
  if (ranges.length === 2 && ranges[0].family === ranges[1].family) {
    throw new Error('--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family');
  }
  const primaryHostBits = addressBits(ranges[0].family) - ranges[0].prefixLength;
  const primaryAddresses = primaryHostBits >= 16 ? 1n << 16n : 1n << BigInt(primaryHostBits);
  if (primaryAddresses < MIN_FLAG_RANGE_ADDRESSES) {
    throw new Error(`the service cluster IP range must be at least ${MIN_FLAG_RANGE_ADDRESSES} IP addresses`);
  }
  return ranges;
}

/** The IP at an offset (0 = network+1); undefined outside [0, size). */
export function ipAtOffset(range: ServiceIPRange, offset: bigint): string | undefined {
  if (offset < 0n || offset >= range.size) return undefined;
  return formatIP({ family: range.family, value: range.network + 1n + offset });
}

/** The offset of a usable address of this range; undefined for other families, outside, network or broadcast. */
export function offsetOfIP(range: ServiceIPRange, ipText: string): bigint | undefined {
  const ip = parseIPSloppy(ipText);
  if (!ip || ip.family !== range.family) return undefined;
  const offset = ip.value - range.network - 1n;
  return offset >= 0n && offset < range.size ? offset : undefined;
}

export function rangeContainsIP(range: ServiceIPRange, ipText: string): boolean {
  return offsetOfIP(range, ipText) !== undefined;
}

export function bandOfIP(range: ServiceIPRange, ipText: string): Band | undefined {
  const offset = offsetOfIP(range, ipText);
  return offset === undefined ? undefined : bandOfOffset(range, offset);
}

/** The ClusterIP of `kubernetes.default`: the first usable address of the primary range. */
export function kubernetesServiceIP(primary: ServiceIPRange): string | undefined {
  return ipAtOffset(primary, 0n);
}

/** Candidate addresses for a dynamic pick, in upstream's order (upper band from a random start, then lower). */
export function* dynamicIPCandidates(range: ServiceIPRange, random: RandomBelow = cryptoRandomBelow): Generator<string> {
  for (const offset of dynamicPickOrder(range, random)) yield formatIP({ family: range.family, value: range.network + 1n + offset });
}

/** The first range (in the given order) that holds `ipText` as a usable address. */
export function rangeHoldingIP(ranges: readonly ServiceIPRange[], ipText: string): ServiceIPRange | undefined {
  return ranges.find((range) => rangeContainsIP(range, ipText));
}
