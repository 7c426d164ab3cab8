// The speaker's data plane: one ARP socket and one NDP socket per eligible interface, answering requests for the
// addresses this node announces (responder.ts decides, byte for byte), joining the solicited-node groups of its
// IPv6 addresses, and announcing takeovers: a burst of gratuitous ARP (request and reply forms) and unsolicited
// neighbor advertisements, `garpCount` times `garpInterval` apart, plus an optional periodic refresh (MetalLB #2910).
// An address is announced only on interfaces its advertisement allows and whose subnet holds it.
import { createSocket, type Socket } from 'node:dgram';
import { parseIPStrict } from '../../api/ip.js';
import type { Logger } from '../runtime/log.js';
import { telemetry } from '../runtime/telemetry.js';
import { buildGratuitousArp, buildUnsolicitedNeighborAdvertisement, ipv6MulticastMac, solicitedNodeMulticast } from './frames.js';
import type { SystemInterface } from './interfaces.js';
import { NEIGHBOR_SOLICITATION_FILTER, RawSocket, logSocketErrors } from './raw-socket.js';
import { decide, eligibility, responderInterface, sameInterface, type AnnouncementTable, type IgnoreReason, type ResponderInterface } from './responder.js';

export interface AnnouncerOptions {
  garpCount: number;
  garpIntervalMs: number;
  /** Re-announce every address this often; 0 disables. */
  refreshIntervalMs: number;
  /** Answer only where an interface subnet holds the address (default true). */
  requireSubnet: boolean;
  /**
   * Whether this node may answer what it received at `at` (ms since the epoch): false while fenced, and for frames
   * that arrived before its current lease window opened (they queued while the process was frozen or fenced).
   */
  mayAnswer: (at: number) => boolean;
  /** Another MAC claims an address this node announces (its gratuitous ARP, an ARP reply, a neighbor advertisement). */
  onConflict?: (address: string, mac: string) => void;
  log: Logger;
  /** Injected for tests. */
  openSocket?: typeof RawSocket.open;
}

interface Port {
  iface: ResponderInterface;
  arp: RawSocket;
  ndp: RawSocket;
  /** Joined solicited-node groups (address → its multicast MAC). */
  groups: Map<string, string>;
  mld: GroupJoiner;
}

/**
 * Joins IPv6 groups in the kernel as well (IPV6_JOIN_GROUP through a UDP socket): the kernel then sends MLD reports,
 * so switches that snoop MLD forward the solicitations for our addresses. A packet-socket membership alone only
 * opens the NIC's filter.
 */
class GroupJoiner {
  private readonly socket: Socket;
  private readonly bound: Promise<boolean>;

  constructor(
    private readonly ifname: string,
    private readonly log: Logger,
  ) {
    this.socket = createSocket({ type: 'udp6', reuseAddr: true });
    this.socket.on('error', (err) => log.debug('MLD socket error', { interface: ifname, error: String(err) }));
    this.bound = new Promise((resolve) => {
      this.socket.once('error', () => resolve(false));
      this.socket.bind({ port: 0, address: '::' }, () => resolve(true));
    });
    this.socket.unref();
  }

  private apply(group: string, join: boolean): void {
    void this.bound.then((ok) => {
      if (!ok) return;
      try {
        if (join) this.socket.addMembership(group, `::%${this.ifname}`);
        else this.socket.dropMembership(group, `::%${this.ifname}`);
      } catch (err) {
        this.log.debug('MLD membership change failed', { interface: this.ifname, group, join, error: String(err) });
      }
    });
  }

  join = (group: string): void => this.apply(group, true);
  leave = (group: string): void => this.apply(group, false);

  close(): void {
    void this.bound.then(() => this.socket.close());
  }
}

/**
 * A request older than this when read is dropped: its sender has retried or given up (arping and the kernel's
 * neighbour resolution retry every second), and an answer from a node that was frozen may name a stale owner.
 */
export const MAX_REQUEST_AGE_MS = 1000;

/** Frames that are simply not for us: counted, not logged. */
const QUIET: ReadonlySet<IgnoreReason> = new Set(['Malformed', 'NotRequest', 'OwnFrame', 'NotAddressedToUs']);

function closePort(port: Port): void {
  port.arp.close();
  port.ndp.close();
  port.mld.close();
}

const protocolFor = (address: string): 'arp' | 'ndp' => (parseIPStrict(address)?.family === 'IPv6' ? 'ndp' : 'arp');

export class Announcer {
  private readonly ports = new Map<string, Port>();
  private table: AnnouncementTable = new Map();
  private readonly bursts = new Map<string, NodeJS.Timeout>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private readonly requests;
  private readonly responses;
  private readonly gratuitous;
  private readonly ignored;
  private readonly stale;
  private readonly lastIgnoreLog = new Map<string, number>();

