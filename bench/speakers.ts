// The API load of L2 speakers at scale (issue 14, item 5): N speakers running the real Speaker code (its Lease,
// informers, elections and status writes; the packet sockets are left out, their interface is a fake one) in worker
// threads of this process, against one real kube-apiserver, with K LoadBalancer Services. Prints, per phase and side
// by side, the API server's own counts over a measured window: Lease writes/s and GETs/s (apiserver_request_total),
// watch events/s (apiserver_watch_events_total), its CPU and this process's (the speakers'), how many nodes answered
// and in which mode their Leases were, then the failover times.
//
// Phases: `after` runs the speaker as built (two paces, node-lease.ts); `before` runs the same code with the idle pace
// set to the fast one, which is what every speaker did before the two paces; `--code DIR` runs the speaker of another
// build (e.g. a worktree of the previous commit, built with `npm run build`: DIR is its dist/) as the `before` phase.
// `heartbeats` runs the speaker as built with heartbeats on (heartbeat.ts): each speaker binds UDP on 127.0.0.1, port
// --heartbeat-port-base + its index, and its ring of neighbours detects its death instead of its Lease expiring.
//
// Failover (--failovers F, after the measured window): F times, the node whose Lease lists some address is killed as a
// SIGKILL would: each node that can be a victim runs alone in its own worker thread, which on 'kill' closes its UDP
// sockets and calls process.exit(), ending the thread with its timers and sockets, without the speaker's graceful stop
// (no Lease release, no handover). (worker.terminate() would do, but aborts the process in Node 20 when it lands while
// a datagram is received.) Which nodes can be
// victims is known before the phase starts: the election is a rendezvous hash (electionHash), so the holders of each
// address, kill after kill, are the nodes in that hash's order. The failover time is from the kill to when this
// bench's own Lease watch first shows another node's Lease listing the address. A node answers only once a renewal
// listing the address has returned, which the watch delivers at about the same moment: so the figure is a lower bound
// on when the successor answers, give or take the watch's delivery delay. The watch also counts fence writes (the
// switchboard.dev/fenced-by annotation appearing on a Lease) and reports every moment it saw two unfenced Leases list
// one address: a weak check of "never two answering nodes" (Leases are not frames; a watch shows only what landed).
//
//   make bench-speakers BENCH_ARGS="--speakers 100 --services 4 --phases after,heartbeats --measure 60 --failovers 5"
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { setMaxListeners } from 'node:events';
import dgram, { createSocket, type Socket } from 'node:dgram';
import { syncBuiltinESMExports } from 'node:module';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalControlPlane } from '../cmd/up/controlplane/controlplane.js';
import { KubeClient, type WatchEvent, type WatchHandle } from '../controllers/runtime/client.js';
import { createLogger, silentLogger, type LogLevel } from '../controllers/runtime/log.js';
import { EndpointSlices, Leases, Namespaces, Nodes, Services } from '../api/resources.js';
import type { Lease, Service } from '../api/wire.js';
import { IPAddressPools } from '../crds/ipaddresspool.js';
import { L2Advertisements } from '../crds/l2advertisement.js';
import { ensureCRDs } from '../controllers/loadbalancer/crds.js';
import { ANSWERING_ANNOTATION, LEASE_SELECTOR } from '../controllers/speaker/node-lease.js';
import { LEASE_DURATION_MS_ANNOTATION, electionHash } from '../controllers/speaker/election.js';
import { fenceOf } from '../controllers/speaker/lease-fence.js';
import { ANSWER_WINDOW_ANNOTATION, HEARTBEAT_ANNOTATION } from '../controllers/speaker/heartbeat.js';
import type { SpeakerOptions } from '../controllers/speaker/speaker.js';
import { ApiServerMetrics } from './compare/metrics.js';
import { cpuSeconds } from './compare/proc.js';

const SPEAKER_NS = 'switchboard-system';
const APP_NS = 'bench';
/** How long a phase may take to have every address answered before it is measured anyway. */
const STEADY_WAIT_MS = 90_000;
/** How long a failover may take before it counts as failed. */
const FAILOVER_TIMEOUT_MS = 30_000;
const FAST = { leaseDurationMs: 1500, leaseRenewIntervalMs: 500 };
const IDLE = { leaseIdleDurationMs: 30_000, leaseIdleRenewIntervalMs: 10_000 };
interface HeartbeatSettings {
  portBase: number;
  intervalMs: number;
  answerWindowMs: number;
}

interface WorkerInput {
  kubeconfig: string;
  /** Each with its index among all speakers and when to start it (ms after the thread starts). */
  nodes: { node: string; index: number; startMs: number }[];
  /** A dist/ folder to load the speaker code from; empty: this build's. */
  code: string;
  idle: boolean;
  /** Heartbeats on: node i binds 127.0.0.1, port portBase + i. */
  heartbeat?: HeartbeatSettings;
  /** The speakers' log level; empty: silent. */
  logLevel: string;
  /** A victim-to-be's thread: where it writes when it was killed (performance.timeOrigin + now, ms). */
  killedAt?: SharedArrayBuffer;
}

