import { describe, expect, it } from '@jest/globals';
import { buildArpRequest, buildGratuitousArp, buildNeighborAdvertisement, buildNeighborSolicitation, buildUnsolicitedNeighborAdvertisement, parseFrame } from './frames.js';
import { KERNEL_MAC, REQUESTER_LINK_LOCAL, REQUESTER_MAC, frameOf } from '../../testing/frame-vectors.js';
import { announcementTable, decide, responderInterface, type ResponderDecision } from './responder.js';

// The responder plays the kernel's part of the captures: it owns KERNEL_MAC and announces 10.250.77.1 / fd00:5b::1.
const eth0 = responderInterface('eth0', KERNEL_MAC.toUpperCase(), ['10.250.77.5/24', 'fd00:5b::5/64', 'fe80::a815:3dff:febd:bb9d/64']);
const table = announcementTable([['10.250.77.1'], ['fd00:5b:0::1'], ['fd00:5b::2'], ['10.250.77.9', ['eth1']], ['192.0.2.10']]);

const reason = (d: ResponderDecision): string => (d.action === 'reply' ? 'reply' : d.reason);
const replyOf = (d: ResponderDecision): Buffer => {
  if (d.action !== 'reply') throw new Error(`${d.reason}: ${d.detail}`);
  return d.frame;
};

describe('responder: ARP', () => {
  it('answers arping for an announced address exactly as the kernel did', () => {
    const d = decide(frameOf('arpingRequest'), eth0, table);
    expect(d).toMatchObject({ action: 'reply', protocol: 'arp', target: '10.250.77.1', requester: `10.250.77.2 (${REQUESTER_MAC})` });
    expect(replyOf(d).subarray(0, 42)).toEqual(frameOf('kernelArpReply'));
  });

  it('answers a unicast request to its MAC and RFC 5227 probes from 0.0.0.0', () => {
    const unicast = Buffer.from(frameOf('arpingRequest'));
    Buffer.from(KERNEL_MAC.replace(/:/g, ''), 'hex').copy(unicast, 0);
    expect(reason(decide(unicast, eth0, table))).toBe('reply');
    const probe = decide(buildArpRequest(REQUESTER_MAC, '0.0.0.0', '10.250.77.1'), eth0, table);
    expect(parseFrame(replyOf(probe))).toMatchObject({ ok: true, frame: { eth: { dst: REQUESTER_MAC }, arp: { op: 2, senderIp: '10.250.77.1', targetIp: '0.0.0.0' } } });
  });

  it('ignores, with a reason, what it must not answer', () => {
    const to = (ip: string) => buildArpRequest(REQUESTER_MAC, '10.250.77.2', ip);
    expect(decide(to('10.250.77.3'), eth0, table)).toMatchObject({ action: 'ignore', reason: 'NotAnnounced', detail: '10.250.77.3 is not announced by this node' });
    expect(decide(to('10.250.77.9'), eth0, table)).toMatchObject({ reason: 'NotOnThisInterface', detail: '10.250.77.9 is announced on eth1, not eth0' });
    expect(decide(to('192.0.2.10'), eth0, table)).toMatchObject({ reason: 'OutsideInterfaceSubnets', detail: '192.0.2.10 is in none of the subnets of eth0' });
    expect(reason(decide(to('192.0.2.10'), eth0, table, { requireSubnet: false }))).toBe('reply');
    expect(reason(decide(frameOf('kernelArpReply'), responderInterface('eth0', REQUESTER_MAC, ['10.250.77.2/24']), table))).toBe('AddressConflict');
    expect(decide(frameOf('arpingGratuitousRequest'), eth0, table)).toMatchObject({ reason: 'NotRequest', detail: 'gratuitous ARP' });
    expect(decide(frameOf('arpingGratuitousReply'), eth0, table)).toMatchObject({ reason: 'NotRequest', detail: 'ARP reply' });
    expect(reason(decide(buildArpRequest(KERNEL_MAC, '10.250.77.5', '10.250.77.1'), eth0, table))).toBe('OwnFrame');
    const elsewhere = Buffer.from(frameOf('arpingRequest'));
    elsewhere.fill(0x02, 0, 6);
    expect(reason(decide(elsewhere, eth0, table))).toBe('NotAddressedToUs');
    expect(decide(Buffer.alloc(3), eth0, table)).toMatchObject({ reason: 'Malformed' });
  });

  it('reports another MAC announcing one of our addresses (two announcers)', () => {
    expect(decide(buildGratuitousArp('02:00:00:00:00:99', '10.250.77.1', 'request'), eth0, table)).toMatchObject({
      action: 'ignore',
      reason: 'AddressConflict',
      detail: '02:00:00:00:00:99 claims 10.250.77.1, which this node announces',
    });
  });
});

