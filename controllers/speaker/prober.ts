// Asks the LAN who answers for an address, the RFC 5227 way: an ARP probe (sender IP 0.0.0.0, so no neighbour
// cache learns anything from it) or a DAD-style neighbor solicitation (source ::, to the solicited-node group; the
// self-check uses the interface's link-local source instead, so the answer is unicast), from
// each interface whose subnet holds the address, and collects the MACs that claim it: ARP frames whose sender IP is
// the address, neighbor advertisements whose target is it. A speaker's responder answers both (responder.ts), and so
// does a Linux host that holds the address. Its own sockets, apart from the announcer's: the announcer's IPv6 socket
// filters out advertisements, and the two must not wait on each other. Each has a BPF filter (raw-socket.ts) so only
// frames that claim an address wake the process: ARP replies and gratuitous ARP, neighbor advertisements.
//
// Every probe frame is paced by one token bucket (`ratePerSecond`), so the self-check and conflict probes together
// never exceed the configured rate, however many addresses there are.
import { parseIPStrict } from '../../api/ip.js';
import { sleep } from '../runtime/backoff.js';
import type { Logger } from '../runtime/log.js';
import { telemetry } from '../runtime/telemetry.js';
import { ARP_REQUEST, BROADCAST_MAC, UNSPECIFIED, ZERO_MAC, buildArp, buildNeighborSolicitation, parseFrame } from './frames.js';
import type { SystemInterface } from './interfaces.js';
import { ARP_CLAIM_FILTER, NEIGHBOR_ADVERTISEMENT_FILTER, RawSocket, logSocketErrors } from './raw-socket.js';
import { eligibility, responderInterface, type ResponderInterface } from './responder.js';

export interface ProberOptions {
  /** Probe frames per second, at most (per address and interface one frame). */
  ratePerSecond: number;
  requireSubnet: boolean;
  log: Logger;
  /** Injected for tests. */
  openSocket?: typeof RawSocket.open;
}

export interface ProbeShape {
  /** Probes sent. */
  count: number;
  /** Between probes. */
  intervalMs: number;
  /** How long answers are collected after the last probe. */
  waitMs: number;
}

export type ProbePurpose = 'self-check' | 'conflict';

interface Port {
  iface: ResponderInterface;
  arp: RawSocket;
  ndp: RawSocket;
  /** The interface's link-local IPv6 address, source of self-check solicitations (answered unicast). */
  linkLocal?: string;
}

/** The first link-local address among `address/length` texts. */
const linkLocalOf = (cidrs: readonly string[]): string | undefined =>
  cidrs.map((c) => c.split('/')[0]).find((a) => parseIPStrict(a)?.family === 'IPv6' && /^fe80:/i.test(a));

export class Prober {
  private readonly ports = new Map<string, Port>();
  /** Address → the answer sets of the probes in flight for it. */
  private readonly listening = new Map<string, Set<Set<string>>>();
  private nextSend = 0;
  private readonly sent;

  constructor(private readonly options: ProberOptions) {
    this.sent = telemetry().meter.createCounter('switchboard_speaker_probes_sent', { description: 'ARP probes and DAD-style neighbor solicitations sent, by protocol and purpose' });
  }

  /** Follows the speaker's eligible interfaces. */
  setInterfaces(interfaces: readonly SystemInterface[]): void {
    const open = this.options.openSocket ?? RawSocket.open;
    const wanted = new Set(interfaces.map((i) => i.name));
    for (const [name, port] of this.ports) {
      if (wanted.has(name)) continue;
      port.arp.close();
      port.ndp.close();
      this.ports.delete(name);
    }
    for (const i of interfaces) {
      const iface = responderInterface(i.name, i.mac, i.cidrs);
      const existing = this.ports.get(i.name);
      if (existing) {
        existing.iface = iface;
        existing.linkLocal = linkLocalOf(i.cidrs);
        continue;
      }
      const onError = (err: unknown) => this.options.log.error('probe frame handler failed', { interface: i.name, error: String(err) });
      try {
        const socket = (protocol: 'arp' | 'ipv6', filter: Buffer): RawSocket =>
          open({ interface: i.name, protocol, filter, onFrame: (f) => this.onFrame(f), onError, onSocketError: logSocketErrors(this.options.log, i.name, protocol) });
        const arp = socket('arp', ARP_CLAIM_FILTER);
        let ndp: RawSocket;
        try {
          ndp = socket('ipv6', NEIGHBOR_ADVERTISEMENT_FILTER);
        } catch (err) {
          arp.close();
          throw err;
        }
        this.ports.set(i.name, { iface, arp, ndp, linkLocal: linkLocalOf(i.cidrs) });
      } catch (err) {
        this.options.log.error('cannot open probe sockets on interface', { interface: i.name, error: String(err) });
      }
    }
  }

