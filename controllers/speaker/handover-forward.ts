// Make before break for connections, not only for addresses. A successor that takes an address over from a leaving
// node (handover.ts) moves the clients' neighbour entries; a TCP connection the old node holds, or one whose SYN
// reached it just before the move, then sends its next segment to the successor, which has no state for it (its
// kube-proxy picks the flow up mid-stream and its pod answers with a reset). During the handover the successor sends
// such segments on to the old node instead, which still holds the connection:
//
//   - an nftables netdev table per address, hooked at ingress of each interface the address is answered on, before
//     the IP stack (and kube-proxy) sees anything;
//   - a SYN to the address addressed to this node records its (client address, port) in a set: that flow starts here;
//   - any other TCP segment to the address, addressed to this node, whose flow is not in the set is rewritten to the
//     old node's MAC (the source to this node's, so the switch learns nothing wrong) and sent back out of the same
//     interface;
//   - the table is in place before this node answers or announces the address, and removed FORWARD_GRACE_MS after
//     the old node stopped listing it (its remaining connections end with it, as they would without a handover).
//
// UDP and other protocols are not forwarded: there is no flow start to tell new from old. Needs nft and CAP_NET_ADMIN;
// without them the speaker logs why once and hands over without it (connections held by the old node are reset).
import { spawn } from 'node:child_process';
import { familyOfIP, parseIPStrict } from '../../api/ip.js';
import type { Logger } from '../runtime/log.js';
import type { PublishedInterface } from './node-lease.js';
import { interfaceHolds } from './plan.js';

/** How long the forwarding outlasts the old node's listing: segments already on the way still reach it. */
export const FORWARD_GRACE_MS = 2000;

/** One address taken over from a leaving node: where its segments arrive and where they go on to. */
export interface ForwardWindow {
  address: string;
  /** The old node's MAC on the address's subnet. */
  oldMac: string;
  /** This node's interfaces that answer the address, with their MACs. */
  interfaces: ReadonlyArray<{ name: string; mac: string }>;
}

const TABLE_PREFIX = 'switchboard_handover_';

/** The nftables table of `address`'s window: one name per address, so windows open and close independently. */
export function forwardTableName(address: string): string {
  return TABLE_PREFIX + address.replace(/[^0-9a-zA-Z]/g, '_');
}

