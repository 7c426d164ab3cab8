// Pieces shared by the speaker's network-namespace suites (controllers/speaker/*.int.test.ts): the lab itself
// (SpeakerLab: namespaces, API server, allocation controller, speaker processes), a LoadBalancer Service with one
// ready endpoint, what arping and ndisc6 hear from a namespace, and how a capture's ARP answers are judged.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../../controllers/runtime/client.js';
import { createLogger } from '../../controllers/runtime/log.js';
import { Manager } from '../../controllers/runtime/manager.js';
import { ensureCRDs } from '../../controllers/loadbalancer/crds.js';
import { leaseDurationMs } from '../../controllers/speaker/election.js';
import { EndpointSlices, Leases, Namespaces, Nodes, Services } from '../../api/resources.js';
import type { Lease, Service } from '../../api/wire.js';
import { IPAddressPools } from '../../crds/ipaddresspool.js';
import { L2Advertisements } from '../../crds/l2advertisement.js';
import { ServiceL2Statuses, type ServiceL2Status } from '../../crds/servicel2status.js';
import { loadBalancerJob } from '../../cmd/jobs/loadbalancer.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { ManagedProcess } from '../../cmd/up/controlplane/processes.js';
import { FORWARDER, LAN_PREFIX4, LAN_PREFIX6, NetLab, inNs, runAsync, type LabHost } from '../../cmd/up/netlab.js';
import { Capture, arpProbe, isArpFrom, isNdpFrom, type Frame } from './capture.js';
import { eventually } from './cluster.js';

/** The built CLI the suites start speakers from (`npm run build`). */
export const SWITCHBOARD_CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/cmd/switchboard.js');
export const SPEAKER_NS = 'switchboard-system';
export const APP_NS = 'app';

/** The LoadBalancer allocation controller with its default flags, in this process; stop() ends it. */
export async function startLoadBalancerController(kubeconfig: string, namespace: string): Promise<{ stop: () => Promise<unknown> }> {
  const manager = new Manager({
    client: KubeClient.fromFile(kubeconfig),
    log: createLogger('controller', { level: 'warn' }),
    component: 'switchboard-controller',
    leaderElection: { enabled: false, namespace, leaseName: '', leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 },
  });
  await loadBalancerJob.register(manager, Object.fromEntries(Object.entries(loadBalancerJob.flags).map(([k, f]) => [k, f.default])), { namespace });
  const abort = new AbortController();
  const done = manager.run(abort.signal);
  return {
    stop: () => {
      abort.abort();
      return done;
    },
  };
}

export interface LabServiceOptions {
  /** externalTrafficPolicy Local. */
  local?: boolean;
  /** Where the one endpoint runs (default node1). */
  endpointNode?: string;
  annotations?: Record<string, string>;
}

/** A single-stack LoadBalancer Service with one ready endpoint (an EndpointSlice written by hand). */
export async function createLabService(client: KubeClient, namespace: string, name: string, family: 'IPv4' | 'IPv6', o: LabServiceOptions = {}): Promise<void> {
  await client.create<Service>(Services, {
    metadata: { name, namespace, annotations: o.annotations },
    spec: {
      type: 'LoadBalancer',
      ipFamilies: [family],
      ipFamilyPolicy: 'SingleStack',
      selector: { app: name },
      ports: [{ port: 80, protocol: 'TCP' }],
      externalTrafficPolicy: o.local ? 'Local' : 'Cluster',
    },
  });
  await client.create(EndpointSlices, {
    metadata: { name: `${name}-1`, namespace, labels: { 'kubernetes.io/service-name': name } },
    addressType: family,
    endpoints: [{ addresses: [family === 'IPv4' ? '10.244.1.5' : 'fd00:244::5'], conditions: { ready: true }, nodeName: o.endpointNode ?? 'node1' }],
    ports: [{ port: 8080, protocol: 'TCP' }],
  });
}

/** arping -c n from `ns`: the MACs that answered, one entry per reply, and the reply times in ms. */
export async function arping(ns: string, vip: string, count = 3): Promise<{ macs: string[]; rtts: number[] }> {
  const out = await runAsync(inNs(ns, 'arping', '-c', String(count), '-w', String(count + 1), '-I', 'eth0', vip));
  const replies = [...out.matchAll(/reply from \S+ \[([0-9A-F:]{17})\]\s+([\d.]+)ms/g)];
  return { macs: replies.map((m) => m[1].toLowerCase()), rtts: replies.map((m) => Number(m[2])) };
}

/** ndisc6 -m from `ns`: every advertisement's target link-layer address. */
export async function ndisc(ns: string, vip: string): Promise<string[]> {
  const out = await runAsync(inNs(ns, 'ndisc6', '-n', '-m', '-r', '1', '-w', '1000', vip, 'eth0'));
  return [...out.matchAll(/Target link-layer address: ([0-9A-F:]{17})/g)].map((m) => m[1].toLowerCase());
}

/** A node of a SpeakerLab: its namespace, and the forwarder and speaker processes running in it. */
export interface LabNode {
  name: string;
  host: LabHost;
  forwarder?: ManagedProcess;
  speaker?: ManagedProcess;
}

