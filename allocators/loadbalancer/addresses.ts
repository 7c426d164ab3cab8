// Address math for LoadBalancer pools: addresses as bigint, ranges and CIDRs. Pools read addresses strictly
// (api/ip.ts parseIPStrict): a pool entry must mean the same address to every reader.
import { addressBits, formatIP, parseIPStrict, type IPAddress, type IPFamily } from '../../api/ip.js';

/** An inclusive range of addresses of one family. */
export interface AddressRange {
  family: IPFamily;
  first: bigint;
  last: bigint;
}

export interface Prefix {
  family: IPFamily;
  /** The address as written (host bits kept). */
  address: bigint;
  length: number;
  /** The network the prefix covers. */
  range: AddressRange;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; detail: string };

export const IP_DETAIL = 'must be a valid IPv4 or IPv6 address (e.g. 10.9.8.7 or 2001:db8::ffff)';

export const formatPrefix = (family: IPFamily, address: bigint, length: number): string => `${formatIP({ family, value: address })}/${length}`;

const hostMask = (family: IPFamily, length: number): bigint => (1n << BigInt(addressBits(family) - length)) - 1n;

export function prefixRange(family: IPFamily, address: bigint, length: number): AddressRange {
  const mask = hostMask(family, length);
  return { family, first: address & ~mask, last: address | mask };
}

/** Parses `address/length`; the host bits may be set (an interface address such as 10.0.0.5/24). */
export function parsePrefix(text: string): Parsed<Prefix> {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, detail: 'must be a CIDR such as 192.168.1.0/24 or 2001:db8::/64' };
  const address = parseIPStrict(text.slice(0, slash));
  if (!address) return { ok: false, detail: `"${text.slice(0, slash)}" ${IP_DETAIL}` };
  const lengthText = text.slice(slash + 1);
  const bits = addressBits(address.family);
  const length = Number(lengthText);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText) || length > bits) {
    return { ok: false, detail: `prefix length must be an integer between 0 and ${bits}` };
  }
  return { ok: true, value: { family: address.family, address: address.value, length, range: prefixRange(address.family, address.value, length) } };
}

/** Parses a network CIDR. Host bits set is an error, not a silent widening (Go's ParseCIDR widens). */
export function parseCIDR(text: string): Parsed<Prefix> {
  const parsed = parsePrefix(text);
  if (!parsed.ok) return parsed;
  const { family, address, length, range } = parsed.value;
  if (address !== range.first) {
    const network = formatPrefix(family, range.first, length);
    const single = formatPrefix(family, address, addressBits(family));
    return { ok: false, detail: `host bits are set; write ${network} for the whole network or ${single} for this one address` };
  }
  return parsed;
}

/** Parses `a-b` (spaces around the dash allowed), both ends inclusive and of one family. */
export function parseRange(text: string): Parsed<AddressRange> {
  const parts = text.split('-');
  if (parts.length !== 2) return { ok: false, detail: 'must be a CIDR or a range such as 192.168.1.10-192.168.1.20' };
  const [start, end] = parts.map((p) => p.trim());
  const first = parseIPStrict(start);
  const last = parseIPStrict(end);
  if (!first) return { ok: false, detail: `start "${start}" ${IP_DETAIL}` };
  if (!last) return { ok: false, detail: `end "${end}" ${IP_DETAIL}` };
  if (first.family !== last.family) return { ok: false, detail: 'start and end must be of the same IP family' };
  if (first.value > last.value) return { ok: false, detail: `start IP ${start} is after the end IP ${end}` };
  return { ok: true, value: { family: first.family, first: first.value, last: last.value } };
}

export const rangeSize = (r: AddressRange): bigint => r.last - r.first + 1n;

export const rangesOverlap = (a: AddressRange, b: AddressRange): boolean =>
  a.family === b.family && a.first <= b.last && b.first <= a.last;

export const rangeContains = (r: AddressRange, a: IPAddress): boolean => r.family === a.family && r.first <= a.value && a.value <= r.last;

/** The minimal list of CIDRs that exactly cover a range (what ipaddr.Summarize does in MetalLB). */
export function rangeToCIDRs(r: AddressRange): string[] {
  const bits = addressBits(r.family);
  const out: string[] = [];
  let cursor = r.first;
  while (cursor <= r.last) {
    // The largest aligned block that starts at cursor and stays inside the range.
    let size = 0;
    while (size < bits && (cursor & ((1n << BigInt(size + 1)) - 1n)) === 0n && cursor + (1n << BigInt(size + 1)) - 1n <= r.last) size++;
    out.push(formatPrefix(r.family, cursor, bits - size));
    cursor += 1n << BigInt(size);
  }
  return out;
}

/** The text of a range: a CIDR when it is exactly one, else `first-last`. */
export function formatRange(r: AddressRange): string {
  const cidrs = rangeToCIDRs(r);
  return cidrs.length === 1 ? cidrs[0] : `${formatIP({ family: r.family, value: r.first })}-${formatIP({ family: r.family, value: r.last })}`;
}
