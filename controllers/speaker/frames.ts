// Ethernet frames the speaker reads and writes: ARP (RFC 826, RFC 5227 probes and announcements) and IPv6
// Neighbor Discovery (RFC 4861 Neighbor Solicitation / Advertisement) over Ethernet.
// The parser never throws: any input gives a frame or an error text. The builders take validated inputs.
import { formatIP, fromBytes, parseIPStrict, toBytes } from '../../api/ip.js';

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';
export const ALL_NODES = 'ff02::1';
export const UNSPECIFIED = '::';

const ETH_HEADER = 14;
const ARP_LENGTH = 28;
const IPV6_HEADER = 40;
const ICMPV6 = 58;
const NDP_LENGTH = 24; // type, code, checksum, flags/reserved, target
const MIN_FRAME = 60; // without the FCS
const OPTION_SOURCE_LL = 1;
const OPTION_TARGET_LL = 2;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;
const NA_ROUTER = 0x80;
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export interface EthernetHeader {
  dst: string;
  src: string;
  etherType: number;
}

export interface ArpMessage {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export interface IPv6Header {
  src: string;
  dst: string;
  hopLimit: number;
}

export interface NeighborSolicitation {
  type: 'NS';
  target: string;
  /** The source link-layer address option; absent in DAD probes and often in unicast NUD probes. */
  sourceLinkLayer?: string;
}

export interface NeighborAdvertisement {
  type: 'NA';
  target: string;
  router: boolean;
  solicited: boolean;
  override: boolean;
  targetLinkLayer?: string;
}

export type Frame =
  | { kind: 'arp'; eth: EthernetHeader; arp: ArpMessage }
  | { kind: 'ndp'; eth: EthernetHeader; ipv6: IPv6Header; ndp: NeighborSolicitation | NeighborAdvertisement };

export type ParseResult = { ok: true; frame: Frame } | { ok: false; error: string };

// ---- addresses -------------------------------------------------------------------------------------------------

const hex2 = (b: number): string => b.toString(16).padStart(2, '0');

export const formatMac = (bytes: Uint8Array, offset = 0): string =>
  Array.from(bytes.subarray(offset, offset + 6), hex2).join(':');

/** Parses `aa:bb:cc:dd:ee:ff` (or with dashes); undefined when malformed. */
export function parseMac(text: string): Buffer | undefined {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return undefined;
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

const macBytes = (text: string): Buffer => {
  const mac = parseMac(text);
  if (!mac) throw new Error(`invalid MAC address ${JSON.stringify(text)}`);
  return mac;
};

const ipBytes = (text: string, family: 'IPv4' | 'IPv6'): Buffer => {
  const ip = parseIPStrict(text);
  if (!ip || ip.family !== family) throw new Error(`invalid ${family} address ${JSON.stringify(text)}`);
  return Buffer.from(toBytes(ip));
};

const ipText = (bytes: Uint8Array, offset: number, length: 4 | 16): string => formatIP(fromBytes(bytes.subarray(offset, offset + length)));

const solicitedNodeBytes = (b: Uint8Array, offset = 0): number[] => [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, b[offset + 13], b[offset + 14], b[offset + 15]];

/** The solicited-node multicast group of an IPv6 address: ff02::1:ffXX:XXXX with its low 24 bits. */
export const solicitedNodeMulticast = (address: string): string => formatIP(fromBytes(solicitedNodeBytes(ipBytes(address, 'IPv6'))));

/** The Ethernet address of an IPv6 multicast group: 33:33 and the group's low 32 bits (RFC 2464). */
export function ipv6MulticastMac(group: string): string {
  const b = ipBytes(group, 'IPv6');
  return formatMac(Buffer.from([0x33, 0x33, b[12], b[13], b[14], b[15]]));
}

// ---- parsing ---------------------------------------------------------------------------------------------------

const fail = (error: string): ParseResult => ({ ok: false, error });

export function parseFrame(buf: Uint8Array): ParseResult {
  if (!(buf instanceof Uint8Array)) return fail('not a byte buffer');
  if (buf.length < ETH_HEADER) return fail(`frame of ${buf.length} bytes is shorter than an Ethernet header`);
  const eth: EthernetHeader = { dst: formatMac(buf, 0), src: formatMac(buf, 6), etherType: (buf[12] << 8) | buf[13] };
  if (eth.etherType === ETHERTYPE_ARP) return parseArp(buf, eth);
  if (eth.etherType === ETHERTYPE_IPV6) return parseNdp(buf, eth);
  return fail(`ethertype 0x${eth.etherType.toString(16).padStart(4, '0')} is neither ARP nor IPv6`);
}

function parseArp(buf: Uint8Array, eth: EthernetHeader): ParseResult {
  if (buf.length < ETH_HEADER + ARP_LENGTH) return fail('ARP packet is truncated');
  const p = ETH_HEADER;
  const htype = (buf[p] << 8) | buf[p + 1];
  const ptype = (buf[p + 2] << 8) | buf[p + 3];
  if (htype !== 1 || ptype !== 0x0800 || buf[p + 4] !== 6 || buf[p + 5] !== 4) return fail('ARP packet is not Ethernet/IPv4');
  const op = (buf[p + 6] << 8) | buf[p + 7];
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return fail(`ARP operation ${op} is neither request nor reply`);
  const arp: ArpMessage = {
    op,
    senderMac: formatMac(buf, p + 8),
    senderIp: ipText(buf, p + 14, 4),
    targetMac: formatMac(buf, p + 18),
    targetIp: ipText(buf, p + 24, 4),
  };
  return { ok: true, frame: { kind: 'arp', eth, arp } };
}

/** The one's-complement sum used by the Internet checksum, folded to 16 bits. */
function onesComplementSum(chunks: Uint8Array[]): number {
  let sum = 0;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i += 2) sum += (chunk[i] << 8) | (i + 1 < chunk.length ? chunk[i + 1] : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The ICMPv6 checksum over the pseudo-header (source, destination, upper-layer length, next header) and the message. */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, message: Uint8Array): number {
  const pseudo = Buffer.alloc(8);
  pseudo.writeUInt32BE(message.length, 0);
  pseudo[7] = ICMPV6;
  return ~onesComplementSum([src, dst, pseudo, message]) & 0xffff;
}

const isMulticast = (bytes: Uint8Array, offset: number): boolean => bytes[offset] === 0xff;

function parseOptions(msg: Uint8Array, from: number): { source?: string; target?: string } | string {
  const out: { source?: string; target?: string } = {};
  for (let o = from; o < msg.length; ) {
    if (o + 2 > msg.length) return 'truncated option';
    const len = msg[o + 1] * 8;
    if (len === 0) return 'option of length 0';
    if (o + len > msg.length) return 'option runs past the message';
    const isEthernetAddress = len === 8;
    if (msg[o] === OPTION_SOURCE_LL && isEthernetAddress) out.source = formatMac(msg, o + 2);
    if (msg[o] === OPTION_TARGET_LL && isEthernetAddress) out.target = formatMac(msg, o + 2);
    o += len;
  }
  return out;
}

function parseNdp(buf: Uint8Array, eth: EthernetHeader): ParseResult {
  const ip = ETH_HEADER;
  if (buf.length < ip + IPV6_HEADER) return fail('IPv6 header is truncated');
  if (buf[ip] >> 4 !== 6) return fail('IP version is not 6');
  const payloadLength = (buf[ip + 4] << 8) | buf[ip + 5];
  if (buf[ip + 6] !== ICMPV6) return fail(`next header ${buf[ip + 6]} is not ICMPv6`);
  const start = ip + IPV6_HEADER;
  if (payloadLength > buf.length - start) return fail('IPv6 payload is truncated');
  const msg = buf.subarray(start, start + payloadLength);
  if (msg.length < 1) return fail('ICMPv6 message is empty');
  const type = msg[0];
  if (type !== ICMPV6_NEIGHBOR_SOLICITATION && type !== ICMPV6_NEIGHBOR_ADVERTISEMENT) return fail(`ICMPv6 type ${type} is not neighbor discovery`);
  if (msg.length < NDP_LENGTH) return fail('neighbor discovery message is truncated');
  // RFC 4861 7.1: hop limit 255 proves the sender is on-link; code 0; valid checksum.
  const ipv6: IPv6Header = { src: ipText(buf, ip + 8, 16), dst: ipText(buf, ip + 24, 16), hopLimit: buf[ip + 7] };
  if (ipv6.hopLimit !== 255) return fail(`hop limit ${ipv6.hopLimit} is not 255`);
  if (msg[1] !== 0) return fail(`ICMPv6 code ${msg[1]} is not 0`);
  if (icmpv6Checksum(buf.subarray(ip + 8, ip + 24), buf.subarray(ip + 24, ip + 40), msg) !== 0) return fail('bad ICMPv6 checksum');
  if (isMulticast(msg, 8)) return fail('target address is multicast');
  const options = parseOptions(msg, NDP_LENGTH);
  if (typeof options === 'string') return fail(options);
  const target = ipText(msg, 8, 16);
  if (type === ICMPV6_NEIGHBOR_SOLICITATION) {
    const unspecified = ipv6.src === UNSPECIFIED;
    const toGroup = solicitedNodeBytes(msg, 8).every((b, i) => buf[ip + 24 + i] === b);
    if (unspecified && !toGroup) return fail('DAD probe not sent to the solicited-node group');
    if (unspecified && options.source) return fail('DAD probe carries a source link-layer option');
    return { ok: true, frame: { kind: 'ndp', eth, ipv6, ndp: { type: 'NS', target, sourceLinkLayer: options.source } } };
  }
  const flags = msg[4];
  const ndp: NeighborAdvertisement = {
    type: 'NA',
    target,
    router: (flags & NA_ROUTER) !== 0,
    solicited: (flags & NA_SOLICITED) !== 0,
    override: (flags & NA_OVERRIDE) !== 0,
    targetLinkLayer: options.target,
  };
  if (ndp.solicited && isMulticast(buf, ip + 24)) return fail('solicited advertisement sent to a multicast address');
  return { ok: true, frame: { kind: 'ndp', eth, ipv6, ndp } };
}

// ---- building --------------------------------------------------------------------------------------------------

export interface BuildOptions {
  /** Pad to the 60-byte Ethernet minimum (default true; some drivers do not pad frames from packet sockets). */
  pad?: boolean;
}

function ethernet(dst: string, src: string, etherType: number, payload: Buffer, options: BuildOptions = {}): Buffer {
  const length = ETH_HEADER + payload.length;
  const frame = Buffer.alloc(options.pad === false ? length : Math.max(length, MIN_FRAME));
  macBytes(dst).copy(frame, 0);
  macBytes(src).copy(frame, 6);
  frame.writeUInt16BE(etherType, 12);
  payload.copy(frame, ETH_HEADER);
  return frame;
}

export interface ArpFrame extends ArpMessage {
  ethDst: string;
  ethSrc: string;
}

export function buildArp(a: ArpFrame, options?: BuildOptions): Buffer {
  const p = Buffer.alloc(ARP_LENGTH);
  p.writeUInt16BE(1, 0);
  p.writeUInt16BE(0x0800, 2);
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(a.op, 6);
  macBytes(a.senderMac).copy(p, 8);
  ipBytes(a.senderIp, 'IPv4').copy(p, 14);
  macBytes(a.targetMac).copy(p, 18);
  ipBytes(a.targetIp, 'IPv4').copy(p, 24);
  return ethernet(a.ethDst, a.ethSrc, ETHERTYPE_ARP, p, options);
}

/** A broadcast who-has request (what arping sends). */
export const buildArpRequest = (mac: string, senderIp: string, targetIp: string, options?: BuildOptions): Buffer =>
  buildArp({ op: ARP_REQUEST, ethDst: BROADCAST_MAC, ethSrc: mac, senderMac: mac, senderIp, targetMac: ZERO_MAC, targetIp }, options);

/** The reply to `request` saying `ip` is at `mac`, unicast to the requester. */
export const buildArpReply = (request: ArpMessage, mac: string, ip: string, options?: BuildOptions): Buffer =>
  buildArp(
    { op: ARP_REPLY, ethDst: request.senderMac, ethSrc: mac, senderMac: mac, senderIp: ip, targetMac: request.senderMac, targetIp: request.senderIp },
    options,
  );

/** Gratuitous ARP, broadcast, sender = target = `ip`, target MAC ff:ff:ff:ff:ff:ff; request and reply forms (some hosts heed only one). */
export const buildGratuitousArp = (mac: string, ip: string, form: 'request' | 'reply', options?: BuildOptions): Buffer =>
  buildArp(
    { op: form === 'request' ? ARP_REQUEST : ARP_REPLY, ethDst: BROADCAST_MAC, ethSrc: mac, senderMac: mac, senderIp: ip, targetMac: BROADCAST_MAC, targetIp: ip },
    options,
  );

function icmpv6Frame(ethDst: string, ethSrc: string, src: string, dst: string, message: Buffer): Buffer {
  const srcBytes = ipBytes(src, 'IPv6');
  const dstBytes = ipBytes(dst, 'IPv6');
  message.writeUInt16BE(0, 2);
  message.writeUInt16BE(icmpv6Checksum(srcBytes, dstBytes, message), 2);
  const packet = Buffer.alloc(IPV6_HEADER + message.length);
  packet.writeUInt32BE(0x60000000, 0); // version 6, traffic class 0, flow label 0
  packet.writeUInt16BE(message.length, 4);
  packet[6] = ICMPV6;
  packet[7] = 255;
  srcBytes.copy(packet, 8);
  dstBytes.copy(packet, 24);
  message.copy(packet, IPV6_HEADER);
  return ethernet(ethDst, ethSrc, ETHERTYPE_IPV6, packet);
}

function ndpMessage(type: number, flags: number, target: string, option?: { type: number; mac: string }): Buffer {
  const msg = Buffer.alloc(NDP_LENGTH + (option ? 8 : 0));
  msg[0] = type;
  msg[4] = flags;
  ipBytes(target, 'IPv6').copy(msg, 8);
  if (option) {
    msg[NDP_LENGTH] = option.type;
    msg[NDP_LENGTH + 1] = 1;
    macBytes(option.mac).copy(msg, NDP_LENGTH + 2);
  }
  return msg;
}

export interface SolicitationSpec {
  srcMac: string;
  /** '::' for a DAD probe. */
  srcIp: string;
  target: string;
  /** Default: the target's solicited-node group (multicast resolution); the target itself for a unicast NUD probe. */
  dstIp?: string;
  /** Default: the multicast MAC of dstIp when it is multicast. */
  dstMac?: string;
  /** Include the source link-layer option (default: yes unless srcIp is '::'). */
  sourceLinkLayer?: boolean;
}

export function buildNeighborSolicitation(s: SolicitationSpec): Buffer {
  const dstIp = s.dstIp ?? solicitedNodeMulticast(s.target);
  const dstMac = s.dstMac ?? ipv6MulticastMac(dstIp);
  const withOption = s.sourceLinkLayer ?? s.srcIp !== UNSPECIFIED;
  const msg = ndpMessage(ICMPV6_NEIGHBOR_SOLICITATION, 0, s.target, withOption ? { type: OPTION_SOURCE_LL, mac: s.srcMac } : undefined);
  return icmpv6Frame(dstMac, s.srcMac, s.srcIp, dstIp, msg);
}

export interface AdvertisementSpec {
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  target: string;
  router?: boolean;
  solicited: boolean;
  /** Override: replace the neighbour's cached link-layer address (set for addresses that are not anycast). */
  override: boolean;
  /** The target link-layer option; undefined leaves it out. */
  targetLinkLayer?: string;
}

export function buildNeighborAdvertisement(a: AdvertisementSpec): Buffer {
  const flags = (a.router ? NA_ROUTER : 0) | (a.solicited ? NA_SOLICITED : 0) | (a.override ? NA_OVERRIDE : 0);
  const option = a.targetLinkLayer ? { type: OPTION_TARGET_LL, mac: a.targetLinkLayer } : undefined;
  return icmpv6Frame(a.dstMac, a.srcMac, a.srcIp, a.dstIp, ndpMessage(ICMPV6_NEIGHBOR_ADVERTISEMENT, flags, a.target, option));
}

/** An unsolicited advertisement to all nodes (the IPv6 counterpart of gratuitous ARP): S=0, O=1, with the target link-layer option. */
export const buildUnsolicitedNeighborAdvertisement = (mac: string, ip: string, srcIp: string = ip): Buffer =>
  buildNeighborAdvertisement({
    srcMac: mac,
    dstMac: ipv6MulticastMac(ALL_NODES),
    srcIp,
    dstIp: ALL_NODES,
    target: ip,
    solicited: false,
    override: true,
    targetLinkLayer: mac,
  });