export interface SpeakerLabOptions {
  /** Prefix of the work directory and of the lines it prints. */
  tag: string;
  /** The tools the suite runs, checked before anything is built. */
  tools: string[];
  /** Gratuitous ARP / unsolicited NA bursts on takeover, and their spacing (what takeOver() waits for). */
  garpCount: number;
  garpIntervalMs: number;
  /** The suite's own speaker flags, besides the node, API, namespace, bursts, metrics (off) and log level (debug). */
  speakerFlags: (n: LabNode) => string[];
}

/**
 * The speakers' real-network lab: three node namespaces and a client on one bridge (netlab.ts), a dual-stack API
 * server of the suite's own in the root namespace, the allocation controller in this process, a pool "lan" of
 * .200–.209 (both families) with its L2Advertisement, and in each node namespace a real speaker process that
 * reaches the API server through a Unix-socket forwarder (netlab.ts FORWARDER; killing it cuts the node off).
 * Construct it, then start() in beforeAll and stop() in afterAll (stop() cleans up whatever start() built).
 */
export class SpeakerLab {
  readonly net = new NetLab();
  readonly nodes: LabNode[] = [];
  cp!: LocalControlPlane;
  client!: KubeClient;
  work = '';
  private apiPort = 0;
  private socketPath = '';
  private rootForwarder: ManagedProcess | undefined;
  private controller: { stop: () => Promise<unknown> } | undefined;

  constructor(private readonly o: SpeakerLabOptions) {}

  async start(): Promise<void> {
    for (const tool of this.o.tools) {
      if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: apt-get install iputils-arping ndisc6 tcpdump iptables`);
    }
    this.work = mkdtempSync(join(tmpdir(), `sb-${this.o.tag}-`));
    this.net.create(3);
    this.cp = await new LocalControlPlane({ serviceClusterIPRange: '10.99.0.0/16,fd00:99::/108', kubeControllerManager: false }).start();
    this.apiPort = Number(new URL(this.cp.server).port);
    const client = (this.client = KubeClient.fromFile(this.cp.kubeconfig, 'switchboard-test'));
    await ensureCRDs(client);
    for (const name of [SPEAKER_NS, APP_NS]) await client.create(Namespaces, { metadata: { name } });
    this.net.nodes.forEach((host, i) => this.nodes.push({ name: `node${i + 1}`, host }));
    for (const n of this.nodes) await client.create(Nodes, { metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } } });
    await client.create(IPAddressPools, {
      metadata: { name: 'lan' },
      spec: { addresses: [`${LAN_PREFIX4}.200-${LAN_PREFIX4}.209`, `${LAN_PREFIX6}200-${LAN_PREFIX6}209`] },
    });
    await client.create(L2Advertisements, { metadata: { name: 'lan' }, spec: { ipAddressPools: ['lan'] } });

    // The allocation controller, in this process.
    this.controller = await startLoadBalancerController(this.cp.kubeconfig, SPEAKER_NS);

    this.socketPath = join(this.work, 'api.sock');
    this.rootForwarder = ManagedProcess.start('forwarder-root', process.execPath, ['-e', FORWARDER, this.socketPath, String(this.apiPort)], join(this.work, 'forwarder-root.log'));
    for (const n of this.nodes) {
      this.startForwarder(n);
      this.startSpeaker(n);
    }
    await eventually(async () => {
      for (const n of this.nodes) if (!n.speaker?.running) throw new Error(`speaker ${n.name} exited:\n${n.speaker?.logTail()}`);
      return (await this.liveLeases()).length === 3;
    }, 60_000, 200);
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) {
      await n.speaker?.kill();
      await n.forwarder?.kill();
    }
    await this.rootForwarder?.kill();
    await this.controller?.stop();
    this.client?.close();
    await this.cp?.stop();
    this.net.destroy();
    if (this.work && !process.env.SWITCHBOARD_KEEP_CONTROLPLANE) rmSync(this.work, { recursive: true, force: true });
    else if (this.work) process.stderr.write(`[${this.o.tag}] speaker logs kept in ${this.work}\n`);
  }

  /** The client namespace. */
  get clientNs(): string {
    return this.net.client!.ns;
  }

  startForwarder(n: LabNode): void {
    n.forwarder = ManagedProcess.start(`forwarder-${n.name}`, 'ip', inNs(n.host.ns, process.execPath, '-e', FORWARDER, String(this.apiPort), this.socketPath).slice(1), join(this.work, `forwarder-${n.name}.log`));
  }

  startSpeaker(n: LabNode, kubeconfig = this.cp.kubeconfig): void {
    n.speaker = ManagedProcess.start(
      `speaker-${n.name}`,
      'ip',
      inNs(
        n.host.ns,
        process.execPath,
        SWITCHBOARD_CLI,
        'speaker',
        `--node-name=${n.name}`,
        `--kubeconfig=${kubeconfig}`,
        `--namespace=${SPEAKER_NS}`,
        ...this.o.speakerFlags(n),
        `--garp-count=${this.o.garpCount}`,
        `--garp-interval=${this.o.garpIntervalMs}ms`,
        '--metrics-bind-address=0',
        '--log-level=debug',
      ).slice(1),
      join(this.work, `speaker-${n.name}.log`),
    );
  }

  byName(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no lab node ${name}`);
    return n;
  }