  constructor(private readonly options: AnnouncerOptions) {
    const meter = telemetry().meter;
    this.requests = meter.createCounter('switchboard_speaker_requests_received', { description: 'ARP requests and neighbor solicitations received, by protocol' });
    this.responses = meter.createCounter('switchboard_speaker_responses_sent', { description: 'ARP replies and neighbor advertisements sent, by protocol' });
    this.gratuitous = meter.createCounter('switchboard_speaker_gratuitous_sent', { description: 'Gratuitous ARP and unsolicited neighbor advertisements sent, by protocol' });
    this.ignored = meter.createCounter('switchboard_speaker_requests_ignored', { description: 'Requests not answered, by reason' });
    this.stale = meter.createCounter('switchboard_speaker_frames_dropped_stale', {
      description: 'Frames dropped unread because they arrived before this node could answer (fenced or frozen) or are older than a second',
    });
    meter.createObservableGauge('switchboard_speaker_announced', { description: '1 for each address this node announces' }).addCallback((r) => {
      for (const ip of this.table.keys()) r.observe(1, { ip, protocol: protocolFor(ip) });
    });
    if (options.refreshIntervalMs > 0) {
      this.refreshTimer = setInterval(() => {
        for (const address of this.table.keys()) this.announce(address);
      }, options.refreshIntervalMs);
    }
  }

  /** The interfaces answering now, with their MAC and subnets. */
  get interfaces(): ResponderInterface[] {
    return [...this.ports.values()].map((p) => p.iface);
  }

  /** Opens sockets on new interfaces, closes them on vanished ones, and follows address changes. */
  setInterfaces(interfaces: readonly SystemInterface[]): void {
    const open = this.options.openSocket ?? RawSocket.open;
    const wanted = new Map(interfaces.map((i) => [i.name, i]));
    for (const [name, port] of this.ports) {
      if (wanted.has(name)) continue;
      closePort(port);
      this.ports.delete(name);
      this.options.log.info('stopped answering on interface', { interface: name });
    }
    for (const i of interfaces) {
      const existing = this.ports.get(i.name);
      const iface = responderInterface(i.name, i.mac, i.cidrs);
      if (existing) {
        const moved = !sameInterface(existing.iface, iface);
        existing.iface = iface;
        if (moved) this.refreshGroups(existing);
        continue;
      }
      try {
        const onError = (err: unknown) => this.options.log.error('frame handler failed', { interface: i.name, error: String(err) });
        const port = { iface, groups: new Map<string, string>(), mld: new GroupJoiner(i.name, this.options.log) } as Port;
        port.arp = open({ interface: i.name, protocol: 'arp', onFrame: (f, at) => this.onFrame(port, port.arp, f, at), onError, onSocketError: logSocketErrors(this.options.log, i.name, 'arp') });
        try {
          port.ndp = open({
            interface: i.name,
            protocol: 'ipv6',
            filter: NEIGHBOR_SOLICITATION_FILTER,
            onFrame: (f, at) => this.onFrame(port, port.ndp, f, at),
            onError,
            onSocketError: logSocketErrors(this.options.log, i.name, 'ipv6'),
          });
        } catch (err) {
          port.arp.close();
          port.mld.close();
          throw err;
        }
        this.ports.set(i.name, port);
        this.refreshGroups(port);
        this.options.log.info('answering on interface', { interface: i.name, mac: iface.mac, subnets: i.cidrs });
        for (const address of this.table.keys()) if (this.mayAnnounce(address, port)) this.startBurst(address);
      } catch (err) {
        this.options.log.error('cannot open packet sockets on interface', { interface: i.name, error: String(err) });
      }
    }
  }

  private mayAnnounce(address: string, port: Port): boolean {
    return eligibility(address, port.iface, this.table, { requireSubnet: this.options.requireSubnet }) === undefined;
  }

  /** The addresses answered now. */
  announced(): string[] {
    return [...this.table.keys()];
  }

  /** Interfaces on which `address` is answered, or would be if `table` were answered (a handover in progress). */
  interfacesFor(address: string, table: AnnouncementTable = this.table): string[] {
    const options = { requireSubnet: this.options.requireSubnet };
    return [...this.ports.values()].filter((p) => eligibility(address, p.iface, table, options) === undefined).map((p) => p.iface.name);
  }

  /** Replaces the announced addresses: new ones are announced at once (takeover), gone ones stop being answered. */
  setTable(next: AnnouncementTable): void {
    const previous = this.table;
    this.table = next;
    for (const port of this.ports.values()) this.refreshGroups(port);
    for (const address of previous.keys()) {
      if (next.has(address)) continue;
      const timer = this.bursts.get(address);
      if (timer) clearTimeout(timer);
      this.bursts.delete(address);
      this.options.log.info('stopped announcing', { address });
    }
    for (const [address, announcement] of next) {
      const before = previous.get(address);
      const sameInterfaces = before && JSON.stringify([...(before.interfaces ?? [])]) === JSON.stringify([...(announcement.interfaces ?? [])]);
      if (before && sameInterfaces) continue;
      this.options.log.info('announcing', { address, interfaces: this.interfacesFor(address) });
      this.startBurst(address);
    }
  }