/** One thread's speakers: each with its own client and Manager, as on its own node. */
async function runWorker(input: WorkerInput): Promise<void> {
  // The kill closes the thread's UDP sockets first, as the kernel does on SIGKILL: worker.terminate() while a datagram
  // is being received aborts the whole process in Node 20 (FATAL ERROR in UDPWrap::OnRecv → AddressToJS).
  const sockets: Socket[] = [];
  const create = dgram.createSocket;
  dgram.createSocket = ((...args: Parameters<typeof create>) => {
    const socket = create(...args);
    sockets.push(socket);
    return socket;
  }) as typeof create;
  syncBuiltinESMExports();
  const root = input.code ? pathToFileURL(`${resolve(input.code)}/`).href : new URL('../', import.meta.url).href;
  const { Manager } = (await import(`${root}controllers/runtime/manager.js`)) as typeof import('../controllers/runtime/manager.js');
  const { Speaker } = (await import(`${root}controllers/speaker/speaker.js`)) as typeof import('../controllers/speaker/speaker.js');
  const { KubeClient: Client } = (await import(`${root}controllers/runtime/client.js`)) as typeof import('../controllers/runtime/client.js');
  const stop = new AbortController();
  // Every speaker of the thread listens on it (one Manager each).
  setMaxListeners(0, stop.signal);
  const runs = input.nodes.map(async ({ node, index: i, startMs }) => {
    // Started one after another, as a DaemonSet's pods come up: 100 at once on one machine only measures the storm
    // of TLS handshakes and relists.
    await sleep(startMs);
    if (stop.signal.aborted) return;
    const client = Client.fromFile(input.kubeconfig, 'switchboard-speaker');
    const manager = new Manager({
      client,
      log: input.logLevel ? createLogger(`speaker-${node}`, { level: input.logLevel as LogLevel }) : silentLogger,
      component: 'switchboard-speaker',
      leaderElection: { enabled: false, namespace: SPEAKER_NS, leaseName: '', leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 },
    });
    const hb = input.heartbeat;
    const options: SpeakerOptions = {
      node,
      namespace: SPEAKER_NS,
      ...FAST,
      ...(input.idle ? IDLE : { leaseIdleDurationMs: FAST.leaseDurationMs, leaseIdleRenewIntervalMs: FAST.leaseRenewIntervalMs }),
      ...(hb ? { heartbeat: { address: '127.0.0.1', port: hb.portBase + i, intervalMs: hb.intervalMs, answerWindowMs: hb.answerWindowMs } } : {}),
      garpCount: 1,
      garpIntervalMs: 1000,
      garpRefreshIntervalMs: 0,
      interfaces: { include: ['bench0'], exclude: [] },
      interfaceScanIntervalMs: 10_000,
      requireSubnet: true,
      loadBalancerClass: 'switchboard.dev/l2',
      handleUnsetClass: true,
      ignoreExcludeLabel: false,
      // No probes: they need packet sockets, and the checker writes to the API only when an outcome changes.
      selfCheckIntervalMs: 0,
      probeRatePerSecond: 50,
      conflictProbeCount: 0,
      conflictProbeIntervalMs: 100,
      // A fake Ethernet interface on the pool's subnet: elections and Leases are real, no socket opens on it.
      readInterfaces: () => [{ name: 'bench0', flags: 0x3, carrier: true, type: 1, mac: `02:00:00:00:${hex(i >> 8)}:${hex(i & 255)}`, cidrs: [`192.0.2.${(i % 250) + 1}/24`] }],
    };
    new Speaker(manager, options);
    await manager.run(stop.signal).finally(() => client.close());
  });
  // How late this thread's timers run (a heartbeat round, a renewal): the speakers share the machine's cores.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  parentPort?.on('message', (m) => {
    if (m === 'stop') stop.abort();
    else if (m === 'kill' && input.killedAt) {
      // SIGKILL-like: nothing of the speaker runs after this handler (no abort, no Lease release, no handover).
      new Float64Array(input.killedAt)[0] = performance.timeOrigin + performance.now();
      for (const socket of sockets) {
        try {
          socket.close();
        } catch {
          // closed already
        }
      }
      process.exit(0);
    }
    else if (m === 'delay-reset') loopDelay.reset();
    else if (m === 'delay-report') parentPort?.postMessage({ p99Ms: loopDelay.percentile(99) / 1e6, maxMs: loopDelay.max / 1e6 } satisfies LoopDelay);
  });
  await Promise.all(runs);
  parentPort?.postMessage('stopped');
}

const hex = (n: number): string => n.toString(16).padStart(2, '0');

interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

/** Each thread's event-loop delay since its last 'delay-reset' (undefined: the thread did not answer within 5 s). */
function loopDelays(threads: readonly Worker[]): Promise<(LoopDelay | undefined)[]> {
  return Promise.all(
    threads.map(
      (t) =>
        new Promise<LoopDelay | undefined>((done) => {
          const timer = setTimeout(() => done(undefined), 5_000);
          const on = (m: unknown) => {
            if (typeof m !== 'object' || m === null || !('p99Ms' in m)) return;
            t.off('message', on);
            clearTimeout(timer);
            done(m as LoopDelay);
          };
          t.on('message', on);
          t.postMessage('delay-report');
        }),
    ),
  );
}