  /** Whether some interface may carry a probe of `address`. */
  canProbe(address: string): boolean {
    return this.portsFor(address).length > 0;
  }

  private portsFor(address: string): Port[] {
    const table = new Map([[address, {}]]);
    return [...this.ports.values()].filter((p) => eligibility(address, p.iface, table, { requireSubnet: this.options.requireSubnet }) === undefined);
  }

  /** Waits for the token bucket: frames leave at most `ratePerSecond` a second. */
  private async pace(): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.nextSend);
    this.nextSend = at + 1000 / this.options.ratePerSecond;
    if (at > now) await sleep(at - now);
  }

  /**
   * Probes `address` `shape.count` times and returns the MACs that claimed it meanwhile, or undefined when no
   * interface can carry the probe (no subnet holds the address).
   */
  async probe(address: string, shape: ProbeShape, purpose: ProbePurpose): Promise<Set<string> | undefined> {
    const ip = parseIPStrict(address);
    if (!ip || !this.canProbe(address)) return undefined;
    const answers = new Set<string>();
    const listeners = this.listening.get(address) ?? new Set<Set<string>>();
    listeners.add(answers);
    this.listening.set(address, listeners);
    try {
      for (let i = 0; i < shape.count; i++) {
        if (i > 0) await sleep(shape.intervalMs);
        for (const port of this.portsFor(address)) {
          await this.pace();
          this.send(port, address, ip.family === 'IPv6' ? 'ndp' : 'arp', purpose);
        }
      }
      await sleep(shape.waitMs);
    } finally {
      listeners.delete(answers);
      if (listeners.size === 0) this.listening.delete(address);
    }
    return answers;
  }

  private send(port: Port, address: string, protocol: 'arp' | 'ndp', purpose: ProbePurpose): void {
    const mac = port.iface.mac;
    try {
      if (protocol === 'arp') {
        port.arp.send(buildArp({ op: ARP_REQUEST, ethDst: BROADCAST_MAC, ethSrc: mac, senderMac: mac, senderIp: '0.0.0.0', targetMac: ZERO_MAC, targetIp: address }));
      } else {
        // Before first use a DAD probe (from ::, answered to all nodes); the self-check asks from the link-local
        // address, so the answers come back unicast rather than to every host on the LAN at every check.
        const srcIp = purpose === 'self-check' && port.linkLocal ? port.linkLocal : UNSPECIFIED;
        port.ndp.send(buildNeighborSolicitation({ srcMac: mac, srcIp, target: address }));
      }
      this.sent.add(1, { protocol, purpose });
    } catch (err) {
      this.options.log.warn('could not send a probe', { address, interface: port.iface.name, error: String(err) });
    }
  }

  private onFrame(frame: Buffer): void {
    if (this.listening.size === 0) return;
    const parsed = parseFrame(frame);
    if (!parsed.ok) return;
    const f = parsed.frame;
    let address: string;
    let mac: string;
    if (f.kind === 'arp') {
      if (f.arp.senderIp === '0.0.0.0') return; // another prober, not a holder
      address = f.arp.senderIp;
      mac = f.arp.senderMac;
    } else {
      if (f.ndp.type !== 'NA') return;
      address = f.ndp.target;
      mac = f.ndp.targetLinkLayer ?? f.eth.src;
    }
    for (const answers of this.listening.get(address) ?? []) answers.add(mac);
  }

  close(): void {
    for (const port of this.ports.values()) {
      port.arp.close();
      port.ndp.close();
    }
    this.ports.clear();
  }
}