  /** Keeps each port's solicited-node memberships equal to what its announced IPv6 addresses need. */
  private refreshGroups(port: Port): void {
    const needed = new Map<string, string>();
    for (const address of this.table.keys()) {
      if (protocolFor(address) !== 'ndp' || !this.mayAnnounce(address, port)) continue;
      const group = solicitedNodeMulticast(address);
      needed.set(group, ipv6MulticastMac(group));
    }
    const change = (group: string, mac: string, join: boolean) => {
      try {
        if (join) port.ndp.joinMulticast(mac);
        else port.ndp.leaveMulticast(mac);
      } catch (err) {
        this.options.log.warn('could not change multicast membership', { interface: port.iface.name, group, join, error: String(err) });
      }
      if (join) port.mld.join(group);
      else port.mld.leave(group);
    };
    for (const [group, mac] of port.groups) if (!needed.has(group)) change(group, mac, false);
    for (const [group, mac] of needed) if (!port.groups.has(group)) change(group, mac, true);
    port.groups = needed;
  }

  private startBurst(address: string): void {
    const previous = this.bursts.get(address);
    if (previous) clearTimeout(previous);
    let left = this.options.garpCount;
    const tick = () => {
      this.bursts.delete(address);
      if (!this.table.has(address) || left <= 0) return;
      left -= 1;
      this.announce(address);
      if (left > 0) this.bursts.set(address, setTimeout(tick, this.options.garpIntervalMs));
    };
    tick();
  }

  /** One gratuitous announcement of `address` on every interface allowed to carry it. */
  private announce(address: string): void {
    if (!this.options.mayAnswer(Date.now()) || this.table.get(address)?.handingOver) return;
    const protocol = protocolFor(address);
    for (const port of this.ports.values()) {
      if (!this.mayAnnounce(address, port)) continue;
      try {
        if (protocol === 'ndp') {
          port.ndp.send(buildUnsolicitedNeighborAdvertisement(port.iface.mac, address));
          this.gratuitous.add(1, { protocol });
        } else {
          for (const form of ['request', 'reply'] as const) port.arp.send(buildGratuitousArp(port.iface.mac, address, form));
          this.gratuitous.add(2, { protocol });
        }
      } catch (err) {
        this.options.log.warn('could not send gratuitous announcement', { address, interface: port.iface.name, error: String(err) });
      }
    }
  }

  /** A frame from before this node could answer (it queued while fenced or frozen), or too old to answer. */
  private isStale(arrivedAtMs: number): boolean {
    if (this.options.mayAnswer(arrivedAtMs) && Date.now() - arrivedAtMs <= MAX_REQUEST_AGE_MS) return false;
    this.stale.add(1);
    return true;
  }

  private onFrame(port: Port, socket: RawSocket, frame: Buffer, arrivedAtMs: number): void {
    if (this.table.size === 0 || this.isStale(arrivedAtMs)) return;
    const d = decide(frame, port.iface, this.table, { requireSubnet: this.options.requireSubnet });
    if (d.action === 'reply' || !QUIET.has(d.reason)) this.requests.add(1, { protocol: socket === port.arp ? 'arp' : 'ndp' });
    if (d.action === 'reply') {
      // Again just before sending, to make the window in which a freeze could slip in as short as it can be.
      if (this.isStale(arrivedAtMs)) return;
      socket.send(d.frame);
      this.responses.add(1, { protocol: d.protocol });
      this.options.log.debug('answered', { protocol: d.protocol, target: d.target, requester: d.requester, interface: port.iface.name });
      return;
    }
    if (QUIET.has(d.reason)) return;
    this.ignored.add(1, { reason: d.reason });
    if (d.reason === 'AddressConflict' && d.target && d.claimant) this.options.onConflict?.(d.target, d.claimant);
    if (d.reason === 'NotAnnounced') return;
    // Another MAC claiming an address is a warning, except in a planned handover's overlap (either side of it).
    const announcement = d.target ? this.table.get(d.target) : undefined;
    const planned = announcement?.handingOver === true || announcement?.inherited === true;
    // Conflicts and interface/subnet refusals are worth a line, once a minute per (reason, address); an overlap's line
    // does not silence a real conflict's.
    const key = `${d.reason}/${planned ? 'planned' : ''}/${d.target ?? ''}/${port.iface.name}`;
    const now = Date.now();
    if ((this.lastIgnoreLog.get(key) ?? 0) + 60_000 > now) return;
    this.lastIgnoreLog.set(key, now);
    const log = d.reason === 'AddressConflict' && !planned ? this.options.log.warn : this.options.log.info;
    log(planned ? 'the other side of a planned handover answers too' : 'not answering', { reason: d.reason, detail: d.detail, interface: port.iface.name });
  }

  close(): void {
    for (const timer of this.bursts.values()) clearTimeout(timer);
    this.bursts.clear();
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const port of this.ports.values()) closePort(port);
    this.ports.clear();
    this.table = new Map();
  }
}
