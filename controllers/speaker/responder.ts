// The ARP/NDP responder's decision: given one received frame, the interface it came in on and the addresses this
// node announces, answer with which bytes, or ignore and say why (for logs and counters).
// Differences from MetalLB on purpose: answers only where the address belongs to one of the interface's subnets
// (no "ARP flux" out of the wrong NIC) unless turned off; answers unicast NUD probes that carry no source
// link-layer option (#2920); sets Override on solicited advertisements; reports frames from another MAC that claim
// an address we announce (a sign of two announcers).
import { formatIP, parseIPStrict } from '../../api/ip.js';
import { parsePrefix, rangeContains, type Prefix } from '../../allocators/loadbalancer/addresses.js';
import {
  ALL_NODES,
  ARP_REQUEST,
  BROADCAST_MAC,
  UNSPECIFIED,
  buildArpReply,
  buildNeighborAdvertisement,
  ipv6MulticastMac,
  parseFrame,
  parseMac,
  formatMac,
  solicitedNodeMulticast,
  type ArpMessage,
  type EthernetHeader,
  type IPv6Header,
  type NeighborSolicitation,
} from './frames.js';

export interface ResponderInterface {
  name: string;
  /** Lowercase colon form. */
  mac: string;
  /** The networks of the interface's addresses. */
  subnets: readonly Prefix[];
}

/** Describes an interface from its name, MAC and addresses in `address/length` form (as os.networkInterfaces gives `cidr`). */
export function responderInterface(name: string, mac: string, addresses: readonly string[]): ResponderInterface {
  const parsedMac = parseMac(mac);
  if (!parsedMac) throw new Error(`invalid MAC address ${JSON.stringify(mac)} for interface ${name}`);
  const subnets = addresses.flatMap((a) => {
    const p = parsePrefix(a);
    return p.ok ? [p.value] : [];
  });
  return { name, mac: formatMac(parsedMac), subnets };
}

/** Whether two descriptions name the same interface, MAC and networks (prefixes hold bigints: no JSON). */
export function sameInterface(a: ResponderInterface, b: ResponderInterface): boolean {
  return (
    a.name === b.name &&
    a.mac === b.mac &&
    a.subnets.length === b.subnets.length &&
    a.subnets.every((s, k) => s.family === b.subnets[k].family && s.address === b.subnets[k].address && s.length === b.subnets[k].length)
  );
}

export interface Announcement {
  /** Interfaces the address may be answered on; undefined means any. */
  interfaces?: ReadonlySet<string>;
  /**
   * Answered, but no longer announced (no gratuitous frames): this node is handing it over (handover.ts), and one of
   * its bursts would move clients back to it just before it stops.
   */
  handingOver?: boolean;
  /**
   * Taken over from a leaving node that still answers it for a moment (handover.ts): its answers and this node's are
   * the overlap the handover asked for, not a conflict.
   */
  inherited?: boolean;
}

/** Canonical address text → how it is announced on this node. */
export type AnnouncementTable = ReadonlyMap<string, Announcement>;

export interface ResponderOptions {
  /** Answer only when the address is inside one of the interface's subnets (default true). */
  requireSubnet?: boolean;
}

export type IgnoreReason =
  | 'Malformed'
  | 'NotRequest'
  | 'OwnFrame'
  | 'NotAddressedToUs'
  | 'NotAnnounced'
  | 'NotOnThisInterface'
  | 'OutsideInterfaceSubnets'
  | 'AddressConflict';

export type ResponderDecision =
  | { action: 'reply'; protocol: 'arp' | 'ndp'; target: string; requester: string; frame: Buffer }
  | { action: 'ignore'; reason: IgnoreReason; detail: string; target?: string; claimant?: string };

const ignore = (reason: IgnoreReason, detail: string, target?: string): ResponderDecision => ({ action: 'ignore', reason, detail, target });

/** Undefined when `target` may be answered (and announced) on `iface`; else why not. */
export function eligibility(target: string, iface: ResponderInterface, table: AnnouncementTable, options: ResponderOptions): ResponderDecision | undefined {
  const announcement = table.get(target);
  if (!announcement) return ignore('NotAnnounced', `${target} is not announced by this node`, target);
  if (announcement.interfaces && !announcement.interfaces.has(iface.name)) {
    return ignore('NotOnThisInterface', `${target} is announced on ${[...announcement.interfaces].join(', ')}, not ${iface.name}`, target);
  }
  const address = parseIPStrict(target);
  if (options.requireSubnet !== false && address && !iface.subnets.some((s) => rangeContains(s.range, address))) {
    return ignore('OutsideInterfaceSubnets', `${target} is in none of the subnets of ${iface.name}`, target);
  }
  return undefined;
}

