// IP parsing the way the upstream controllers read pod and Endpoints IPs (the allocators' parser, which follows
// Go): sloppy IPv4 (leading zeros are decimal), IPv4-mapped IPv6 counts as IPv4, and the canonical text is what
// Go's net.IP.String() prints.
import { formatIP, parseIP as parseAddress, toBytes } from '../../api/ip.js';
import type { AddressType } from './constants.js';

export interface ParsedIP {
  family: AddressType;
  /** Canonical text: dotted decimal without leading zeros, or RFC 5952 IPv6. */
  canonical: string;
  bytes: number[];
}

/** Returns undefined for anything that is not an IP address (including zoned IPv6 like fe80::1%eth0). */
export function parseIP(text: unknown): ParsedIP | undefined {
  if (typeof text !== 'string' || text.length === 0) return undefined;
  const ip = parseAddress(text);
  return ip && { family: ip.family, canonical: formatIP(ip), bytes: toBytes(ip) };
}

/**
 * The addresses the API server's ValidateNonSpecialIP rejects in Endpoints and EndpointSlices: unspecified,
 * loopback, link-local unicast and link-local multicast. Other multicast passes, as upstream.
 */
export function isSpecialIP(ip: ParsedIP): boolean {
  const b = ip.bytes;
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