interface Counts {
  leaseWrites: number;
  leaseGets: number;
  /** LIST requests of every resource: the speakers' informers relisting (a resync after a fence relists seven). */
  lists: number;
  writes: number;
  leaseWatchEvents: number;
  watchEvents: number;
  apiCpu: number;
  benchCpu: number;
  at: number;
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);

async function sample(metrics: ApiServerMetrics, apiPid: number): Promise<Counts> {
  const c: Counts = { leaseWrites: 0, leaseGets: 0, lists: 0, writes: 0, leaseWatchEvents: 0, watchEvents: 0, apiCpu: cpuSeconds(apiPid), benchCpu: 0, at: performance.now() };
  // The whole process: every worker thread's speakers (and their UDP), plus this thread's Lease watch.
  const usage = process.cpuUsage();
  c.benchCpu = (usage.user + usage.system) / 1e6;
  for (const line of (await metrics.text()).split('\n')) {
    const request = line.startsWith('apiserver_request_total{');
    const watch = line.startsWith('apiserver_watch_events_total{');
    if (!request && !watch) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const lease = labels.resource === 'leases' || labels.kind === 'Lease';
    if (request && WRITE_VERBS.has(labels.verb)) {
      c.writes += value;
      if (lease) c.leaseWrites += value;
    } else if (request && labels.verb === 'GET' && lease) {
      c.leaseGets += value;
    } else if (request && labels.verb === 'LIST') {
      c.lists += value;
    } else if (watch) {
      c.watchEvents += value;
      if (lease) c.leaseWatchEvents += value;
    }
  }
  return c;
}

async function speakerLeases(client: KubeClient): Promise<Lease[]> {
  return (await client.list<Lease>(Leases, { namespace: SPEAKER_NS, labelSelector: LEASE_SELECTOR })).items;
}

const answeringOf = (l: Lease): string[] => JSON.parse(l.metadata?.annotations?.[ANSWERING_ANNOTATION] ?? '[]') as string[];
const holderOf = (l: Lease): string => l.spec?.holderIdentity ?? '';
/** How a Lease was last written: heartbeat mode, the fast pace, or the idle one. */
const modeOf = (l: Lease): 'heartbeat' | 'fast' | 'idle' =>
  l.metadata?.annotations?.[ANSWER_WINDOW_ANNOTATION] !== undefined ? 'heartbeat' : l.metadata?.annotations?.[LEASE_DURATION_MS_ANNOTATION] === String(FAST.leaseDurationMs) ? 'fast' : 'idle';

/** Two unfenced Leases listing one address, from when the watch first showed it until it showed it no more. */
interface DoubleListing {
  address: string;
  leases: string[];
  /** The involved Leases' events from 3 s before until 1 s after. */
  context?: string[];
  fromMs: number;
  toMs?: number;
}

/**
 * This bench's own watch of the speakers' Leases: what each says now, when a fence lands, when another node lists an
 * address, and every moment two unfenced Leases list one address. Times are performance.now() of this thread.
 */
