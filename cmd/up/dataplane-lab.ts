// A cluster's data plane in network namespaces, for the traffic tests, the programming-latency benchmark and the
// demo: the NetLab bridge (the "LAN") with one namespace per Node, whose eth0 address is the InternalIP its Node
// object reports; a real kube-proxy in each node namespace against the local API server (through the FORWARDER);
// "pods" as namespaces behind their node (a veth into the node's cbr0 bridge, dual-stack: 10.244.<n>.0/24 and
// fd00:10:244:<n>::/64, routes between nodes) answering HTTP with their pod name; and request agents that send HTTP from inside a namespace. Pod objects
// are written by the lab with the status a kubelet would set. Nothing is configured outside the namespaces it
// creates (kube-proxy's nftables/iptables state lives in the node namespaces); stop() removes all of it.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Nodes, Pods } from '../../api/resources.js';
import type { Pod } from '../../api/wire.js';
import { ManagedProcess } from './controlplane/processes.js';
import { FORWARDER, NetLab, inNs, type LabHost } from './netlab.js';

/** The port every lab pod serves HTTP on (containerPort "http"). */
export const POD_PORT = 8080;
export const CLUSTER_CIDR = '10.244.0.0/16';
export const CLUSTER_CIDR6 = 'fd00:10:244::/56';
/** The node's pod ranges, IPv4 and IPv6 (`index` 1-based). */
const podRanges = (index: number) => ({ v4: `10.244.${index}.0/24`, v6: `fd00:10:244:${index}::/64` });
const SWITCHBOARD = fileURLToPath(new URL('../switchboard.js', import.meta.url));

/**
 * Runs in the root namespace. For each pod it starts a short-lived listener inside the pod's namespace, which
 * creates the listening socket there and hands it over the IPC channel (the socket stays in the pod's namespace);
 * this one process then answers on all of them with the pod's name. A process per pod would cost ~40 MB each.
 */
const POD_HOST = `
const { spawn } = require('child_process');
const http = require('http');
// The listener exits only once the host has the socket: on its own exit, the 'exit' event could overtake the message.
const LISTENER = "const s = require('net').createServer(); s.listen(Number(process.argv[1]), '::', () => process.send('listening', s)); process.on('message', () => process.exit(0));";
const servers = new Map();
process.on('message', (m) => {
  if (m.op === 'remove') {
    servers.get(m.name)?.close();
    servers.delete(m.name);
    return process.send({ id: m.id });
  }
  const child = spawn('ip', ['netns', 'exec', m.ns, process.execPath, '-e', LISTENER, String(m.port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let done = false;
  child.on('message', (_msg, server) => {
    const answer = http.createServer((req, res) => res.end(m.name));
    server.on('connection', (socket) => answer.emit('connection', socket));
    servers.set(m.name, server);
    done = true;
    child.send('taken', () => undefined);
    process.send({ id: m.id });
  });
  child.on('exit', (code) => done || process.send({ id: m.id, error: 'listener in ' + m.ns + ' exited with ' + code }));
});
`;

/**
 * Runs inside a namespace and sends HTTP GETs on command, each on a new connection (so each is a new conntrack entry
 * that kube-proxy balances afresh). `batch`: count requests, `concurrency` at a time. `stream`: one request every
 * intervalMs for durationMs, not waiting for answers. Every result: start time, duration, body or error. `dns`: one
 * query to a given server. `kept`: one request on the kept-alive connection named `key` (opened by its first
 * request), with the client's port, so a caller sees whether the connection carried on.
 */