/** The nft script that (re)creates the window's table. Interface names are quoted; addresses and MACs are parsed values. */
export function forwardScript(w: ForwardWindow): string {
  const v6 = familyOfIP(w.address) === 'IPv6';
  const [l3, addr] = v6 ? ['ip6', 'ipv6_addr'] : ['ip', 'ipv4_addr'];
  const table = forwardTableName(w.address);
  const lines = [
    `table netdev ${table} {}`,
    `delete table netdev ${table}`,
    `table netdev ${table} {`,
    // Flows that start here during the window; a flow lives as long as the window at most.
    `  set started { type ${addr} . inet_service; flags dynamic, timeout; timeout 10m; }`,
  ];
  for (const [i, iface] of w.interfaces.entries()) {
    lines.push(
      `  chain ingress${i} {`,
      `    type filter hook ingress device ${JSON.stringify(iface.name)} priority -500; policy accept;`,
      `    ether daddr ${iface.mac} ${l3} daddr ${w.address} tcp flags & (syn | ack) == syn add @started { ${l3} saddr . tcp sport } accept`,
      `    ether daddr ${iface.mac} ${l3} daddr ${w.address} meta l4proto tcp ${l3} saddr . tcp sport != @started counter ether saddr set ${iface.mac} ether daddr set ${w.oldMac} fwd to ${JSON.stringify(iface.name)}`,
      '  }',
    );
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** The old node's MAC for `address`: of its published interfaces, the one whose subnet holds the address. */
export function macFor(address: string, interfaces: readonly PublishedInterface[]): string | undefined {
  const ip = parseIPStrict(address);
  if (!ip) return undefined;
  const on = interfaces.filter((i) => i.mac && interfaceHolds(i, [ip]));
  return on.length === 1 ? on[0].mac : undefined;
}

/** Runs nft with `args`, `stdin` as its input; resolves with its output, rejects with its message. */
export type NftRunner = (args: readonly string[], stdin?: string) => Promise<string>;

export const runNft: NftRunner = (args, stdin) =>
  new Promise((resolve, reject) => {
    const child = spawn('nft', [...args], { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(stderr.trim() || `nft exited with ${code}`))));
    // An nft that exits before reading (a bad flag, no permission) closes the pipe: EPIPE here, its reason at close.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(stdin);
  });

/** The packets a window's tables forwarded, from `nft list table` output (one counter per interface). */
export function forwardedPackets(listing: string): number {
  return [...listing.matchAll(/counter packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

const sameWindow = (a: ForwardWindow, b: ForwardWindow): boolean =>
  a.oldMac === b.oldMac && a.interfaces.length === b.interfaces.length && a.interfaces.every((i, k) => i.name === b.interfaces[k].name && i.mac === b.interfaces[k].mac);

interface WindowState {
  window: ForwardWindow;
  state: 'opening' | 'open' | 'failed';
  opened: Promise<void>;
  closeTimer?: NodeJS.Timeout;
}

export interface HandoverForwarderOptions {
  log: Logger;
  /** Injected for tests. */
  run?: NftRunner;
  /** A window finished opening (or failed to): the election may answer the address now. */
  onReady: () => void;
}

/**
 * The windows of the addresses this node is taking over. sync() is called by every election pass with the windows it
 * wants; ready() says whether an address may be answered yet (its table is in place, or forwarding is unavailable).
 */
export class HandoverForwarder {
  private readonly windows = new Map<string, WindowState>();
  /** Per address, the end of the last nft operation asked for on its table (inTurn). */
  private readonly turns = new Map<string, Promise<void>>();
  private readonly run: NftRunner;
  /** Why forwarding does not work on this node (no nft, no CAP_NET_ADMIN): set by the first failure, logged once. */
  private unavailable: string | undefined;

  constructor(private readonly options: HandoverForwarderOptions) {
    this.run = options.run ?? runNft;
  }

  /** Removes the tables a previous process left (it stopped during a window). */
  async removeStale(): Promise<void> {
    try {
      const tables = [...(await this.run(['list', 'tables', 'netdev'])).matchAll(new RegExp(`^table netdev (${TABLE_PREFIX}\\w+)$`, 'gm'))].map((m) => m[1]);
      if (tables.length > 0) await this.run(['-f', '-'], tables.map((t) => `delete table netdev ${t}\n`).join(''));
    } catch {
      // No nft or no permission: the first window says so.
    }
  }

  ready(address: string): boolean {
    const w = this.windows.get(address);
    return this.unavailable !== undefined || (w !== undefined && w.state !== 'opening');
  }

  /** Opens the windows not yet open; the others close FORWARD_GRACE_MS after they are no longer wanted. */
  sync(wanted: readonly ForwardWindow[]): void {
    const byAddress = new Map(wanted.map((w) => [w.address, w]));
    for (const [address, w] of this.windows) {
      if (byAddress.has(address)) {
        clearTimeout(w.closeTimer);
        w.closeTimer = undefined;
      } else {
        w.closeTimer ??= setTimeout(() => void this.close(address), FORWARD_GRACE_MS);
      }
    }
    if (this.unavailable !== undefined) return;
    for (const window of wanted) {
      const current = this.windows.get(window.address);
      // Another old node (or other interfaces) within the grace: the table is replaced, its segments go there now.
      if (!current || !sameWindow(current.window, window)) this.windows.set(window.address, this.open(window));
    }
  }

  /**
   * Runs `op` once every earlier nft operation on `address`'s table has ended: a window wanted again while its
   * close is still running gets a new table after the old one's deletion, never one the close then deletes.
   */
  private inTurn<T>(address: string, op: () => Promise<T>): Promise<T> {
    const previous = this.turns.get(address);
    const result = previous ? previous.then(op) : op();
    // Whatever its outcome, the turn ends; the last one forgets the address.
    const forget = () => {
      if (this.turns.get(address) === done) this.turns.delete(address);
    };
    const done: Promise<void> = result.then(forget, forget);
    this.turns.set(address, done);
    return result;
  }

  private open(window: ForwardWindow): WindowState {
    const state: WindowState = { window, state: 'opening', opened: Promise.resolve() };
    state.opened = this.inTurn(window.address, () => this.run(['-f', '-'], forwardScript(window)))
      .then(
        () => {
          state.state = 'open';
          this.options.log.info("forwarding the leaving node's connections to it", { address: window.address, to: window.oldMac, interfaces: window.interfaces.map((i) => i.name) });
        },
        (err: unknown) => {
          state.state = 'failed';
          if (this.unavailable !== undefined) return;
          this.unavailable = err instanceof Error ? err.message : String(err);
          this.options.log.warn('handover forwarding unavailable (it needs nft and CAP_NET_ADMIN): connections the leaving node holds are reset', { error: this.unavailable });
        },
      )
      .finally(() => this.options.onReady());
    return state;
  }

  private async close(address: string): Promise<void> {
    const w = this.windows.get(address);
    if (!w) return;
    this.windows.delete(address);
    clearTimeout(w.closeTimer);
    await this.inTurn(address, async () => {
      await w.opened;
      if (w.state === 'failed') return;
      const table = forwardTableName(address);
      try {
        const packets = forwardedPackets(await this.run(['list', 'table', 'netdev', table]));
        await this.run(['delete', 'table', 'netdev', table]);
        this.options.log.info("stopped forwarding the leaving node's connections", { address, forwardedPackets: packets });
      } catch (err) {
        this.options.log.warn('could not remove a handover forwarding table', { address, table, error: String(err) });
      }
    });
  }

  /** Removes every table (the speaker stops). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.windows.keys()].map((a) => this.close(a)));
  }
}
