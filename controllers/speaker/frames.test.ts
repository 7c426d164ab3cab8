import { describe, expect, it } from '@jest/globals';
import {
  buildArp,
  buildArpReply,
  buildArpRequest,
  buildGratuitousArp,
  buildNeighborAdvertisement,
  buildNeighborSolicitation,
  buildUnsolicitedNeighborAdvertisement,
  icmpv6Checksum,
  ipv6MulticastMac,
  parseFrame,
  parseMac,
  solicitedNodeMulticast,
  type Frame,
} from './frames.js';
import { KERNEL_MAC, REQUESTER_LINK_LOCAL, REQUESTER_MAC, frameOf } from '../../testing/frame-vectors.js';

const parsed = (buf: Buffer): Frame => {
  const r = parseFrame(buf);
  if (!r.ok) throw new Error(r.error);
  return r.frame;
};
const errorOf = (buf: Uint8Array): string => {
  const r = parseFrame(buf);
  return r.ok ? 'parsed' : r.error;
};
/** A copy of `buf` with `edit` applied. */
const edited = (buf: Buffer, edit: (b: Buffer) => void): Buffer => {
  const copy = Buffer.from(buf);
  edit(copy);
  return copy;
};
const fixChecksum = (b: Buffer): void => {
  b.writeUInt16BE(0, 56);
  b.writeUInt16BE(icmpv6Checksum(b.subarray(22, 38), b.subarray(38, 54), b.subarray(54, 54 + b.readUInt16BE(18))), 56);
};

describe('ARP frames', () => {
  it('parses what arping and the kernel send', () => {
    expect(parsed(frameOf('arpingRequest'))).toEqual({
      kind: 'arp',
      eth: { dst: 'ff:ff:ff:ff:ff:ff', src: REQUESTER_MAC, etherType: 0x0806 },
      arp: { op: 1, senderMac: REQUESTER_MAC, senderIp: '10.250.77.2', targetMac: 'ff:ff:ff:ff:ff:ff', targetIp: '10.250.77.1' },
    });
    expect(parsed(frameOf('kernelArpReply'))).toMatchObject({ arp: { op: 2, senderMac: KERNEL_MAC, senderIp: '10.250.77.1', targetIp: '10.250.77.2' } });
    expect(parsed(frameOf('arpingGratuitousRequest'))).toMatchObject({ arp: { op: 1, senderIp: '10.250.77.2', targetIp: '10.250.77.2' } });
    expect(parsed(frameOf('arpingGratuitousReply'))).toMatchObject({ eth: { dst: 'ff:ff:ff:ff:ff:ff' }, arp: { op: 2, targetMac: REQUESTER_MAC } });
  });

  it('builds the reply the kernel builds, byte for byte, and pads to 60 bytes by default', () => {
    const request = parsed(frameOf('arpingRequest'));
    if (request.kind !== 'arp') throw new Error('not ARP');
    expect(buildArpReply(request.arp, KERNEL_MAC, '10.250.77.1', { pad: false })).toEqual(frameOf('kernelArpReply'));
    const padded = buildArpReply(request.arp, KERNEL_MAC, '10.250.77.1');
    expect(padded).toHaveLength(60);
    expect(padded.subarray(0, 42)).toEqual(frameOf('kernelArpReply'));
    expect(padded.subarray(42).every((b) => b === 0)).toBe(true);
  });

  it('builds gratuitous ARP in both forms (the request form equals arping -U)', () => {
    expect(buildGratuitousArp(REQUESTER_MAC, '10.250.77.2', 'request', { pad: false })).toEqual(frameOf('arpingGratuitousRequest'));
    expect(parsed(buildGratuitousArp(REQUESTER_MAC, '10.250.77.2', 'reply'))).toMatchObject({
      eth: { dst: 'ff:ff:ff:ff:ff:ff', src: REQUESTER_MAC },
      arp: { op: 2, senderMac: REQUESTER_MAC, senderIp: '10.250.77.2', targetMac: 'ff:ff:ff:ff:ff:ff', targetIp: '10.250.77.2' },
    });
    expect(parsed(buildArpRequest(KERNEL_MAC, '0.0.0.0', '10.0.0.1'))).toMatchObject({ arp: { op: 1, targetMac: '00:00:00:00:00:00', senderIp: '0.0.0.0' } });
  });

  it('refuses what is not Ethernet/IPv4 ARP', () => {
    expect(errorOf(frameOf('kernelArpReply').subarray(0, 41))).toBe('ARP packet is truncated');
    expect(errorOf(edited(frameOf('arpingRequest'), (b) => b.writeUInt16BE(6, 14)))).toBe('ARP packet is not Ethernet/IPv4');
    expect(errorOf(edited(frameOf('arpingRequest'), (b) => b.writeUInt16BE(3, 20)))).toBe('ARP operation 3 is neither request nor reply');
    expect(errorOf(edited(frameOf('arpingRequest'), (b) => b.writeUInt16BE(0x0800, 12)))).toBe('ethertype 0x0800 is neither ARP nor IPv6');
    expect(errorOf(Buffer.alloc(5))).toBe('frame of 5 bytes is shorter than an Ethernet header');
    expect(() => buildArp({ op: 1, ethDst: 'nope', ethSrc: KERNEL_MAC, senderMac: KERNEL_MAC, senderIp: '1.2.3.4', targetMac: KERNEL_MAC, targetIp: '1.2.3.4' })).toThrow(
      'invalid MAC address "nope"',
    );
  });
});