class LeaseWatch {
  readonly leases = new Map<string, Lease>();
  readonly fences: { lease: string; atMs: number }[] = [];
  /** Every write of a Lease the watch saw (not deletions), and those that switched it in or out of heartbeat mode. */
  readonly writes: { lease: string; atMs: number; modeSwitch: boolean }[] = [];
  readonly doubles: DoubleListing[] = [];
  /** Every event, in short, to show what led to a double listing. */
  readonly history: { atMs: number; lease: string; text: string }[] = [];
  private readonly open = new Map<string, DoubleListing>();
  private readonly waiters: { address: string; except: string; resolve: (atMs: number) => void }[] = [];
  private handle: WatchHandle | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly client: KubeClient) {}

  async start(): Promise<void> {
    const resourceVersion = await this.relist();
    this.loop = this.run(resourceVersion);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.handle?.abort();
    await this.loop;
  }

  /** Resolves when a Lease of a node other than `except` lists `address`, unfenced (at once if one does now). */
  listedByAnother(address: string, except: string): Promise<number> {
    const now = [...this.leases.values()].find((l) => holderOf(l) !== except && fenceOf(l) === undefined && answeringOf(l).includes(address));
    if (now) return Promise.resolve(performance.now());
    return new Promise((resolve) => this.waiters.push({ address, except, resolve }));
  }

  /** Addresses listed by exactly one unfenced Lease, with its holder. */
  holders(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const l of this.leases.values()) {
      if (fenceOf(l) !== undefined) continue;
      for (const a of answeringOf(l)) out.set(a, [...(out.get(a) ?? []), holderOf(l)]);
    }
    return out;
  }

  private async relist(): Promise<string | undefined> {
    const list = await this.client.list<Lease>(Leases, { namespace: SPEAKER_NS, labelSelector: LEASE_SELECTOR });
    this.leases.clear();
    for (const l of list.items) this.leases.set(l.metadata?.name ?? '', l);
    const atMs = performance.now();
    // A listing the broken watch did not deliver still ends a failover: when the relist shows it (a later bound).
    for (const l of list.items) this.resolveWaiters(l, atMs);
    this.check(atMs);
    return list.metadata.resourceVersion;
  }

  /** Resolves the failover waiters that this unfenced Lease, listing their address, ends. */
  private resolveWaiters(lease: Lease, atMs: number): void {
    if (fenceOf(lease) !== undefined) return;
    const listed = answeringOf(lease);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (holderOf(lease) !== w.except && listed.includes(w.address)) {
        this.waiters.splice(i, 1);
        w.resolve(atMs);
      }
    }
  }

  private async run(from: string | undefined): Promise<void> {
    let resourceVersion = from;
    while (!this.stopped) {
      try {
        this.handle = await this.client.watch<Lease>(Leases, { namespace: SPEAKER_NS, labelSelector: LEASE_SELECTOR, resourceVersion }, (e) => this.onEvent(e));
        await this.handle.done;
      } catch {
        // the stream broke: relist below
      }
      if (this.stopped) break;
      await sleep(100);
      resourceVersion = await this.relist().catch(() => resourceVersion);
    }
  }

  private onEvent(e: WatchEvent<Lease>): void {
    if (e.type === 'BOOKMARK') return;
    if (e.type === 'ERROR') {
      this.handle?.abort(); // expired resourceVersion: relist
      return;
    }
    const atMs = performance.now();
    const lease = e.object as Lease;
    const name = lease.metadata?.name ?? '';
    const before = this.leases.get(name);
    if (e.type === 'DELETED') this.leases.delete(name);
    else this.leases.set(name, lease);
    const fence = e.type === 'DELETED' ? undefined : fenceOf(lease);
    if (fence !== undefined && fence !== (before && fenceOf(before))) this.fences.push({ lease: name, atMs });
    this.history.push({
      atMs,
      lease: name,
      text: `${e.type} rv=${lease.metadata?.resourceVersion} renewTime=${lease.spec?.renewTime} answering=${JSON.stringify(answeringOf(lease))} ${modeOf(lease)}${fence ? ` fenced-by="${fence}"` : ''}`,
    });
    if (e.type !== 'DELETED') this.writes.push({ lease: name, atMs, modeSwitch: before !== undefined && (modeOf(before) === 'heartbeat') !== (modeOf(lease) === 'heartbeat') });
    if (e.type !== 'DELETED') this.resolveWaiters(lease, atMs);
    this.check(atMs);
  }

  private check(atMs: number): void {
    const now = new Set<string>();
    for (const [address, holders] of this.holders()) {
      if (holders.length < 2) continue;
      const key = `${address} ${[...holders].sort().join(',')}`;
      now.add(key);
      if (this.open.has(key)) continue;
      const d: DoubleListing = { address, leases: [...holders].sort(), fromMs: atMs };
      this.open.set(key, d);
      this.doubles.push(d);
    }
    for (const [key, d] of this.open) {
      if (now.has(key)) continue;
      d.toMs = atMs;
      this.open.delete(key);
    }
  }
}

/**
 * The nodes that will hold an address when killed, in order: round r kills the holder of address r mod K, which is
 * the first node in the election's hash order for it (electionHash: every node is equally eligible here) not killed
 * yet. Each gets a thread of its own, so that it can be killed alone.
 */
function victimsToBe(nodes: readonly string[], addresses: readonly string[], failovers: number): string[] {
  const killed: string[] = [];
  for (let r = 0; r < failovers && killed.length < nodes.length - 1; r++) {
    const address = addresses[r % addresses.length];
    const holder = nodes.filter((n) => !killed.includes(n)).sort((a, b) => (electionHash(a, address) < electionHash(b, address) ? -1 : 1))[0];
    killed.push(holder);
  }
  return killed;
}

interface Failover {
  victim: string;
  /** performance.now() of this thread. */
  killedAtMs: number;
  /** The victim's Lease mode when it was killed. */
  mode: string;
  /** Each address the victim listed: ms from the kill until another node's Lease listed it (undefined: never). */
  addresses: { address: string; ms: number | undefined }[];
  /** Fence writes the watch saw from the kill until FENCE_SETTLE_MS after the last address moved. */
  fencesOfVictim: number;
  fencesOfOthers: number;
}

/** Fences after a failover still count towards it for this long (a late or needless fence by another node). */
const FENCE_SETTLE_MS = 2_000;
/** Before each kill: the addresses are settled and the next victim's Lease is in the phase's mode, or this passed. */
const SETTLE_TIMEOUT_MS = 15_000;

/** A victim-to-be's own thread, and where it writes when it was killed. */
interface Solo {
  thread: Worker;
  killedAt: SharedArrayBuffer;
  exited: boolean;
}

/**
 * Kills a victim's thread (see runWorker's 'kill'); resolves with when it died, as performance.now() of this thread,
 * or undefined if it did not within 5 s (its event loop stuck: then terminate() it).
 */
async function kill(solo: Solo): Promise<number | undefined> {
  const exited = new Promise<boolean>((done) => solo.thread.once('exit', () => done(true)));
  solo.thread.postMessage('kill');
  if (await Promise.race([exited, sleep(5_000).then(() => false)])) return new Float64Array(solo.killedAt)[0] - performance.timeOrigin;
  await solo.thread.terminate();
  return undefined;
}