const AGENT = `
const http = require('http');
const kept = new Map();
// One GET, on a new connection, or with keptKey on the kept-alive connection of that name (its first request opens it).
function get(url, timeoutMs, keptKey) {
  let agent = false;
  if (keptKey !== undefined) {
    agent = kept.get(keptKey);
    if (!agent) kept.set(keptKey, (agent = new http.Agent({ keepAlive: true, maxSockets: 1 })));
  }
  return new Promise((resolve) => {
    const at = Date.now();
    const done = (r) => resolve({ at, ms: Date.now() - at, ...r });
    // The client closes first (keep-alive asked, socket destroyed after the answer), so TIME_WAIT stays on its side:
    // with the pod closing first, a masqueraded connection reusing the port could meet the pod's TIME_WAIT (a reset).
    const req = http.get(url, { agent, timeout: timeoutMs, headers: { connection: 'keep-alive' } }, (res) => {
      let body = '';
      const socket = res.socket;
      const port = socket.localPort;
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if (keptKey === undefined) socket.destroy();
        done(res.statusCode === 200 ? { body, port } : { error: 'HTTP ' + res.statusCode });
      });
      res.on('error', (e) => done({ error: e.code || e.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => done({ error: e.code || e.message }));
  });
}
process.on('message', async (m) => {
  const results = [];
  if (m.op === 'kept') return process.send({ id: m.id, results: [await get(m.url, m.timeoutMs, m.key)] });
  if (m.op === 'dns') {
    const resolver = new (require('dns').promises.Resolver)({ timeout: 2000, tries: 1 });
    resolver.setServers([m.server]);
    return resolver.resolve(m.name, m.type).then((answers) => process.send({ id: m.id, answers }), (e) => process.send({ id: m.id, error: e.code || e.message }));
  }
  if (m.op === 'batch') {
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(m.concurrency, m.count) }, async () => {
      while (next < m.count) { next++; results.push(await get(m.url, m.timeoutMs)); }
    }));
  } else {
    const pending = [];
    const started = Date.now();
    for (let i = 0; started + i * m.intervalMs < started + m.durationMs; i++) {
      const wait = started + i * m.intervalMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pending.push(get(m.url, m.timeoutMs).then((r) => results.push(r)));
    }
    await Promise.all(pending);
    results.sort((a, b) => a.at - b.at);
  }
  process.send({ id: m.id, results });
});
`;

export interface RequestResult {
  /** Start time (ms since the epoch). */
  at: number;
  ms: number;
  /** The answering pod's name. */
  body?: string;
  error?: string;
  /** The client's port: on a kept-alive connection (RequestAgent.kept), the same port means the same connection. */
  port?: number;
}

/** A helper process with a message channel: each request carries an id and resolves with the matching answer. */
class Commanded {
  private nextId = 0;
  private readonly waiting = new Map<number, (answer: Record<string, unknown>) => void>();

  constructor(readonly proc: ManagedProcess) {
    proc.onMessage((message) => {
      const answer = message as Record<string, unknown>;
      this.waiting.get(answer.id as number)?.(answer);
      this.waiting.delete(answer.id as number);
    });
    void proc.exited.then(() => {
      for (const resolve of this.waiting.values()) resolve({ error: `${proc.name} exited:\n${proc.logTail()}` });
      this.waiting.clear();
    });
  }

  command(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.send({ ...message, id });
    });
  }
}

/** Sends HTTP requests from inside one namespace. */
export class RequestAgent extends Commanded {
  /** `count` requests to `url`, `concurrency` at a time. */
  async batch(url: string, count: number, concurrency = 8, timeoutMs = 2000): Promise<RequestResult[]> {
    return (await this.command({ op: 'batch', url, count, concurrency, timeoutMs })).results as RequestResult[];
  }

  async get(url: string, timeoutMs = 2000): Promise<RequestResult> {
    return (await this.batch(url, 1, 1, timeoutMs))[0];
  }

  /** The answers of a DNS query to `server` (host:port), or the resolver's error code (e.g. ENOTFOUND). */
  async resolve(server: string, name: string, type: 'A' | 'CNAME' | 'SRV'): Promise<{ answers?: unknown[]; error?: string }> {
    const answer = await this.command({ op: 'dns', server, name, type });
    return { answers: answer.answers as unknown[] | undefined, error: answer.error as string | undefined };
  }

  /** One request on the kept-alive connection `key` (its first request opens it): the same port means the same connection. */
  async kept(url: string, key: string, timeoutMs = 2000): Promise<RequestResult> {
    return ((await this.command({ op: 'kept', url, key, timeoutMs })).results as RequestResult[])[0];
  }

  /** One request every `intervalMs` for `durationMs`; resolves with all results by start time once all have ended. */
  async stream(url: string, intervalMs: number, durationMs: number, timeoutMs = 1000): Promise<RequestResult[]> {
    return (await this.command({ op: 'stream', url, intervalMs, durationMs, timeoutMs })).results as RequestResult[];
  }
}

export interface LabNode {
  name: string;
  /** 1-based: the node's LAN addresses are 192.0.2.(10+index) and 2001:db8::(10+index), its pod ranges 10.244.index.0/24 and fd00:10:244:index::/64. */
  index: number;
  host: LabHost;
  agent: RequestAgent;
  kubeProxy?: ManagedProcess;
  speaker?: ManagedProcess;
  forwarder?: ManagedProcess;
}

export interface LabPod {
  name: string;
  namespace: string;
  node: LabNode;
  ip: string;
  ipv6: string;
  netns: string;
}