describe('NDP frames', () => {
  it('derives solicited-node groups and multicast MACs', () => {
    expect(solicitedNodeMulticast('fd00:5b::1')).toBe('ff02::1:ff00:1');
    expect(solicitedNodeMulticast('2001:db8::abcd:1234')).toBe('ff02::1:ffcd:1234');
    expect(ipv6MulticastMac('ff02::1:ff00:1')).toBe('33:33:ff:00:00:01');
    expect(ipv6MulticastMac('ff02::1')).toBe('33:33:00:00:00:01');
    expect(parseMac('AA-15-3D-BD-BB-9D')).toEqual(Buffer.from('aa153dbdbb9d', 'hex'));
    expect(parseMac('aa:15:3d:bd:bb')).toBeUndefined();
  });

  it('parses the solicitation ndisc6 sends and the kernel advertisements', () => {
    expect(parsed(frameOf('ndisc6Solicitation'))).toEqual({
      kind: 'ndp',
      eth: { dst: '33:33:ff:00:00:01', src: REQUESTER_MAC, etherType: 0x86dd },
      ipv6: { src: REQUESTER_LINK_LOCAL, dst: 'ff02::1:ff00:1', hopLimit: 255 },
      ndp: { type: 'NS', target: 'fd00:5b::1', sourceLinkLayer: REQUESTER_MAC },
    });
    expect(parsed(frameOf('kernelSolicitedAdvertisement'))).toMatchObject({
      ipv6: { src: 'fd00:5b::1', dst: REQUESTER_LINK_LOCAL },
      ndp: { type: 'NA', target: 'fd00:5b::1', router: false, solicited: true, override: true, targetLinkLayer: KERNEL_MAC },
    });
    expect(parsed(frameOf('kernelUnsolicitedAdvertisement'))).toMatchObject({
      ipv6: { dst: 'ff02::1' },
      ndp: { type: 'NA', solicited: false, override: true, targetLinkLayer: REQUESTER_MAC },
    });
    // A DAD probe: source ::, no source link-layer option; the nonce option is skipped.
    expect(parsed(frameOf('kernelDadProbe'))).toMatchObject({ ipv6: { src: '::', dst: 'ff02::1:ff00:2' }, ndp: { type: 'NS', target: 'fd00:5b::2', sourceLinkLayer: undefined } });
  });

  it('builds the advertisements the kernel builds, byte for byte', () => {
    expect(
      buildNeighborAdvertisement({
        srcMac: KERNEL_MAC,
        dstMac: REQUESTER_MAC,
        srcIp: 'fd00:5b::1',
        dstIp: REQUESTER_LINK_LOCAL,
        target: 'fd00:5b::1',
        solicited: true,
        override: true,
        targetLinkLayer: KERNEL_MAC,
      }),
    ).toEqual(frameOf('kernelSolicitedAdvertisement'));
    expect(buildUnsolicitedNeighborAdvertisement(REQUESTER_MAC, REQUESTER_LINK_LOCAL)).toEqual(frameOf('kernelUnsolicitedAdvertisement'));
  });

  it('builds the solicitation ndisc6 builds (up to its flow label, which the checksum does not cover)', () => {
    const ours = buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: REQUESTER_LINK_LOCAL, target: 'fd00:5b::1' });
    expect(ours).toEqual(edited(frameOf('ndisc6Solicitation'), (b) => b.writeUInt32BE(0x60000000, 14)));
  });

  it('builds unicast NUD probes without a source link-layer option, and DAD probes', () => {
    const nud = parsed(buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: 'fd00:5b::2', target: 'fd00:5b::1', dstIp: 'fd00:5b::1', dstMac: KERNEL_MAC, sourceLinkLayer: false }));
    expect(nud).toMatchObject({ eth: { dst: KERNEL_MAC }, ipv6: { dst: 'fd00:5b::1' }, ndp: { type: 'NS', sourceLinkLayer: undefined } });
    const dad = buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: '::', target: 'fd00:5b::2' });
    // The kernel's probe without its nonce option.
    const withoutNonce = edited(frameOf('kernelDadProbe').subarray(0, 78), (b) => {
      b.writeUInt16BE(24, 18);
      fixChecksum(b);
    });
    expect(dad).toEqual(withoutNonce);
  });

  it('computes the ICMPv6 checksum over the pseudo-header', () => {
    const na = frameOf('kernelSolicitedAdvertisement');
    expect(na.readUInt16BE(56)).toBe(0x4980);
    const zeroed = Buffer.from(na.subarray(54));
    zeroed.writeUInt16BE(0, 2);
    expect(icmpv6Checksum(na.subarray(22, 38), na.subarray(38, 54), zeroed)).toBe(0x4980);
  });

  it('refuses neighbor discovery that RFC 4861 says to discard', () => {
    const ns = frameOf('ndisc6Solicitation');
    expect(errorOf(frameOf('routerSolicitation'))).toBe('ICMPv6 type 133 is not neighbor discovery');
    expect(errorOf(edited(ns, (b) => { b[21] = 64; }))).toBe('hop limit 64 is not 255');
    expect(errorOf(edited(ns, (b) => { b[57] ^= 1; }))).toBe('bad ICMPv6 checksum');
    expect(errorOf(edited(ns, (b) => { b[55] = 1; fixChecksum(b); }))).toBe('ICMPv6 code 1 is not 0');
    expect(errorOf(edited(ns, (b) => { b[62] = 0xff; fixChecksum(b); }))).toBe('target address is multicast');
    expect(errorOf(edited(ns, (b) => { b[79] = 0; fixChecksum(b); }))).toBe('option of length 0');
    expect(errorOf(edited(ns, (b) => { b[79] = 2; fixChecksum(b); }))).toBe('option runs past the message');
    expect(errorOf(edited(ns, (b) => { b[20] = 17; }))).toBe('next header 17 is not ICMPv6');
    expect(errorOf(edited(ns, (b) => { b[14] = 0x40; }))).toBe('IP version is not 6');
    expect(errorOf(ns.subarray(0, 80))).toBe('IPv6 payload is truncated');
    expect(errorOf(ns.subarray(0, 50))).toBe('IPv6 header is truncated');
    // A DAD probe must go to the solicited-node group and carry no source link-layer option.
    expect(errorOf(buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: '::', target: 'fd00:5b::2', dstIp: 'ff02::1' }))).toBe('DAD probe not sent to the solicited-node group');
    expect(errorOf(buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: '::', target: 'fd00:5b::2', sourceLinkLayer: true }))).toBe(
      'DAD probe carries a source link-layer option',
    );
    const multicastSolicited = buildNeighborAdvertisement({ srcMac: KERNEL_MAC, dstMac: '33:33:00:00:00:01', srcIp: 'fd00:5b::1', dstIp: 'ff02::1', target: 'fd00:5b::1', solicited: true, override: false });
    expect(errorOf(multicastSolicited)).toBe('solicited advertisement sent to a multicast address');
  });
});