async function failovers(o: { watch: LeaseWatch; addresses: string[]; solo: Map<string, Solo>; count: number; gapS: number; mode: 'heartbeat' | 'fast' }): Promise<{ done: Failover[]; skipped: string[] }> {
  const done: Failover[] = [];
  const skipped: string[] = [];
  const killed = new Set<string>();
  for (let r = 0; r < o.count; r++) {
    await sleep(o.gapS * 1000);
    // The holder of address r mod K, or of the next address whose holder runs alone (the prediction missed).
    let victim: string | undefined;
    const settleUntil = Date.now() + SETTLE_TIMEOUT_MS;
    for (;;) {
      const holders = o.watch.holders();
      const settled = o.addresses.every((a) => holders.get(a)?.length === 1 && !killed.has(holders.get(a)?.[0] ?? ''));
      victim = undefined;
      for (let j = 0; j < o.addresses.length && victim === undefined; j++) {
        const h = holders.get(o.addresses[(r + j) % o.addresses.length]);
        if (h?.length === 1 && o.solo.has(h[0]) && !killed.has(h[0])) victim = h[0];
      }
      const lease = victim === undefined ? undefined : [...o.watch.leases.values()].find((l) => holderOf(l) === victim);
      if ((settled && lease && modeOf(lease) === o.mode) || Date.now() > settleUntil) break;
      await sleep(100);
    }
    const lease = victim === undefined ? undefined : [...o.watch.leases.values()].find((l) => holderOf(l) === victim);
    const solo = victim === undefined ? undefined : o.solo.get(victim);
    if (victim === undefined || !lease || !solo) {
      skipped.push(`round ${r + 1}: no holder of an address runs alone in a thread`);
      continue;
    }
    const listed = answeringOf(lease);
    const fencesBefore = o.watch.fences.length;
    // Waiting from before the kill: another node may list an address before this thread hears that the victim died.
    const listedAt = listed.map((address) => o.watch.listedByAnother(address, victim));
    const killedAt = await kill(solo);
    killed.add(victim);
    if (killedAt === undefined) {
      skipped.push(`round ${r + 1}: ${victim} did not die within 5 s of being told to`);
      continue;
    }
    const timeout = sleep(FAILOVER_TIMEOUT_MS).then(() => undefined);
    const moved = await Promise.all(listed.map(async (address, i) => ({ address, ms: await Promise.race([listedAt[i].then((at) => at - killedAt), timeout]) })));
    await sleep(FENCE_SETTLE_MS);
    const fences = o.watch.fences.slice(fencesBefore);
    const victimLease = lease.metadata?.name ?? '';
    const f: Failover = { victim, killedAtMs: killedAt, mode: modeOf(lease), addresses: moved, fencesOfVictim: fences.filter((x) => x.lease === victimLease).length, fencesOfOthers: fences.filter((x) => x.lease !== victimLease).length };
    done.push(f);
    console.error(
      `[speakers]   failover ${r + 1}: killed ${victim} (${f.mode}) → ${moved.map((m) => `${m.address} in ${m.ms === undefined ? 'never' : `${m.ms.toFixed(0)} ms`}`).join(', ')}; fences: ${f.fencesOfVictim} of its Lease, ${f.fencesOfOthers} of others'`,
    );
  }
  return { done, skipped };
}

interface PhaseResult {
  name: string;
  steady: string;
  seconds: number;
  leaseWrites: number;
  leaseGets: number;
  lists: number;
  writes: number;
  leaseWatchEvents: number;
  watchEvents: number;
  apiCores: number;
  benchCores: number;
  answering: number;
  fast: number;
  heartbeat: number;
  /** Addresses listed by exactly one Lease at the end of the window, of all. */
  answered: string;
  /** 1-minute load average at the start and at the end of the measured window. */
  load: [number, number];
  /** The worst worker thread's event-loop delay over the window (Infinity: a thread did not answer). */
  loopDelay: LoopDelay;
  /** In the measured window, as this bench's watch saw them: fences, switches in or out of heartbeat mode, the Leases written most. */
  windowFences: number;
  windowModeSwitches: number;
  topWriters: string[];
  failovers: Failover[];
  skipped: string[];
  doubles: DoubleListing[];
}

interface PhaseOptions {
  cp: LocalControlPlane;
  client: KubeClient;
  metrics: ApiServerMetrics;
  nodes: string[];
  addresses: string[];
  workers: number;
  staggerMs: number;
  code: string;
  idle: boolean;
  heartbeat?: HeartbeatSettings;
  logLevel: string;
  warmupS: number;
  measureS: number;
  failovers: number;
  failoverGapS: number;
}

