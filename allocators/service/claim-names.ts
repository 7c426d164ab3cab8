// Names of the cluster-scoped claim objects. An allocated value is held by creating an object whose name is
// derived from the value alone, so the API server refuses a second creator of the same value.
//
// Names are DNS-1123 labels (so they fit any resource's naming rules) and carry the family:
//   10.96.0.10   -> ipv4-10-96-0-10
//   2001:db8::a  -> ipv6-2001-db8-0-0-0-0-0-a     (all eight groups: no "::", which has no DNS-safe spelling)
//   nodePort 30080 -> nodeport-30080              (one per number: NodePorts are not per protocol, spec §4)
// Every value has exactly one name, and a name decodes only if it is that exact spelling (no leading zeros,
// lowercase), so value -> name is injective and name -> value -> name is the identity.
import { type IPFamily, formatIP, parseIPSloppy } from '../../api/ip.js';

export type ClaimValue =
  | { readonly kind: 'ip'; readonly family: IPFamily; readonly ip: string }
  | { readonly kind: 'nodePort'; readonly port: number };

const IPV4_NAME = /^ipv4-((?:0|[1-9][0-9]{0,2})(?:-(?:0|[1-9][0-9]{0,2})){3})$/;
const IPV6_NAME = /^ipv6-((?:0|[1-9a-f][0-9a-f]{0,3})(?:-(?:0|[1-9a-f][0-9a-f]{0,3})){7})$/;
const NODE_PORT_NAME = /^nodeport-([1-9][0-9]{0,4})$/;

/** The claim for an IP literal (any spelling the apiserver accepts); the value is kept in canonical form. */
export function ipClaim(ipText: string): ClaimValue {
  const ip = parseIPSloppy(ipText);
  if (!ip) throw new Error(`not an IP address: ${JSON.stringify(ipText)}`);
  return { kind: 'ip', family: ip.family, ip: formatIP(ip) };
}

export type NodePortClaimValue = Extract<ClaimValue, { kind: 'nodePort' }>;

export function nodePortClaim(port: number): NodePortClaimValue {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`not a port number: ${port}`);
  return { kind: 'nodePort', port };
}

export function claimName(value: ClaimValue): string {
  if (value.kind === 'nodePort') return `nodeport-${nodePortClaim(value.port).port}`;
  const ip = parseIPSloppy(value.ip);
  if (!ip || ip.family !== value.family) throw new Error(`not an ${value.family} address: ${JSON.stringify(value.ip)}`);
  if (ip.family === 'IPv4') return `ipv4-${formatIP(ip).replaceAll('.', '-')}`;
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((ip.value >> shift) & 0xffffn).toString(16));
  return `ipv6-${groups.join('-')}`;
}

/** The value a claim name stands for; undefined for any name claimName would not produce. */
export function claimValueFromName(name: string): ClaimValue | undefined {
  const port = NODE_PORT_NAME.exec(name);
  if (port) {
    const value = Number(port[1]);
    return value <= 65535 ? { kind: 'nodePort', port: value } : undefined;
  }
  const v4 = IPV4_NAME.exec(name);
  if (v4) {
    const octets = v4[1].split('-').map(Number);
    return octets.every((octet) => octet <= 255) ? { kind: 'ip', family: 'IPv4', ip: octets.join('.') } : undefined;
  }
  const v6 = IPV6_NAME.exec(name);
  if (v6) {
    const value = v6[1].split('-').reduce((acc, group) => (acc << 16n) | BigInt(`0x${group}`), 0n);
    // The IPv4-mapped block belongs to IPv4 (it parses as IPv4), so it has no IPv6 name.
    if (value >> 32n === 0xffffn) return undefined;
    return { kind: 'ip', family: 'IPv6', ip: formatIP({ family: 'IPv6', value }) };
  }
  return undefined;
}
