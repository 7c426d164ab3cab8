// A minimal responder process: answers ARP and NDP for the given addresses on one interface, after announcing them
// (gratuitous ARP request and reply, unsolicited NA). Used by the network-namespace tests; handy for debugging.
//   node standalone-responder.js <interface> <address>...
// Prints one JSON line per event on stdout: ready, announce, reply, ignore (except frames that are simply not ours),
// error, socket-error.
import { networkInterfaces } from 'node:os';
import { runIfEntryPoint } from './script-main.js';
import { parseIPStrict } from '../api/ip.js';
import { buildGratuitousArp, buildUnsolicitedNeighborAdvertisement, ipv6MulticastMac, solicitedNodeMulticast } from '../controllers/speaker/frames.js';
import { NEIGHBOR_SOLICITATION_FILTER, RawSocket, interfaceInfo, type RawSocketError } from '../controllers/speaker/raw-socket.js';
import { announcementTable, decide, responderInterface, type ResponderInterface, type AnnouncementTable } from '../controllers/speaker/responder.js';

const log = (event: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(event)}\n`);
const QUIET = new Set(['Malformed', 'NotAnnounced', 'OwnFrame']);

function answer(socket: RawSocket, iface: ResponderInterface, table: AnnouncementTable) {
  return (frame: Buffer): void => {
    const d = decide(frame, iface, table);
    if (d.action === 'reply') {
      socket.send(d.frame);
      log({ event: 'reply', protocol: d.protocol, target: d.target, requester: d.requester });
    } else if (!QUIET.has(d.reason)) {
      log({ event: 'ignore', reason: d.reason, detail: d.detail });
    }
  };
}

export function main(argv: string[]): () => void {
  const [name, ...addresses] = argv;
  if (!name || addresses.length === 0) throw new Error('usage: standalone-responder <interface> <address>...');
  const info = interfaceInfo(name);
  const iface = responderInterface(name, info.mac, (networkInterfaces()[name] ?? []).flatMap((a) => (a.cidr ? [a.cidr] : [])));
  const table = announcementTable(addresses.map((a) => [a]));
  const v6 = [...table.keys()].filter((a) => parseIPStrict(a)?.family === 'IPv6');
  const onError = (err: unknown): void => log({ event: 'error', error: String(err) });
  const onSocketError = (protocol: string) => (err: RawSocketError): void => log({ event: 'socket-error', protocol, ...err });

  const arp: RawSocket = RawSocket.open({ interface: name, protocol: 'arp', onFrame: (f) => answer(arp, iface, table)(f), onError, onSocketError: onSocketError('arp') });
  const ndp: RawSocket = RawSocket.open({ interface: name, protocol: 'ipv6', filter: NEIGHBOR_SOLICITATION_FILTER, onFrame: (f) => answer(ndp, iface, table)(f), onError, onSocketError: onSocketError('ipv6') });
  for (const a of v6) ndp.joinMulticast(ipv6MulticastMac(solicitedNodeMulticast(a)));
  for (const a of table.keys()) {
    if (v6.includes(a)) ndp.send(buildUnsolicitedNeighborAdvertisement(info.mac, a));
    else for (const form of ['request', 'reply'] as const) arp.send(buildGratuitousArp(info.mac, a, form));
    log({ event: 'announce', address: a });
  }
  log({ event: 'ready', interface: name, mac: info.mac, subnets: iface.subnets.length });
  return () => {
    arp.close();
    ndp.close();
  };
}

runIfEntryPoint(import.meta.url, main);
