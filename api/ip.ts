// The one IP module: IP literals read sloppily (k8s.io/utils/net.ParseIPSloppy, how the apiserver reads stored
// fields and the upstream controllers read pod and Endpoints IPs) or strictly (what Kubernetes' strict IP
// validation accepts), and printed in canonical form (Go's net.IP.String).
//
// ipaddr.js is not used for parsing here on purpose: it reads "010.0.0.1" as octal (8.0.0.1) where Kubernetes
// reads decimal (10.0.0.1), reads "::1.2.3.4" as IPv4-mapped, and accepts zone IDs ("fe80::1%eth0") that the
// apiserver rejects. The tests cross-check this parser against ipaddr.js on the inputs where both should agree.

export type IPFamily = 'IPv4' | 'IPv6';

/** An address as a number in its family's width (32 or 128 bits). IPv4-mapped IPv6 literals are IPv4, as in Go. */
export interface IPAddress {
  readonly family: IPFamily;
  readonly value: bigint;
}

/** What a literal looked like, beyond its value: needed for StrictIPCIDRValidation and canonical-form checks. */
export interface ParsedIPLiteral extends IPAddress {
  /** A literal that Go's strict parser (netip.ParseAddr) refuses: leading zeros in an IPv4 octet, 5+ hex digits. */
  readonly hasLeadingZeros: boolean;
  /** Written in IPv6 syntax but in ::ffff:0:0/96, e.g. "::ffff:10.0.0.1". */
  readonly isIPv4Mapped: boolean;
}

export function addressBits(family: IPFamily): number {
  return family === 'IPv4' ? 32 : 128;
}

export function otherFamily(family: IPFamily): IPFamily {
  return family === 'IPv4' ? 'IPv6' : 'IPv4';
}

export function isIPFamily(value: unknown): value is IPFamily {
  return value === 'IPv4' || value === 'IPv6';
}

/** Go's net.ParseIPSloppy: leading zeros in an IPv4 octet are decimal, "::ffff:a.b.c.d" is IPv4. */
export function parseIPSloppy(text: string): IPAddress | undefined {
  const literal = parseIPLiteral(text);
  return literal && { family: literal.family, value: literal.value };
}

/**
 * What Kubernetes' strict IP validation accepts: no leading zeros (refused by Go's net.ParseIP since 1.17 and by
 * netip.ParseAddr), and no IPv4-mapped IPv6, which Go reads as IPv4 and other readers as IPv6.
 */
export function parseIPStrict(text: string): IPAddress | undefined {
  const literal = parseIPLiteral(text);
  if (!literal || literal.hasLeadingZeros || literal.isIPv4Mapped) return undefined;
  return { family: literal.family, value: literal.value };
}

/** The sloppy reading of a literal, with what the strict reading would refuse. */
export function parseIPLiteral(text: string): ParsedIPLiteral | undefined {
  // Go decides the syntax by the first '.' or ':' in the string.
  for (const ch of text) {
    if (ch === '.') {
      const v4 = parseDottedQuad(text);
      return v4 && { family: 'IPv4', value: v4.value, hasLeadingZeros: v4.hasLeadingZeros, isIPv4Mapped: false };
    }
    if (ch === ':') return parseColonHex(text);
  }
  return undefined;
}

/** Go's net.IP.String(): dotted quad for IPv4 (and IPv4-mapped), RFC 5952 for IPv6. */
export function formatIP(ip: IPAddress): string {
  if (ip.family === 'IPv4') {
    const octets: number[] = [];
    for (let shift = 24n; shift >= 0n; shift -= 8n) octets.push(Number((ip.value >> shift) & 0xffn));
    return octets.join('.');
  }
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((ip.value >> shift) & 0xffffn));
  return compressGroups(groups);
}

/** An address from its network-order bytes (4 for IPv4, 16 for IPv6). */
export function fromBytes(bytes: ArrayLike<number>): IPAddress {
  let value = 0n;
  for (let i = 0; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i]);
  return { family: bytes.length === 4 ? 'IPv4' : 'IPv6', value };
}

