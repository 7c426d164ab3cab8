// A small L2 network made of network namespaces, for the speaker's real-network tests: a bridge in its own
// namespace, "node" namespaces and a client namespace each with an eth0 plugged into it, on the documentation
// prefixes 192.0.2.0/24 and 2001:db8::/64. Nothing is configured outside the namespaces it creates, whose names
// carry a random id; destroy() removes them all (and with them every veth).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface LabHost {
  /** Namespace name. */
  ns: string;
  ipv4: string;
  ipv6: string;
  mac: string;
}

/** Why the lab cannot be built here, or undefined when it can. */
export function netlabUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces and packet sockets need it)';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return '`ip netns` is unavailable';
  return undefined;
}

export function run(cmd: readonly string[], allowFail = false): string {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

/** Like run(), without blocking the event loop (a test process also serves sockets while tools run). */
export function runAsync(cmd: readonly string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', () => resolve(out));
  });
}

export const inNs = (ns: string, ...cmd: string[]): string[] => ['ip', 'netns', 'exec', ns, ...cmd];

export const LAN_PREFIX4 = '192.0.2';
export const LAN_PREFIX6 = '2001:db8::';

export class NetLab {
  readonly id = randomBytes(3).toString('hex');
  readonly lan = `sbl-${this.id}`;
  readonly nodes: LabHost[] = [];
  client: LabHost | undefined;
  private readonly namespaces: string[] = [];

  /** The lan (bridge) namespace, `nodeCount` nodes at .11, .12, … and a client at .100. */
  create(nodeCount: number): this {
    this.addNamespace(this.lan);
    run(['ip', '-n', this.lan, 'link', 'add', 'br0', 'type', 'bridge']);
    run(['ip', '-n', this.lan, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= nodeCount; i++) this.nodes.push(this.addHost(`sbn${i}-${this.id}`, `p${i}`, 10 + i));
    this.client = this.addHost(`sbc-${this.id}`, 'pc', 100);
    return this;
  }

  /** One more host on the LAN at .`host` (e.g. another machine holding an address), in namespace sb<tag>-<id>. */
  addLanHost(tag: string, host: number): LabHost {
    return this.addHost(`sb${tag}-${this.id}`, `p${tag}`, host);
  }

  private addNamespace(ns: string): void {
    run(['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  private addHost(ns: string, port: string, host: number): LabHost {
    this.addNamespace(ns);
    // Unique names while the pair exists in the root namespace for a moment; renamed to eth0 inside.
    const tmp = `sbv${host}${this.id}`;
    run(['ip', 'link', 'add', tmp, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', this.lan]);
    run(['ip', '-n', ns, 'link', 'set', tmp, 'name', 'eth0']);
    run(['ip', '-n', this.lan, 'link', 'set', port, 'master', 'br0', 'up']);
    run(inNs(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.eth0.accept_dad=0'));
    const ipv4 = `${LAN_PREFIX4}.${host}`;
    const ipv6 = `${LAN_PREFIX6}${host}`;
    run(['ip', '-n', ns, 'addr', 'add', `${ipv4}/24`, 'dev', 'eth0']);
    run(['ip', '-n', ns, '-6', 'addr', 'add', `${ipv6}/64`, 'dev', 'eth0', 'nodad']);
    run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    const mac = run(inNs(ns, 'cat', '/sys/class/net/eth0/address')).trim();
    return { ns, ipv4, ipv6, mac };
  }

  destroy(): void {
    for (const ns of this.namespaces.reverse()) run(['ip', 'netns', 'del', ns], true);
    this.namespaces.length = 0;
  }
}

/**
 * A byte forwarder: `node -e FORWARDER <listen> <connect>`, each a TCP port on 127.0.0.1 or a Unix socket path.
 * A namespace has its own loopback, so a process inside reaches the API server on the root namespace's
 * 127.0.0.1 through a Unix socket (a path in the shared filesystem): port → socket inside, socket → port outside.
 * Killing the inside forwarder cuts that node off the API server, which is how the tests make a partition.
 */
export const FORWARDER = `
const net = require('net');
const at = (s) => (/^\\d+$/.test(s) ? { port: Number(s), host: '127.0.0.1' } : { path: s });
const [listen, connect] = process.argv.slice(1);
net.createServer((a) => {
  const b = net.connect(at(connect));
  const end = () => { a.destroy(); b.destroy(); };
  a.pipe(b).pipe(a);
  for (const s of [a, b]) { s.on('error', end); s.on('close', end); }
}).listen(at(listen), () => console.log('ready'));
`;
