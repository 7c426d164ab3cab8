// Typed wrapper of the speaker's packet-socket addon (controllers/speaker/native): an AF_PACKET socket bound to one
// interface that delivers received frames to a callback and sends frames as given. Needs CAP_NET_RAW.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../runtime/log.js';
import { ARP_REPLY, ARP_REQUEST, ETHERTYPE_ARP, ETHERTYPE_IPV6, ICMPV6_NEIGHBOR_ADVERTISEMENT, ICMPV6_NEIGHBOR_SOLICITATION, formatMac, parseMac } from './frames.js';

export const ADDON_BUILD_COMMAND = 'npx node-gyp rebuild --directory controllers/speaker/native';
const ADDON_FILE = 'native/build/Release/switchboard_rawsock.node';

interface NativeSocket {
  send(frame: Buffer): number;
  addMembership(mac: Buffer): void;
  dropMembership(mac: Buffer): void;
  setFilter(program: Buffer): void;
  close(): void;
  readonly index: number;
  readonly mac: Buffer;
}

interface NativeAddon {
  RawSocket: new (
    interfaceName: string,
    ethertype: number,
    onFrame: (frame: Buffer, arrivedAtMs: number) => void,
    onSocketError: (message: string, errno: number, resumed: boolean) => void,
  ) => NativeSocket;
  interfaceInfo(name: string): { index: number; mac: Buffer };
}

/** Where the addon is: $SWITCHBOARD_RAWSOCK_ADDON, beside this module, or (from dist/) in the source tree. */
export function addonPath(): string {
  const fromEnv = process.env.SWITCHBOARD_RAWSOCK_ADDON;
  if (fromEnv) return fromEnv;
  const beside = fileURLToPath(new URL(`./${ADDON_FILE}`, import.meta.url));
  const inSourceTree = fileURLToPath(new URL(`../../../controllers/speaker/${ADDON_FILE}`, import.meta.url));
  return existsSync(beside) || !existsSync(inSourceTree) ? beside : inSourceTree;
}

let addon: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const path = addonPath();
  if (!existsSync(path)) throw new Error(`the raw socket addon is not built (${path} is missing): run ${ADDON_BUILD_COMMAND}`);
  addon = createRequire(import.meta.url)(path) as NativeAddon;
  return addon;
}

export interface InterfaceInfo {
  name: string;
  index: number;
  /** Lowercase colon form. */
  mac: string;
}

export function interfaceInfo(name: string): InterfaceInfo {
  const info = loadAddon().interfaceInfo(name);
  return { name, index: info.index, mac: formatMac(info.mac) };
}

/** One classic BPF instruction: [code, jt, jf, k]. */
export type BpfInstruction = readonly [code: number, jt: number, jf: number, k: number];

/** Encodes a classic BPF program as struct sock_filter[] in host byte order. */
export function compileFilter(program: readonly BpfInstruction[]): Buffer {
  const le = endianness() === 'LE';
  const out = Buffer.alloc(program.length * 8);
  program.forEach(([code, jt, jf, k], i) => {
    if (le) out.writeUInt16LE(code, i * 8);
    else out.writeUInt16BE(code, i * 8);
    out[i * 8 + 2] = jt;
    out[i * 8 + 3] = jf;
    if (le) out.writeUInt32LE(k >>> 0, i * 8 + 4);
    else out.writeUInt32BE(k >>> 0, i * 8 + 4);
  });
  return out;
}

const BPF_LD_W_ABS = 0x20;
const BPF_LD_H_ABS = 0x28;
const BPF_LD_B_ABS = 0x30;
const BPF_JEQ_K = 0x15;
const BPF_JEQ_X = 0x1d;
const BPF_TAX = 0x07;
const BPF_RET_K = 0x06;

/** For an IPv6 socket: keep only ICMPv6 messages of `type` (no extension headers), so a busy node's IPv6 traffic stays in the kernel. */
export const icmpv6TypeFilter = (type: number): Buffer =>
  compileFilter([
    [BPF_LD_B_ABS, 0, 0, 20], // IPv6 next header
    [BPF_JEQ_K, 0, 3, 58], //   ICMPv6, else drop
    [BPF_LD_B_ABS, 0, 0, 54], // ICMPv6 type
    [BPF_JEQ_K, 0, 1, type],
    [BPF_RET_K, 0, 0, 0x40000], // accept
    [BPF_RET_K, 0, 0, 0], // drop
  ]);

/** Neighbor solicitations only: what the responder answers. */
export const NEIGHBOR_SOLICITATION_FILTER = icmpv6TypeFilter(ICMPV6_NEIGHBOR_SOLICITATION);
/** Neighbor advertisements only: the answers to the prober's solicitations. */
export const NEIGHBOR_ADVERTISEMENT_FILTER = icmpv6TypeFilter(ICMPV6_NEIGHBOR_ADVERTISEMENT);

