// Real frames captured with tcpdump on a veth pair between two network namespaces (10.250.77.0/24, fd00:5b::/64).
// REQUESTER_MAC is the side running arping/ndisc6 (iputils-arping 20221126, ndisc6 1.0.5); KERNEL_MAC is a Linux
// 6.x host that owns 10.250.77.1 and fd00:5b::1 and answered with its own ARP/NDP stack.
export const REQUESTER_MAC = '02:93:55:ba:da:2a';
export const KERNEL_MAC = 'aa:15:3d:bd:bb:9d';
export const REQUESTER_LINK_LOCAL = 'fe80::93:55ff:feba:da2a';

export const vectors = {
  /** `arping -c 1 -I vb 10.250.77.1`: broadcast request (iputils puts ff:ff:ff:ff:ff:ff in the target MAC). */
  arpingRequest: 'ffffffffffff029355bada2a08060001080006040001029355bada2a0afa4d02ffffffffffff0afa4d01',
  /** The kernel's reply to it (42 bytes: veth does not pad). */
  kernelArpReply: '029355bada2aaa153dbdbb9d08060001080006040002aa153dbdbb9d0afa4d01029355bada2a0afa4d02',
  /** `arping -U`: gratuitous request, sender IP = target IP. */
  arpingGratuitousRequest: 'ffffffffffff029355bada2a08060001080006040001029355bada2a0afa4d02ffffffffffff0afa4d02',
  /** `arping -A`: gratuitous reply, broadcast. */
  arpingGratuitousReply: 'ffffffffffff029355bada2a08060001080006040002029355bada2a0afa4d02029355bada2a0afa4d02',
  /** Kernel router solicitation (ICMPv6 133): IPv6 but not neighbor discovery. */
  routerSolicitation:
    '333300000002029355bada2a86dd6000000000103afffe80000000000000009355fffebada2aff02000000000000000000000000000285001a3e000000000101029355bada2a',
  /** `ndisc6 fd00:5b::1 vb`: multicast NS to the solicited-node group, with a source link-layer option and a flow label. */
  ndisc6Solicitation:
    '3333ff000001029355bada2a86dd600d722700203afffe80000000000000009355fffebada2aff0200000000000000000001ff00000187001bd000000000fd00005b0000000000000000000000010101029355bada2a',
  /** The kernel's solicited NA: S=1, O=1, source = target, target link-layer option. */
  kernelSolicitedAdvertisement:
    '029355bada2aaa153dbdbb9d86dd6000000000203afffd00005b000000000000000000000001fe80000000000000009355fffebada2a8800498060000000fd00005b0000000000000000000000010201aa153dbdbb9d',
  /** Kernel DAD probe for fd00:5b::2: source ::, no source link-layer option, a nonce option (RFC 7527). */
  kernelDadProbe:
    '3333ff000002029355bada2a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff000002870038e500000000fd00005b0000000000000000000000020e01579e73926b29',
  /** Kernel unsolicited NA (ndisc_notify=1) for its link-local address: to ff02::1, S=0, O=1. */
  kernelUnsolicitedAdvertisement:
    '333300000001029355bada2a86dd6000000000203afffe80000000000000009355fffebada2aff0200000000000000000000000000018800c83520000000fe80000000000000009355fffebada2a0201029355bada2a',
} as const;

export const frameOf = (name: keyof typeof vectors): Buffer => Buffer.from(vectors[name], 'hex');
