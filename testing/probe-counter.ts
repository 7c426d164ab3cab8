// A prober process for the network-namespace tests (controllers/speaker/raw-socket.test.ts): the speaker's Prober on
// one interface, with every frame its sockets deliver counted, beside unfiltered ARP and IPv6 sockets that see what
// the interface receives. Commands on stdin, one per line:
//   probe <address>   probe it once (self-check shape) and print the MACs that answered
//   report            print the counts: delivered to the prober, and seen unfiltered (all, and those that claim an address)
//   node probe-counter.js <interface> <cidr>...
import { createInterface } from 'node:readline';
import { runIfEntryPoint } from './script-main.js';
import { silentLogger } from '../controllers/runtime/log.js';
import { ARP_REPLY, ARP_REQUEST, parseFrame } from '../controllers/speaker/frames.js';
import { Prober } from '../controllers/speaker/prober.js';
import { RawSocket, interfaceInfo, type RawSocketOptions } from '../controllers/speaker/raw-socket.js';

const print = (event: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(event)}\n`);

/** What prober.ts reads: an ARP reply or a gratuitous request, a neighbor advertisement. */
function claims(frame: Buffer): boolean {
  const parsed = parseFrame(frame);
  if (!parsed.ok) return false;
  const f = parsed.frame;
  if (f.kind === 'arp') return f.arp.op === ARP_REPLY || (f.arp.op === ARP_REQUEST && f.arp.senderIp === f.arp.targetIp);
  return f.ndp.type === 'NA';
}

export function main(argv: string[]): () => void {
  const [name, ...cidrs] = argv;
  if (!name) throw new Error('usage: probe-counter <interface> <cidr>...');
  const counts = { prober: { arp: 0, ipv6: 0 }, all: { arp: 0, ipv6: 0 }, claiming: { arp: 0, ipv6: 0 } };
  const key = (protocol: RawSocketOptions['protocol']): 'arp' | 'ipv6' => (protocol === 'arp' ? 'arp' : 'ipv6');
  const sockets = (['arp', 'ipv6'] as const).map((protocol) =>
    RawSocket.open({
      interface: name,
      protocol,
      onFrame: (frame) => {
        counts.all[protocol]++;
        if (claims(frame)) counts.claiming[protocol]++;
      },
      onSocketError: (err) => print({ event: 'socket-error', protocol, ...err }),
    }),
  );
  const prober = new Prober({
    ratePerSecond: 100,
    requireSubnet: true,
    log: silentLogger,
    openSocket: (o) => RawSocket.open({ ...o, onFrame: (frame, at) => (counts.prober[key(o.protocol)]++, o.onFrame(frame, at)) }),
  });
  prober.setInterfaces([{ name, flags: 1, carrier: true, type: 1, mac: interfaceInfo(name).mac, cidrs }]);
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [command, address] = line.trim().split(/\s+/);
    if (command === 'report') print({ event: 'report', ...counts });
    else if (command === 'probe' && address) {
      void prober.probe(address, { count: 1, intervalMs: 0, waitMs: 300 }, 'self-check').then((macs) => print({ event: 'probed', address, macs: macs ? [...macs] : null }));
    }
  });
  print({ event: 'ready', interface: name });
  return () => {
    lines.close();
    prober.close();
    for (const s of sockets) s.close();
  };
}

runIfEntryPoint(import.meta.url, main);