/**
 * For the prober's ARP socket: keep only frames that claim an address, ARP replies and gratuitous announcements
 * (sender IP = target IP, as a host taking an address over sends them, RFC 5227 2.3), the two kinds prober.ts reads.
 * Every other host's requests (most of a LAN's ARP) stay in the kernel instead of waking the speaker.
 * Offsets from the Ethernet header: ARP operation at 20, sender IP at 28, target IP at 38.
 */
export const ARP_CLAIM_FILTER = compileFilter([
  [BPF_LD_H_ABS, 0, 0, 20], // operation
  [BPF_JEQ_K, 5, 0, ARP_REPLY], // a reply: accept
  [BPF_JEQ_K, 0, 5, ARP_REQUEST], // neither reply nor request: drop
  [BPF_LD_W_ABS, 0, 0, 28], // sender IP
  [BPF_TAX, 0, 0, 0],
  [BPF_LD_W_ABS, 0, 0, 38], // target IP
  [BPF_JEQ_X, 0, 1, 0], // a request for its own sender IP (gratuitous): accept, else drop
  [BPF_RET_K, 0, 0, 0x40000], // accept
  [BPF_RET_K, 0, 0, 0], // drop
]);

export interface RawSocketOptions {
  interface: string;
  /** 'arp' (0x0806), 'ipv6' (0x86dd) or an ethertype. */
  protocol: 'arp' | 'ipv6' | number;
  /** A classic BPF program (compileFilter), e.g. NEIGHBOR_SOLICITATION_FILTER. */
  filter?: Buffer;
  /**
   * Called on the event loop for each frame received (frames this host sent are not delivered), with when the
   * kernel received it (ms since the epoch), which can be long before: the process may have been frozen.
   */
  onFrame: (frame: Buffer, arrivedAtMs: number) => void;
  /** Called when onFrame throws; without it the error is rethrown as an uncaught exception. */
  onError?: (err: unknown) => void;
  /** Called on an error of the socket itself (e.g. ENETDOWN: its interface went down, if only for a moment). */
  onSocketError: (err: RawSocketError) => void;
}

export interface RawSocketError {
  message: string;
  errno: number;
  /** The socket reads on (its pending error cleared); false: it no longer receives and should be reopened. */
  resumed: boolean;
}

/** The speaker's handler of socket errors: a warning when the socket reads on, an error when it stopped. */
export const logSocketErrors =
  (log: Logger, interfaceName: string, protocol: RawSocketOptions['protocol']) =>
  (err: RawSocketError): void =>
    (err.resumed ? log.warn : log.error)(err.resumed ? 'packet socket error; reading on' : 'packet socket error; no longer receiving', {
      interface: interfaceName,
      protocol,
      error: err.message,
    });

export class RawSocket {
  private open = true;

  private constructor(
    private readonly native: NativeSocket,
    readonly info: InterfaceInfo,
  ) {}

  static open(options: RawSocketOptions): RawSocket {
    const ethertype = options.protocol === 'arp' ? ETHERTYPE_ARP : options.protocol === 'ipv6' ? ETHERTYPE_IPV6 : options.protocol;
    const deliver = (frame: Buffer, arrivedAtMs: number): void => {
      try {
        options.onFrame(frame, arrivedAtMs);
      } catch (err) {
        if (!options.onError) throw err;
        options.onError(err);
      }
    };
    const native = new (loadAddon().RawSocket)(options.interface, ethertype, deliver, (message, errno, resumed) => options.onSocketError({ message, errno, resumed }));
    try {
      if (options.filter) native.setFilter(options.filter);
    } catch (err) {
      native.close();
      throw err;
    }
    return new RawSocket(native, { name: options.interface, index: native.index, mac: formatMac(native.mac) });
  }

  get closed(): boolean {
    return !this.open;
  }

  /** Sends one whole Ethernet frame out of the interface. */
  send(frame: Uint8Array): void {
    this.native.send(Buffer.isBuffer(frame) ? frame : Buffer.from(frame));
  }

  /** Receives frames sent to a multicast MAC (e.g. an NDP solicited-node group) even when the NIC filters them. */
  joinMulticast(mac: string): void {
    this.native.addMembership(macBuffer(mac));
  }

  leaveMulticast(mac: string): void {
    this.native.dropMembership(macBuffer(mac));
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.native.close();
  }
}

function macBuffer(mac: string): Buffer {
  const b = parseMac(mac);
  if (!b) throw new Error(`invalid MAC address ${JSON.stringify(mac)}`);
  return b;
}