export interface DataplaneLabOptions {
  client: KubeClient;
  /** The control plane's admin kubeconfig (its server is https://127.0.0.1:<apiPort>). */
  kubeconfig: string;
  apiPort: number;
  workDir: string;
  kubeProxyBinary: string;
  nodeNames: string[];
  proxyMode?: 'nftables' | 'iptables';
  /** The built dist/cmd/switchboard.js, for speakers (default: the one beside this file when it runs from dist/). */
  switchboard?: string;
}

export interface PodSpec {
  namespace: string;
  name: string;
  node: LabNode;
  labels: Record<string, string>;
  ready: boolean;
  /** spec.hostname/subdomain, for headless DNS names. */
  hostname?: string;
  subdomain?: string;
}

/** `command` with its arguments, rejecting on a non-zero exit; does not block the event loop. */
function exec(cmd: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd.join(' ')} failed (${code}): ${out}`))));
    if (input !== undefined) child.stdin?.end(input);
  });
}

export class DataplaneLab {
  readonly net = new NetLab();
  readonly nodes: LabNode[] = [];
  readonly pods = new Map<string, LabPod>();
  clientAgent!: RequestAgent;
  private readonly processes: ManagedProcess[] = [];
  private podHost!: Commanded;
  private socketPath = '';
  private podSerial = 0;
  /** Per node: the pod addresses (last octet) in use, and the last one handed out. */
  private readonly usedOctets = new Map<string, Set<number>>();
  private readonly lastOctet = new Map<string, number>();

  private proxyMode: 'nftables' | 'iptables';

  constructor(private readonly o: DataplaneLabOptions) {
    this.proxyMode = o.proxyMode ?? 'nftables';
  }

  private start(name: string, cmd: string[], ipc = false): ManagedProcess {
    const p = ManagedProcess.start(name, cmd[0], cmd.slice(1), join(this.o.workDir, `${name}.log`), process.env, ipc);
    this.processes.push(p);
    return p;
  }

  /** The namespaces, Node objects, forwarders, kube-proxies (ready), the pod host and the agents. */
  async create(): Promise<this> {
    const { client } = this.o;
    this.net.create(this.o.nodeNames.length);
    this.socketPath = join(this.o.workDir, 'api.sock');
    this.start('forwarder-root', [process.execPath, '-e', FORWARDER, this.socketPath, String(this.o.apiPort)]);
    this.podHost = new Commanded(this.start('pod-host', [process.execPath, '-e', POD_HOST], true));
    this.clientAgent = new RequestAgent(this.start('agent-client', inNs(this.net.client!.ns, process.execPath, '-e', AGENT), true));
    for (const [i, name] of this.o.nodeNames.entries()) {
      const host = this.net.nodes[i];
      const index = i + 1;
      const ns = host.ns;
      await exec(['ip', '-n', ns, '-batch', '-'], ['link add cbr0 type bridge', `addr add 10.244.${index}.1/24 dev cbr0`, `addr add fd00:10:244:${index}::1/64 dev cbr0 nodad`, 'link set cbr0 up', ...this.lanRoutes(index)].join('\n') + '\n');
      await exec(inNs(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'));
      const agent = new RequestAgent(this.start(`agent-${name}`, inNs(ns, process.execPath, '-e', AGENT), true));
      const node: LabNode = { name, index, host, agent };
      this.nodes.push(node);
      this.usedOctets.set(name, new Set());
      node.forwarder = this.start(`forwarder-${name}`, inNs(ns, process.execPath, '-e', FORWARDER, String(this.o.apiPort), this.socketPath));
      await client.createIfAbsent(Nodes, { metadata: { name, labels: { 'kubernetes.io/hostname': name } } });
      const ranges = podRanges(index);
      await client.patch(Nodes, name, { spec: { podCIDR: ranges.v4, podCIDRs: [ranges.v4, ranges.v6] } }, 'merge');
      await client.patch(
        Nodes,
        name,
        {
          status: {
            addresses: [{ type: 'InternalIP', address: host.ipv4 }, { type: 'InternalIP', address: host.ipv6 }, { type: 'Hostname', address: name }],
            conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: new Date().toISOString() }],
          },
        },
        'merge',
        { subresource: 'status' },
      );
    }
    for (const node of this.nodes) this.startKubeProxy(node);
    await this.kubeProxiesHealthy();
    return this;
  }

  /** Routes to the other nodes' pods, and default routes that make ClusterIPs routable from the node itself (the route is chosen before kube-proxy's DNAT). */
  private lanRoutes(index: number): string[] {
    const others = this.net.nodes.map((_, j) => j + 1).filter((j) => j !== index);
    return [
      ...others.flatMap((j) => {
        const ranges = podRanges(j);
        return [`route replace ${ranges.v4} via ${this.net.nodes[j - 1].ipv4}`, `route replace ${ranges.v6} via ${this.net.nodes[j - 1].ipv6}`];
      }),
      'route replace default dev eth0',
      'route replace ::/0 dev eth0',
    ];
  }

  /** Takes the node off the LAN (its eth0 down) or back on, routes included (a link going down drops them). */
  async setLanLink(node: LabNode, up: boolean): Promise<void> {
    await exec(['ip', '-n', node.host.ns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
    // A link going down flushes its IPv6 address (keep_addr_on_down is off) as well as the routes.
    if (up) await exec(['ip', '-n', node.host.ns, '-batch', '-'], [`addr replace ${node.host.ipv6}/64 dev eth0 nodad`, ...this.lanRoutes(node.index)].join('\n') + '\n');
  }

  /**
   * Replaces every node's kube-proxy with one in `mode` and waits until they have synced. kube-proxy removes the
   * other mode's rules at start (cmd/kube-proxy/app/server_linux.go, platformCleanup).
   */
  async restartKubeProxies(mode: 'nftables' | 'iptables'): Promise<void> {
    this.proxyMode = mode;
    for (const node of this.nodes) {
      const old = node.kubeProxy;
      if (!old) continue;
      this.processes.splice(this.processes.indexOf(old), 1);
      await old.stop();
    }
    for (const node of this.nodes) this.startKubeProxy(node);
    await this.kubeProxiesHealthy();
  }

  /** kube-proxy answers /healthz once it has synced its rules at least once. */
  private async kubeProxiesHealthy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.until(`kube-proxy on ${node.name} healthy`, async () => (await node.agent.get('http://127.0.0.1:10256/healthz', 1000)).error === undefined, 60_000)));
  }

  private startKubeProxy(node: LabNode): void {
    node.kubeProxy = this.start(`kube-proxy-${node.name}-${this.proxyMode}`, inNs(node.host.ns, this.o.kubeProxyBinary,
      `--kubeconfig=${this.o.kubeconfig}`,
      `--hostname-override=${node.name}`,
      `--proxy-mode=${this.proxyMode}`,
      `--cluster-cidr=${CLUSTER_CIDR},${CLUSTER_CIDR6}`,
      // The conntrack table size is a host-wide setting, read-only in a namespace: leave it (and its timeouts) alone.
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      '--metrics-bind-address=127.0.0.1:10249',
      '--healthz-bind-address=127.0.0.1:10256',
      '--v=1',
    ));
  }

  private async until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      const dead = this.processes.find((p) => !p.running && !p.name.startsWith('speaker-'));
      if (dead) throw new Error(`${dead.name} exited while waiting for ${what}:\n${dead.logTail()}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * The node's real `switchboard speaker` (as the L2 tests run it), with `args` after the common flags. Heartbeats on
   * the node's LAN address, as the DaemonSet runs it (HEARTBEAT_ADDRESS is the node IP).
   */
  startSpeaker(node: LabNode, namespace: string, args: string[] = []): ManagedProcess {
    node.speaker = this.start(`speaker-${node.name}-${this.processes.length}`, inNs(node.host.ns, process.execPath, this.o.switchboard ?? SWITCHBOARD, 'speaker',
      `--node-name=${node.name}`, `--kubeconfig=${this.o.kubeconfig}`, `--namespace=${namespace}`, '--metrics-bind-address=0', '--log-level=warn', `--heartbeat-address=${node.host.ipv4}`, ...args));
    return node.speaker;
  }

  node(name: string): LabNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no lab node ${name}`);
    return node;
  }

  /**
   * The next free pod address of the node after the last one handed out, as CNI's host-local IPAM allocates
   * (plugins/ipam/host-local/backend/allocator): a released address is not handed out again at once, so a new
   * pod does not inherit the neighbour entries (the old MAC) its node still holds for a pod just removed.
   */
  private allocateOctet(node: LabNode): number {
    const used = this.usedOctets.get(node.name)!;
    const last = this.lastOctet.get(node.name) ?? 1;
    for (let step = 1; step <= 253; step++) {
      const octet = 2 + ((last - 2 + step) % 253);
      if (used.has(octet)) continue;
      used.add(octet);
      this.lastOctet.set(node.name, octet);
      return octet;
    }
    throw new Error(`node ${node.name} has no pod address left`);
  }

  /** A pod namespace behind `spec.node` serving HTTP, and its Pod object with the status a kubelet would write. */
  async addPod(spec: PodSpec): Promise<LabPod> {
    const { node } = spec;
    const octet = this.allocateOctet(node);
    const ip = `10.244.${node.index}.${octet}`;
    const ipv6 = `fd00:10:244:${node.index}::${octet.toString(16)}`;
    const serial = this.podSerial++;
    const netns = `sbp${serial}-${this.net.id}`;
    const tmp = `sbq${this.net.id}${serial}`.slice(0, 15);
    const pod: LabPod = { name: spec.name, namespace: spec.namespace, node, ip, ipv6, netns };
    await exec(['ip', 'netns', 'add', netns]);
    this.pods.set(`${spec.namespace}/${spec.name}`, pod);
    await exec(['ip', 'link', 'add', tmp, 'netns', netns, 'type', 'veth', 'peer', 'name', `vp${octet}`, 'netns', node.host.ns]);
    await exec(['ip', '-n', netns, '-batch', '-'], [
      'link set lo up',
      `link set ${tmp} name eth0`,
      `addr add ${ip}/24 dev eth0`,
      `addr add ${ipv6}/64 dev eth0 nodad`,
      'link set eth0 up',
      `route add default via 10.244.${node.index}.1`,
      `route add default via fd00:10:244:${node.index}::1`,
    ].join('\n') + '\n');
    await exec(['ip', '-n', node.host.ns, 'link', 'set', `vp${octet}`, 'master', 'cbr0', 'up']);
    const served = await this.podHost.command({ op: 'add', name: spec.name, ns: netns, port: POD_PORT });
    if (served.error) throw new Error(String(served.error));
    await this.o.client.create<Pod>(Pods, {
      metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels },
      spec: {
        nodeName: node.name,
        hostname: spec.hostname,
        subdomain: spec.subdomain,
        containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10', ports: [{ name: 'http', containerPort: POD_PORT }] }],
      },
    });
    await this.setPodStatus(pod, { ready: spec.ready });
    return pod;
  }

  pod(namespace: string, name: string): LabPod {
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) throw new Error(`no lab pod ${namespace}/${name}`);
    return pod;
  }

  /** Writes the pod's status as kubelet does: Running with its IP, Ready as given. */
  async setPodStatus(pod: LabPod, o: { ready: boolean }): Promise<void> {
    const now = new Date().toISOString();
    await this.o.client.patch(
      Pods,
      pod.name,
      {
        status: {
          phase: 'Running',
          podIP: pod.ip,
          podIPs: [{ ip: pod.ip }, { ip: pod.ipv6 }],
          hostIP: pod.node.host.ipv4,
          conditions: [
            { type: 'Ready', status: o.ready ? 'True' : 'False', lastTransitionTime: now },
            { type: 'ContainersReady', status: o.ready ? 'True' : 'False', lastTransitionTime: now },
          ],
        },
      },
      'strategic',
      { namespace: pod.namespace, subresource: 'status' },
    );
  }

  /**
   * A graceful delete as the API server and kubelet carry it out: the DELETE sets deletionTimestamp (a scheduled,
   * running Pod stays until its kubelet confirms), and kubelet marks it not ready; it still serves until removed.
   */
  async terminatePod(pod: LabPod): Promise<void> {
    await this.o.client.delete(Pods, pod.name, { namespace: pod.namespace });
    await this.setPodStatus(pod, { ready: false });
  }

  /** Kubelet's final delete (grace period 0), then the pod's namespace and server go. */
  async removePod(pod: LabPod): Promise<void> {
    await this.o.client
      .request('DELETE', this.o.client.path(Pods, pod.namespace, pod.name), { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0 })
      .catch(() => undefined);
    await this.podHost.command({ op: 'remove', name: pod.name });
    await exec(['ip', 'netns', 'del', pod.netns]).catch(() => undefined);
    this.usedOctets.get(pod.node.name)?.delete(Number(pod.ip.split('.')[3]));
    this.pods.delete(`${pod.namespace}/${pod.name}`);
  }

  async stop(): Promise<void> {
    for (const p of this.processes.reverse()) await p.kill();
    this.processes.length = 0;
    await Promise.all([...this.pods.values()].map((pod) => exec(['ip', 'netns', 'del', pod.netns]).catch(() => undefined)));
    this.pods.clear();
    this.net.destroy();
  }
}
