// IP parsing the way the upstream controllers read pod and Endpoints IPs: sloppy IPv4 (leading zeros are
// decimal), IPv4-mapped IPv6 counts as IPv4, and the canonical text is what Go's net.IP.String() prints.
import ipaddr from 'ipaddr.js';
import type { AddressType } from './constants.js';

export interface ParsedIP {
  family: AddressType;
  /** Canonical text: dotted decimal without leading zeros, or RFC 5952 IPv6. */
  canonical: string;
  bytes: number[];
}

const IPV4_SLOPPY = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/;

function parseIPv4Sloppy(text: string): ParsedIP | undefined {
  const match = IPV4_SLOPPY.exec(text);
  if (!match) return undefined;
  const bytes = match.slice(1, 5).map((part) => Number.parseInt(part, 10));
  if (bytes.some((b) => !(b >= 0 && b <= 255))) return undefined;
  return { family: 'IPv4', canonical: bytes.join('.'), bytes };
}

/** Returns undefined for anything that is not an IP address (including zoned IPv6 like fe80::1%eth0). */
export function parseIP(text: unknown): ParsedIP | undefined {
  if (typeof text !== 'string' || text.length === 0) return undefined;
  if (!text.includes(':')) return parseIPv4Sloppy(text);
  if (text.includes('%') || !ipaddr.IPv6.isValid(text)) return undefined;
  const address = ipaddr.IPv6.parse(text);
  if (address.isIPv4MappedAddress()) {
    const v4 = address.toIPv4Address();
    return { family: 'IPv4', canonical: v4.toString(), bytes: v4.toByteArray() };
  }
  return { family: 'IPv6', canonical: address.toRFC5952String(), bytes: address.toByteArray() };
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