describe('responder: NDP', () => {
  it('answers ndisc6 exactly as the kernel did (solicited, override, target link-layer option)', () => {
    const d = decide(frameOf('ndisc6Solicitation'), eth0, table);
    expect(d).toMatchObject({ action: 'reply', protocol: 'ndp', target: 'fd00:5b::1', requester: `${REQUESTER_LINK_LOCAL} (${REQUESTER_MAC})` });
    expect(replyOf(d)).toEqual(frameOf('kernelSolicitedAdvertisement'));
  });

  it('answers unicast NUD probes that carry no source link-layer option, to the frame source', () => {
    const nud = buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: 'fd00:5b::7', target: 'fd00:5b::1', dstIp: 'fd00:5b::1', dstMac: KERNEL_MAC, sourceLinkLayer: false });
    expect(parseFrame(replyOf(decide(nud, eth0, table)))).toMatchObject({
      ok: true,
      frame: { eth: { dst: REQUESTER_MAC, src: KERNEL_MAC }, ipv6: { src: 'fd00:5b::1', dst: 'fd00:5b::7' }, ndp: { type: 'NA', solicited: true, override: true, targetLinkLayer: KERNEL_MAC } },
    });
    // The same probe sent to another MAC is not ours to answer.
    const astray = buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: 'fd00:5b::7', target: 'fd00:5b::1', dstIp: 'fd00:5b::1', dstMac: '02:00:00:00:00:01' });
    expect(reason(decide(astray, eth0, table))).toBe('NotAddressedToUs');
  });

  it('defends an announced address against a DAD probe with an advertisement to all nodes', () => {
    expect(parseFrame(replyOf(decide(frameOf('kernelDadProbe'), eth0, table)))).toMatchObject({
      ok: true,
      frame: { eth: { dst: '33:33:00:00:00:01' }, ipv6: { src: 'fd00:5b::2', dst: 'ff02::1' }, ndp: { type: 'NA', target: 'fd00:5b::2', solicited: false, override: true } },
    });
  });

  it('ignores advertisements, other targets and solicitations sent to another group', () => {
    expect(decide(frameOf('kernelSolicitedAdvertisement'), responderInterface('eth0', REQUESTER_MAC, ['fd00:5b::2/64']), table)).toMatchObject({ reason: 'AddressConflict' });
    expect(decide(buildUnsolicitedNeighborAdvertisement(REQUESTER_MAC, 'fd00:5b::99'), eth0, table)).toMatchObject({ reason: 'NotRequest', detail: 'neighbor advertisement' });
    const other = buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: REQUESTER_LINK_LOCAL, target: 'fd00:5b::3' });
    expect(reason(decide(other, eth0, table))).toBe('NotAnnounced');
    const wrongGroup = buildNeighborSolicitation({ srcMac: REQUESTER_MAC, srcIp: REQUESTER_LINK_LOCAL, target: 'fd00:5b::1', dstIp: 'ff02::1:ff00:2' });
    expect(reason(decide(wrongGroup, eth0, table))).toBe('NotAddressedToUs');
    const foreign = buildNeighborAdvertisement({ srcMac: REQUESTER_MAC, dstMac: KERNEL_MAC, srcIp: 'fd00:5b::9', dstIp: 'fd00:5b::5', target: 'fd00:5b::9', solicited: true, override: true });
    expect(reason(decide(foreign, eth0, table))).toBe('NotRequest');
    expect(reason(decide(frameOf('routerSolicitation'), eth0, table))).toBe('Malformed');
  });

  it('answers only on the subnets of the interface unless told otherwise', () => {
    const v6only = responderInterface('eth0', KERNEL_MAC, ['fe80::1/64']);
    expect(reason(decide(frameOf('ndisc6Solicitation'), v6only, table))).toBe('OutsideInterfaceSubnets');
    expect(reason(decide(frameOf('ndisc6Solicitation'), v6only, table, { requireSubnet: false }))).toBe('reply');
  });

  it('validates its inputs', () => {
    expect(() => responderInterface('eth0', 'zz', [])).toThrow('invalid MAC address "zz" for interface eth0');
    expect(() => announcementTable([['not-an-ip']])).toThrow('invalid address "not-an-ip"');
  });
});