async function phase(name: string, o: PhaseOptions): Promise<PhaseResult> {
  const apiPid = o.cp.apiServerPid ?? 0;
  if (o.heartbeat) await checkPortsFree(o.heartbeat.portBase, o.nodes.length);
  const solo = new Map<string, Solo>();
  const shared: Worker[] = [];
  const victims = new Set(o.failovers > 0 ? victimsToBe(o.nodes, o.addresses, o.failovers) : []);
  const input = (nodes: { node: string; index: number }[]): WorkerInput => ({
    kubeconfig: o.cp.kubeconfig,
    nodes: nodes.map(({ node, index }) => ({ node, index, startMs: index * o.staggerMs })),
    code: o.code,
    idle: o.idle,
    heartbeat: o.heartbeat,
    logLevel: o.logLevel,
  });
  const indexed = o.nodes.map((node, index) => ({ node, index }));
  for (const v of indexed.filter((x) => victims.has(x.node))) {
    const killedAt = new SharedArrayBuffer(8);
    const thread = new Worker(new URL(import.meta.url), { workerData: { ...input([v]), killedAt } satisfies WorkerInput });
    const entry: Solo = { thread, killedAt, exited: false };
    thread.once('exit', () => (entry.exited = true));
    solo.set(v.node, entry);
  }
  const rest = indexed.filter((x) => !victims.has(x.node));
  for (let w = 0; w < o.workers; w++) shared.push(new Worker(new URL(import.meta.url), { workerData: input(rest.filter((_x, i) => i % o.workers === w)) }));
  const watch = new LeaseWatch(o.client);
  await watch.start();
  const started = Date.now();
  // Steady state: every speaker has a Lease and every address is listed by exactly one of them (with heartbeats, in
  // heartbeat mode: a node whose ring neighbours do not ack it in time falls back to the fast pace for a while, so
  // all of them at once may never be). A phase that never gets there (speakers too slow to renew in time fence
  // themselves) is measured all the same, and says so.
  const listedOnce = () => {
    const holders = watch.holders();
    return watch.leases.size === o.nodes.length && o.addresses.every((a) => holders.get(a)?.length === 1);
  };
  const isSteady = () => listedOnce() && (!o.heartbeat || [...watch.leases.values()].every((l) => answeringOf(l).length === 0 || fenceOf(l) !== undefined || modeOf(l) === 'heartbeat'));
  while (!isSteady() && Date.now() - started < STEADY_WAIT_MS) await sleep(200);
  const steady = isSteady();
  // Failovers need each address held by one node; in a phase whose holders never settle in heartbeat mode they are
  // measured all the same, and each says in which mode its victim was.
  const addressesHeld = listedOnce();
  const waited = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  console.error(`[speakers] ${name}: ${steady ? `steady after ${waited}` : `NOT steady after ${waited}`}; warming up ${o.warmupS} s, measuring ${o.measureS} s`);
  if (o.heartbeat && ![...watch.leases.values()].some((l) => l.metadata?.annotations?.[HEARTBEAT_ANNOTATION] !== undefined)) {
    console.error(`[speakers] ${name}: no Lease carries ${HEARTBEAT_ANNOTATION}: this build's speaker has no heartbeats`);
  }
  await sleep(o.warmupS * 1000);
  const loadStart = loadavg()[0];
  const threads = [...[...solo.values()].map((x) => x.thread), ...shared];
  for (const t of threads) t.postMessage('delay-reset');
  const a = await sample(o.metrics, apiPid);
  await sleep(o.measureS * 1000);
  const b = await sample(o.metrics, apiPid);
  const delays = await loopDelays(threads);
  const loadEnd = loadavg()[0];
  const inWindow = <T extends { atMs: number }>(xs: T[]): T[] => xs.filter((x) => x.atMs >= a.at && x.atMs <= b.at);
  const windowWrites = inWindow(watch.writes);
  const perLease = new Map<string, number>();
  for (const w of windowWrites) perLease.set(w.lease, (perLease.get(w.lease) ?? 0) + 1);
  const leases = await speakerLeases(o.client);
  const seconds = (b.at - a.at) / 1000;
  const rate = (k: keyof Counts) => (b[k] - a[k]) / seconds;
  const listedOnceNow = (a: string) => leases.flatMap(answeringOf).filter((x) => x === a).length === 1;
  const result: PhaseResult = {
    name,
    steady: steady ? `after ${waited}` : `NOT after ${waited}`,
    seconds,
    leaseWrites: rate('leaseWrites'),
    leaseGets: rate('leaseGets'),
    lists: rate('lists'),
    writes: rate('writes'),
    leaseWatchEvents: rate('leaseWatchEvents'),
    watchEvents: rate('watchEvents'),
    apiCores: rate('apiCpu'),
    benchCores: rate('benchCpu'),
    answering: leases.filter((l) => answeringOf(l).length > 0).length,
    fast: leases.filter((l) => modeOf(l) === 'fast').length,
    heartbeat: leases.filter((l) => modeOf(l) === 'heartbeat').length,
    answered: `${o.addresses.filter(listedOnceNow).length}/${o.addresses.length}`,
    load: [loadStart, loadEnd],
    loopDelay: {
      p99Ms: Math.max(...delays.map((d) => d?.p99Ms ?? Infinity)),
      maxMs: Math.max(...delays.map((d) => d?.maxMs ?? Infinity)),
    },
    windowFences: inWindow(watch.fences).length,
    windowModeSwitches: windowWrites.filter((w) => w.modeSwitch).length,
    topWriters: [...perLease].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([lease, count]) => `${lease.replace(/^speaker-/, '')} ${(count / seconds).toFixed(1)}/s`),
    failovers: [],
    skipped: [],
    doubles: [],
  };
  if (o.failovers > 0 && !addressesHeld) result.skipped.push('addresses not each listed once: no failovers');
  else if (o.failovers > 0) {
    console.error(`[speakers] ${name}: ${o.failovers} failovers, ${o.failoverGapS} s apart`);
    const f = await failovers({ watch, addresses: o.addresses, solo, count: o.failovers, gapS: o.failoverGapS, mode: o.heartbeat ? 'heartbeat' : 'fast' });
    result.failovers = f.done;
    result.skipped = f.skipped;
  }
  await watch.stop();
  result.doubles = watch.doubles;
  for (const d of result.doubles) {
    const names = new Set(d.leases.map((holder) => [...watch.leases.values()].find((l) => holderOf(l) === holder)?.metadata?.name ?? `speaker-${holder}`));
    const kills = result.failovers.filter((f) => f.killedAtMs >= d.fromMs - 3_000 && f.killedAtMs <= d.fromMs + 1_000);
    d.context = [
      ...kills.map((f) => ({ atMs: f.killedAtMs, text: `killed ${f.victim}` })),
      ...watch.history.filter((h) => names.has(h.lease) && h.atMs >= d.fromMs - 3_000 && h.atMs <= (d.toMs ?? d.fromMs) + 1_000).map((h) => ({ atMs: h.atMs, text: `${h.lease} ${h.text}` })),
    ]
      .sort((x, y) => x.atMs - y.atMs)
      .map((h) => `  ${(h.atMs - d.fromMs).toFixed(0).padStart(6)} ms ${h.text}`);
  }
  const killed = new Set([...solo].filter(([, x]) => x.exited).map(([node]) => node));
  await Promise.all(
    [...shared, ...[...solo.values()].filter((x) => !x.exited).map((x) => x.thread)].map(
      (t) =>
        new Promise<void>((done) => {
          t.on('message', (m) => {
            if (m === 'stopped') void t.terminate().then(() => done());
          });
          t.postMessage('stop');
        }),
    ),
  );
  // The speakers stopped released (deleted) their Leases; wait for that, then delete what the killed ones left.
  for (let i = 0; i < 60 && (await speakerLeases(o.client)).some((l) => !killed.has(holderOf(l))); i++) await sleep(500);
  for (const l of await speakerLeases(o.client)) await o.client.delete(Leases, l.metadata?.name ?? '', { namespace: SPEAKER_NS });
  return result;
}

