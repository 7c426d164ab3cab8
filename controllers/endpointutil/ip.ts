// How the endpoint controllers read IPs in Pods, Services and Endpoints, as upstream does: Go's sloppy reading
// (api/ip.ts), on a field that may hold anything; and which addresses the API server refuses in endpoint objects.
import { formatIP, parseIPSloppy, toBytes, type IPAddress } from '../../api/ip.js';

export interface FieldIP extends IPAddress {
  /** Canonical text: dotted decimal without leading zeros, or RFC 5952 IPv6. */
  readonly canonical: string;
}

/** The IP an object's field holds; undefined for anything else (absent, not a string, zoned IPv6 like fe80::1%eth0). */
export function readIPField(value: unknown): FieldIP | undefined {
  if (typeof value !== 'string') return undefined;
  const ip = parseIPSloppy(value);
  return ip && { ...ip, canonical: formatIP(ip) };
}

/** Dotted decimal as Go prints it: no leading zeros, each octet 0-255. */
const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * The family and canonical text of an IP field, as `readIPField` reads them. Pod IPs are nearly always canonical
 * IPv4, which is recognised without parsing (a sync reads every pod's IPs: parsing them was a hot spot, issue 13).
 */
export function readIPFamily(value: unknown): { family: IPAddress['family']; canonical: string } | undefined {
  if (typeof value === 'string' && CANONICAL_IPV4.test(value)) return { family: 'IPv4', canonical: value };
  return readIPField(value);
}

/**
 * The addresses the API server's ValidateNonSpecialIP rejects in Endpoints and EndpointSlices: unspecified,
 * loopback, link-local unicast and link-local multicast. Other multicast passes, as upstream.
 */
export function isSpecialIP(ip: IPAddress): boolean {
  const b = toBytes(ip);
  if (ip.family === 'IPv4') {
    const unspecified = b.every((x) => x === 0);
    return unspecified || b[0] === 127 || (b[0] === 169 && b[1] === 254) || (b[0] === 224 && b[1] === 0 && b[2] === 0);
  }
  const unspecified = b.every((x) => x === 0);
  const loopback = b.slice(0, 15).every((x) => x === 0) && b[15] === 1;
  const linkLocalUnicast = b[0] === 0xfe && (b[1] & 0xc0) === 0x80;
  const linkLocalMulticast = b[0] === 0xff && b[1] === 0x02;
  return unspecified || loopback || linkLocalUnicast || linkLocalMulticast;
}