/** The address's network-order bytes. */
export function toBytes(ip: IPAddress): number[] {
  const out = new Array<number>(addressBits(ip.family) / 8);
  let v = ip.value;
  for (let i = out.length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The canonical text of a literal read sloppily, or undefined when it is no IP. */
export function canonicalIPSloppy(text: string): string | undefined {
  const ip = parseIPSloppy(text);
  return ip && formatIP(ip);
}

/** The canonical text of a literal read strictly, or undefined when strict reading refuses it. */
export function canonicalIPStrict(text: string): string | undefined {
  const ip = parseIPStrict(text);
  return ip && formatIP(ip);
}

/** The family of a literal read sloppily. */
export function familyOfIP(text: string): IPFamily | undefined {
  return parseIPSloppy(text)?.family;
}

function parseDottedQuad(text: string): { value: bigint; hasLeadingZeros: boolean } | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  let hasLeadingZeros = false;
  for (const part of parts) {
    // Decimal even with leading zeros: Kubernetes kept Go's pre-1.17 reading for stored data (issue 100895).
    if (!/^[0-9]+$/.test(part)) return undefined;
    const octet = Number.parseInt(part, 10);
    if (octet > 0xff) return undefined;
    if (part.length > 1 && part.startsWith('0')) hasLeadingZeros = true;
    value = (value << 8n) | BigInt(octet);
  }
  return { value, hasLeadingZeros };
}

function parseColonHex(text: string): ParsedIPLiteral | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = splitGroups(halves[0]);
  const tail = halves.length === 2 ? splitGroups(halves[1]) : [];
  if (head === undefined || tail === undefined) return undefined;

  // A dotted IPv4 may only end the address and stands for two groups.
  const all = [...head, ...tail];
  const dottedAt = all.findIndex((group) => group.includes('.'));
  if (dottedAt !== -1 && dottedAt !== all.length - 1) return undefined;

  let hasLeadingZeros = false;
  const words: number[] = [];
  const toWords = (groups: string[]): number[] | undefined => {
    const out: number[] = [];
    for (const group of groups) {
      if (group.includes('.')) {
        const v4 = parseDottedQuad(group);
        if (!v4) return undefined;
        hasLeadingZeros ||= v4.hasLeadingZeros;
        out.push(Number(v4.value >> 16n), Number(v4.value & 0xffffn));
        continue;
      }
      if (!/^[0-9a-fA-F]+$/.test(group)) return undefined;
      const word = Number.parseInt(group, 16);
      if (word > 0xffff) return undefined;
      if (group.length > 4) hasLeadingZeros = true;
      out.push(word);
    }
    return out;
  };
  const headWords = toWords(head);
  const tailWords = toWords(tail);
  if (!headWords || !tailWords) return undefined;

  if (halves.length === 2) {
    // "::" must stand for at least one zero group.
    const missing = 8 - headWords.length - tailWords.length;
    if (missing < 1) return undefined;
    words.push(...headWords, ...new Array<number>(missing).fill(0), ...tailWords);
  } else {
    if (headWords.length !== 8) return undefined;
    words.push(...headWords);
  }

  const value = words.reduce((acc, word) => (acc << 16n) | BigInt(word), 0n);
  if (value >> 32n === 0xffffn) {
    return { family: 'IPv4', value: value & 0xffffffffn, hasLeadingZeros, isIPv4Mapped: true };
  }
  return { family: 'IPv6', value, hasLeadingZeros, isIPv4Mapped: false };
}

/** "" (one side of a leading/trailing "::") has no groups; otherwise every group must be non-empty. */
function splitGroups(side: string): string[] | undefined {
  if (side === '') return [];
  const groups = side.split(':');
  return groups.some((group) => group === '') ? undefined : groups;
}

/** RFC 5952 as Go prints it: lowercase, no leading zeros, the first longest run of 2+ zero groups becomes "::". */
function compressGroups(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