/** Fails unless every heartbeat port is free on 127.0.0.1 (UDP). */
async function checkPortsFree(base: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = createSocket('udp4');
    try {
      await new Promise<void>((done, fail) => {
        socket.once('error', fail);
        socket.bind(base + i, '127.0.0.1', () => done());
      });
    } catch (err) {
      throw new Error(`UDP port ${base + i} on 127.0.0.1 is taken (${String(err)}): choose another --heartbeat-port-base`);
    } finally {
      socket.close();
    }
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The phases side by side: one row per figure, one column per phase. */
function printTable(results: PhaseResult[], n: number, k: number): void {
  const rows: [string, (r: PhaseResult) => string][] = [
    ['steady (addresses listed once, holders in mode)', (r) => r.steady],
    ['measured window', (r) => `${r.seconds.toFixed(0)} s`],
    ['Lease writes/s', (r) => r.leaseWrites.toFixed(1)],
    ['  per node', (r) => (r.leaseWrites / n).toFixed(3)],
    ['Lease GETs/s', (r) => r.leaseGets.toFixed(1)],
    ['all writes/s', (r) => r.writes.toFixed(1)],
    ['LISTs/s (informers relisting)', (r) => r.lists.toFixed(1)],
    ['Lease watch events/s', (r) => r.leaseWatchEvents.toFixed(0)],
    ['all watch events/s', (r) => r.watchEvents.toFixed(0)],
    ['kube-apiserver CPU', (r) => `${(r.apiCores * 100).toFixed(0)}% of a core`],
    ['bench process CPU (speakers)', (r) => `${(r.benchCores * 100).toFixed(0)}% of a core`],
    ['Leases answering / fast / heartbeat mode', (r) => `${r.answering} / ${r.fast} / ${r.heartbeat}`],
    ['addresses answered', (r) => r.answered],
    ['in the window: fences / heartbeat-mode switches', (r) => `${r.windowFences} / ${r.windowModeSwitches}`],
    ['  Leases written most', (r) => r.topWriters.join(', ')],
    ['load average (1 min), window start–end', (r) => `${r.load[0].toFixed(2)}–${r.load[1].toFixed(2)}`],
    ['worst thread event-loop delay p99 / max', (r) => `${r.loopDelay.p99Ms.toFixed(0)} / ${r.loopDelay.maxMs.toFixed(0)} ms`],
    ['failovers measured', (r) => `${r.failovers.flatMap((f) => f.addresses).filter((a) => a.ms !== undefined).length} of ${r.failovers.flatMap((f) => f.addresses).length}${r.skipped.length ? ` (${r.skipped.length} skipped)` : ''}`],
    [
      'failover ms, min / median / max',
      (r) => {
        const ms = r.failovers.flatMap((f) => f.addresses.flatMap((a) => (a.ms === undefined ? [] : [a.ms])));
        return ms.length ? `${Math.min(...ms).toFixed(0)} / ${median(ms).toFixed(0)} / ${Math.max(...ms).toFixed(0)}` : '—';
      },
    ],
    ['victims in mode', (r) => [...new Set(r.failovers.map((f) => f.mode))].join(', ') || '—'],
    ['fence writes per failover: victim / others', (r) => (r.failovers.length ? r.failovers.map((f) => `${f.fencesOfVictim}/${f.fencesOfOthers}`).join(' ') : '—')],
    ['two unfenced Leases listing one address', (r) => String(r.doubles.length)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const columns = results.map((r) => Math.max(r.name.length, ...rows.map(([, f]) => f(r).length)));
  console.log(`\n${n} speakers, ${k} LoadBalancer Services, one kube-apiserver; rates per second over the measured window`);
  console.log(['phase'.padEnd(width), ...results.map((r, i) => r.name.padEnd(columns[i]))].join(' | '));
  for (const [label, f] of rows) console.log([label.padEnd(width), ...results.map((r, i) => f(r).padEnd(columns[i]))].join(' | '));
  for (const r of results) {
    for (const s of r.skipped) console.log(`${r.name}: ${s}`);
    for (const d of r.doubles) {
      console.log(`${r.name}: ${d.address} listed by ${d.leases.join(' and ')} (unfenced) for ${d.toMs === undefined ? 'the rest of the phase' : `${(d.toMs - d.fromMs).toFixed(0)} ms`}; around it (0 = first seen):`);
      for (const line of d.context ?? []) console.log(line);
    }
  }
  console.log(
    'Failover: from the kill of the node whose Lease listed the address to the first watch event of another node’s Lease listing it (a lower bound on answering, give or take the watch’s delay). ' +
      'Fence writes: fenced-by annotations appearing, seen by this watch. Two unfenced Leases listing one address is a weak check: Leases are not frames.',
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      speakers: { type: 'string', default: '100' },
      services: { type: 'string', default: '4' },
      workers: { type: 'string', default: '4' },
      warmup: { type: 'string', default: '15' },
      measure: { type: 'string', default: '60' },
      phases: { type: 'string', default: 'before,after,heartbeats' },
      code: { type: 'string', default: '' },
      'log-level': { type: 'string', default: '' },
      'stagger-ms': { type: 'string', default: '100' },
      failovers: { type: 'string', default: '5' },
      'failover-gap': { type: 'string', default: '5' },
      'heartbeat-port-base': { type: 'string', default: '20000' },
      'heartbeat-interval-ms': { type: 'string', default: '150' },
      'answer-window-ms': { type: 'string', default: '800' },
    },
  });
  const n = Number(values.speakers);
  const k = Number(values.services);
  const nodes = Array.from({ length: n }, (_x, i) => `node-${String(i + 1).padStart(3, '0')}`);
  const cp = await new LocalControlPlane({ kubeControllerManager: false }).start();
  const client = KubeClient.fromFile(cp.kubeconfig, 'switchboard-bench');
  const results: PhaseResult[] = [];
  try {
    await ensureCRDs(client);
    for (const name of [SPEAKER_NS, APP_NS]) await client.create(Namespaces, { metadata: { name } });
    for (const name of nodes) await client.create(Nodes, { metadata: { name, labels: { 'kubernetes.io/hostname': name } } });
    await client.create(IPAddressPools, { metadata: { name: 'bench' }, spec: { addresses: ['192.0.2.0/24'] } });
    await client.create(L2Advertisements, { metadata: { name: 'bench' }, spec: { ipAddressPools: ['bench'] } });
    const addresses: string[] = [];
    for (let i = 0; i < k; i++) {
      const name = `svc-${i}`;
      const address = `192.0.2.${200 + i}`;
      const created = await client.create<Service>(Services, { metadata: { name, namespace: APP_NS }, spec: { type: 'LoadBalancer', selector: { app: name }, ports: [{ port: 80, protocol: 'TCP' }] } });
      // No allocation controller runs: the address is written as it would.
      await client.replace<Service>(Services, { ...created, status: { loadBalancer: { ingress: [{ ip: address }] } } }, 'status');
      await client.create(EndpointSlices, {
        metadata: { name: `${name}-1`, namespace: APP_NS, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true }, nodeName: nodes[0] }],
        ports: [{ port: 8080, protocol: 'TCP' }],
      });
      addresses.push(address);
    }
    const metrics = new ApiServerMetrics(cp.kubeconfig);
    const common = {
      cp,
      client,
      metrics,
      nodes,
      addresses,
      workers: Number(values.workers),
      staggerMs: Number(values['stagger-ms']),
      logLevel: values['log-level'],
      warmupS: Number(values.warmup),
      measureS: Number(values.measure),
      failovers: Number(values.failovers),
      failoverGapS: Number(values['failover-gap']),
    };
    const heartbeat: HeartbeatSettings = { portBase: Number(values['heartbeat-port-base']), intervalMs: Number(values['heartbeat-interval-ms']), answerWindowMs: Number(values['answer-window-ms']) };
    for (const name of values.phases.split(',')) {
      if (name === 'before') results.push(await phase(values.code ? `before (the speaker of ${values.code})` : 'before (all fast)', { ...common, code: values.code, idle: false }));
      else if (name === 'after') results.push(await phase('after (two paces)', { ...common, code: '', idle: true }));
      else if (name === 'heartbeats') results.push(await phase('heartbeats', { ...common, code: '', idle: true, heartbeat }));
      else throw new Error(`unknown phase ${name}: before, after or heartbeats`);
    }
  } finally {
    client.close();
    await cp.stop();
  }
  printTable(results, n, k);
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  void runWorker(workerData as WorkerInput);
}