/** Another MAC claiming an announced address (its ARP sender or NA target): two nodes believe they announce it. */
const conflict = (ip: string, mac: string | undefined, iface: ResponderInterface, table: AnnouncementTable): ResponderDecision | undefined =>
  table.has(ip) && mac !== undefined && mac !== iface.mac
    ? { action: 'ignore', reason: 'AddressConflict', detail: `${mac} claims ${ip}, which this node announces`, target: ip, claimant: mac }
    : undefined;

function decideArp(eth: EthernetHeader, arp: ArpMessage, iface: ResponderInterface, table: AnnouncementTable, options: ResponderOptions): ResponderDecision {
  const claimed = arp.senderIp !== '0.0.0.0' ? conflict(arp.senderIp, arp.senderMac, iface, table) : undefined;
  if (claimed) return claimed;
  if (arp.op !== ARP_REQUEST) return ignore('NotRequest', 'ARP reply', arp.targetIp);
  if (arp.senderIp === arp.targetIp) return ignore('NotRequest', 'gratuitous ARP', arp.targetIp);
  if (eth.dst !== BROADCAST_MAC && eth.dst !== iface.mac) return ignore('NotAddressedToUs', `sent to ${eth.dst}`, arp.targetIp);
  const blocked = eligibility(arp.targetIp, iface, table, options);
  if (blocked) return blocked;
  // Probes from 0.0.0.0 (RFC 5227) are answered too: that is how the prober learns the address is taken.
  return { action: 'reply', protocol: 'arp', target: arp.targetIp, requester: `${arp.senderIp} (${arp.senderMac})`, frame: buildArpReply(arp, iface.mac, arp.targetIp) };
}

function decideSolicitation(eth: EthernetHeader, ipv6: IPv6Header, ns: NeighborSolicitation, iface: ResponderInterface, table: AnnouncementTable, options: ResponderOptions): ResponderDecision {
  // Texts the address parser refuses (e.g. IPv4-mapped) are never announced.
  if (!parseIPStrict(ns.target)) return ignore('NotAnnounced', `${ns.target} is not announced by this node`, ns.target);
  const group = solicitedNodeMulticast(ns.target);
  const toUs = (ipv6.dst === group && eth.dst === ipv6MulticastMac(group)) || (ipv6.dst === ns.target && eth.dst === iface.mac);
  if (!toUs) return ignore('NotAddressedToUs', `sent to ${ipv6.dst} (${eth.dst})`, ns.target);
  const blocked = eligibility(ns.target, iface, table, options);
  if (blocked) return blocked;
  const dad = ipv6.src === UNSPECIFIED;
  // RFC 4861 7.2.4: answer the soliciter unicast with S=1; a DAD probe (source ::) is answered to all nodes with
  // S=0, which defends the address. Without a source link-layer option (unicast NUD), reply to the frame's source MAC.
  const frame = buildNeighborAdvertisement({
    srcMac: iface.mac,
    dstMac: dad ? ipv6MulticastMac(ALL_NODES) : (ns.sourceLinkLayer ?? eth.src),
    srcIp: ns.target,
    dstIp: dad ? ALL_NODES : ipv6.src,
    target: ns.target,
    solicited: !dad,
    override: true,
    targetLinkLayer: iface.mac,
  });
  return { action: 'reply', protocol: 'ndp', target: ns.target, requester: `${ipv6.src} (${ns.sourceLinkLayer ?? eth.src})`, frame };
}

/** Decides what to do with one frame received on `iface`. Never throws. */
export function decide(frame: Uint8Array, iface: ResponderInterface, table: AnnouncementTable, options: ResponderOptions = {}): ResponderDecision {
  const parsed = parseFrame(frame);
  if (!parsed.ok) return ignore('Malformed', parsed.error);
  const f = parsed.frame;
  if (f.eth.src === iface.mac) return ignore('OwnFrame', 'sent by this interface');
  if (f.kind === 'arp') return decideArp(f.eth, f.arp, iface, table, options);
  if (f.ndp.type === 'NA') {
    return conflict(f.ndp.target, f.ndp.targetLinkLayer ?? f.eth.src, iface, table) ?? ignore('NotRequest', 'neighbor advertisement', f.ndp.target);
  }
  return decideSolicitation(f.eth, f.ipv6, f.ndp, iface, table, options);
}

/** Builds an announcement table from address texts (canonicalised), each with its interface restriction. */
export function announcementTable(entries: Iterable<[address: string, interfaces?: readonly string[]]>): Map<string, Announcement> {
  const table = new Map<string, Announcement>();
  for (const [address, interfaces] of entries) {
    const ip = parseIPStrict(address);
    if (!ip) throw new Error(`invalid address ${JSON.stringify(address)}`);
    table.set(formatIP(ip), { interfaces: interfaces ? new Set(interfaces) : undefined });
  }
  return table;
}