  /** The holders of the speakers' Leases that are live now. */
  async liveLeases(): Promise<string[]> {
    const list = await this.client.list<Lease>(Leases, { namespace: SPEAKER_NS });
    // Each Lease by the duration it carries: an idle speaker renews every 10 s (node-lease.ts).
    return list.items.filter((l) => Date.parse(l.spec?.renewTime ?? '') + leaseDurationMs(l) + 500 > Date.now()).map((l) => l.spec?.holderIdentity ?? '');
  }

  /** The node the Service's ServiceL2Status names once it says Announced=True (optionally other than `not`). */
  announcer(name: string, not?: string): Promise<string> {
    return eventually(async () => {
      const s = await this.client.get<ServiceL2Status>(ServiceL2Statuses, name, APP_NS);
      const announced = s.status?.conditions?.find((c) => c.type === 'Announced');
      return announced?.status === 'True' && s.status?.node && s.status.node !== not ? s.status.node : false;
    }, 30_000);
  }

  /** Probes `vip` from the client about every 100 ms until stopped: arpProbe, or `ndisc6` in a loop. */
  probe(vip: string, family: 'IPv4' | 'IPv6', seconds = 30): () => Promise<void> {
    if (family === 'IPv4') return arpProbe(this.clientNs, vip, seconds);
    let stopped = false;
    const started = (async () => {
      while (!stopped) {
        await runAsync(inNs(this.clientNs, 'ndisc6', '-n', '-1', '-r', '1', '-w', '100', vip, 'eth0'));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    return async () => {
      stopped = true;
      await started;
    };
  }

  /**
   * Makes `victim` lose `service` (by `act`) while the client probes and tcpdump listens; returns who took over and
   * when the victim's last answer and the new node's first answer (gratuitous or solicited) were seen.
   */
  async takeOver(service: string, vip: string, family: 'IPv4' | 'IPv6', victim: LabNode, act: () => Promise<void>) {
    const from = family === 'IPv4' ? isArpFrom : isNdpFrom;
    const burst = family === 'IPv4' ? isGarpReply : isUnsolicitedNa;
    const capture = await Capture.start(this.clientNs, family === 'IPv4' ? 'arp' : 'icmp6');
    const stopProbing = this.probe(vip, family);
    await eventually(() => capture.frames.some((f) => from(f, vip, victim.host.mac)), 5000);
    const at = Date.now();
    await act();
    const next = await this.announcer(service, victim.name);
    const mac = this.byName(next).host.mac;
    await eventually(() => capture.frames.filter((f) => burst(f, vip, mac)).length >= this.o.garpCount, 10_000);
    await stopProbing();
    capture.stop();
    const seen = (m: string): number[] => capture.frames.filter((f) => from(f, vip, m)).map((f) => f.ms);
    await this.burstOver();
    return { at, next, mac, frames: capture.frames, lastOld: Math.max(...seen(victim.host.mac)), firstNew: Math.min(...seen(mac)) };
  }

  /** After a takeover, the gratuitous burst is over (tools would count its frames as answers). */
  burstOver(): Promise<void> {
    return new Promise((r) => setTimeout(r, this.o.garpCount * this.o.garpIntervalMs));
  }
}

export const isGarpRequest = (f: Frame, vip: string, mac: string): boolean => f.src === mac && f.text.includes(`Request who-has ${vip} (ff:ff:ff:ff:ff:ff) tell ${vip},`);
export const isGarpReply = (f: Frame, vip: string, mac: string): boolean => f.src === mac && f.dst === 'ff:ff:ff:ff:ff:ff' && f.text.includes(`Reply ${vip} is-at ${mac}`);
export const isUnsolicitedNa = (f: Frame, vip: string, mac: string): boolean => isNdpFrom(f, vip, mac) && f.dst === '33:33:00:00:00:01';

/** The client's ARP requests for `vip` (times) and the replies it got, in a capture on the client. */
export function arpExchange(frames: readonly Frame[], vip: string, clientMac: string): { requests: number[]; replies: Frame[] } {
  return {
    requests: frames.filter((f) => f.src === clientMac && f.text.includes(`Request who-has ${vip}`)).map((f) => f.ms),
    replies: frames.filter((f) => f.dst === clientMac && f.text.includes(`Reply ${vip} is-at`)),
  };
}

/**
 * The requests answered by more than one MAC: each request opens a window up to the next one (about 100 ms), and all
 * replies in it must come from one MAC. One line per offending request.
 */
export function mixedAnswers(requests: readonly number[], replies: readonly Frame[]): string[] {
  return requests.flatMap((at, i) => {
    const macs = new Set(replies.filter((r) => r.ms >= at && r.ms < (requests[i + 1] ?? Infinity)).map((r) => r.src));
    return macs.size > 1 ? [`${new Date(at).toISOString()}: ${[...macs].join(' and ')}`] : [];
  });
}
