// The API load of L2 speakers at scale (issue 14, item 5): N speakers running the real Speaker code (its Lease,
// informers, elections and status writes; the packet sockets are left out, their interface is a fake one) in worker
// threads of this process, against one real kube-apiserver, with K LoadBalancer Services. Prints, per phase, the API
// server's own counts over a measured window: Lease writes/s (apiserver_request_total), watch events/s
// (apiserver_watch_events_total) and its CPU, plus how many nodes answered and renewed fast.
//
// Phases: `after` runs the speaker as built (two paces, node-lease.ts); `before` runs the same code with the idle pace
// set to the fast one, which is what every speaker did before the two paces; `--code DIR` runs the speaker of another
// build (e.g. a worktree of the previous commit, built with `npm run build`: DIR is its dist/) as the `before` phase.
//
//   make bench-speakers BENCH_ARGS="--speakers 100 --services 4 --measure 60"
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalControlPlane } from '../cmd/up/controlplane/controlplane.js';
import { KubeClient } from '../controllers/runtime/client.js';
import { createLogger, silentLogger, type LogLevel } from '../controllers/runtime/log.js';
import { EndpointSlices, Leases, Namespaces, Nodes, Services } from '../api/resources.js';
import type { Lease, Service } from '../api/wire.js';
import { IPAddressPools } from '../crds/ipaddresspool.js';
import { L2Advertisements } from '../crds/l2advertisement.js';
import { ensureCRDs } from '../controllers/loadbalancer/crds.js';
import { ANSWERING_ANNOTATION, LEASE_SELECTOR } from '../controllers/speaker/node-lease.js';
import { LEASE_DURATION_MS_ANNOTATION } from '../controllers/speaker/election.js';
import type { SpeakerOptions } from '../controllers/speaker/speaker.js';
import { ApiServerMetrics } from './compare/metrics.js';
import { cpuSeconds } from './compare/proc.js';

const SPEAKER_NS = 'switchboard-system';
const APP_NS = 'bench';
/** How long a phase may take to have every address answered before it is measured anyway. */
const STEADY_WAIT_MS = 90_000;
const FAST = { leaseDurationMs: 1500, leaseRenewIntervalMs: 500 };
const IDLE = { leaseIdleDurationMs: 30_000, leaseIdleRenewIntervalMs: 10_000 };

interface WorkerInput {
  kubeconfig: string;
  /** Each with its index among all speakers and when to start it (ms after the thread starts). */
  nodes: { node: string; index: number; startMs: number }[];
  /** A dist/ folder to load the speaker code from; empty: this build's. */
  code: string;
  idle: boolean;
  /** The speakers' log level; empty: silent. */
  logLevel: string;
}

/** One thread's speakers: each with its own client and Manager, as on its own node. */
async function runWorker(input: WorkerInput): Promise<void> {
  const root = input.code ? pathToFileURL(`${resolve(input.code)}/`).href : new URL('../', import.meta.url).href;
  const { Manager } = (await import(`${root}controllers/runtime/manager.js`)) as typeof import('../controllers/runtime/manager.js');
  const { Speaker } = (await import(`${root}controllers/speaker/speaker.js`)) as typeof import('../controllers/speaker/speaker.js');
  const { KubeClient: Client } = (await import(`${root}controllers/runtime/client.js`)) as typeof import('../controllers/runtime/client.js');
  const stop = new AbortController();
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
    const options: SpeakerOptions = {
      node,
      namespace: SPEAKER_NS,
      ...FAST,
      ...(input.idle ? IDLE : { leaseIdleDurationMs: FAST.leaseDurationMs, leaseIdleRenewIntervalMs: FAST.leaseRenewIntervalMs }),
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
  parentPort?.on('message', (m) => {
    if (m === 'stop') stop.abort();
  });
  await Promise.all(runs);
  parentPort?.postMessage('stopped');
}

const hex = (n: number): string => n.toString(16).padStart(2, '0');

interface Counts {
  leaseWrites: number;
  writes: number;
  leaseWatchEvents: number;
  watchEvents: number;
  apiCpu: number;
  benchCpu: number;
  at: number;
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);

async function sample(metrics: ApiServerMetrics, apiPid: number): Promise<Counts> {
  const c: Counts = { leaseWrites: 0, writes: 0, leaseWatchEvents: 0, watchEvents: 0, apiCpu: cpuSeconds(apiPid), benchCpu: 0, at: performance.now() };
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

interface PhaseResult {
  name: string;
  seconds: number;
  leaseWrites: number;
  writes: number;
  leaseWatchEvents: number;
  watchEvents: number;
  apiCores: number;
  benchCores: number;
  answering: number;
  fast: number;
  /** Addresses listed by exactly one Lease at the end of the window, of all. */
  answered: string;
}

async function phase(name: string, o: { cp: LocalControlPlane; client: KubeClient; metrics: ApiServerMetrics; nodes: string[]; addresses: string[]; workers: number; staggerMs: number; code: string; idle: boolean; logLevel: string; warmupS: number; measureS: number }): Promise<PhaseResult> {
  const apiPid = o.cp.apiServerPid ?? 0;
  const threads: Worker[] = [];
  for (let w = 0; w < o.workers; w++) {
    const input: WorkerInput = { kubeconfig: o.cp.kubeconfig, nodes: o.nodes.flatMap((node, index) => (index % o.workers === w ? [{ node, index, startMs: index * o.staggerMs }] : [])), code: o.code, idle: o.idle, logLevel: o.logLevel };
    threads.push(new Worker(new URL(import.meta.url), { workerData: input }));
  }
  const started = Date.now();
  // Steady state: every speaker has a Lease and every address is listed by exactly one of them. A phase that never
  // gets there (speakers too slow to renew in time fence themselves) is measured all the same, and says so.
  let steady = false;
  while (!steady && Date.now() - started < STEADY_WAIT_MS) {
    const leases = await speakerLeases(o.client);
    const listed = leases.flatMap(answeringOf);
    steady = leases.length === o.nodes.length && o.addresses.every((a) => listed.filter((x) => x === a).length === 1);
    if (!steady) await sleep(500);
  }
  const waited = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  console.error(`[speakers] ${name}: ${steady ? `steady after ${waited}` : `NOT steady after ${waited}`}; warming up ${o.warmupS} s, measuring ${o.measureS} s`);
  await sleep(o.warmupS * 1000);
  const a = await sample(o.metrics, apiPid);
  await sleep(o.measureS * 1000);
  const b = await sample(o.metrics, apiPid);
  const leases = await speakerLeases(o.client);
  const seconds = (b.at - a.at) / 1000;
  const rate = (k: keyof Counts) => (b[k] - a[k]) / seconds;
  const result: PhaseResult = {
    name,
    seconds,
    leaseWrites: rate('leaseWrites'),
    writes: rate('writes'),
    leaseWatchEvents: rate('leaseWatchEvents'),
    watchEvents: rate('watchEvents'),
    apiCores: rate('apiCpu'),
    benchCores: rate('benchCpu'),
    answering: leases.filter((l) => answeringOf(l).length > 0).length,
    fast: leases.filter((l) => l.metadata?.annotations?.[LEASE_DURATION_MS_ANNOTATION] === String(FAST.leaseDurationMs)).length,
    answered: `${o.addresses.filter((a) => leases.flatMap(answeringOf).filter((x) => x === a).length === 1).length}/${o.addresses.length}`,
  };
  await Promise.all(
    threads.map(
      (t) =>
        new Promise<void>((done) => {
          t.once('message', () => void t.terminate().then(() => done()));
          t.postMessage('stop');
        }),
    ),
  );
  // The speakers released (deleted) their Leases; wait for that, so the next phase starts clean.
  for (let i = 0; i < 60 && (await speakerLeases(o.client)).length > 0; i++) await sleep(500);
  for (const l of await speakerLeases(o.client)) await o.client.delete(Leases, l.metadata?.name ?? '', { namespace: SPEAKER_NS });
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      speakers: { type: 'string', default: '100' },
      services: { type: 'string', default: '4' },
      workers: { type: 'string', default: '4' },
      warmup: { type: 'string', default: '15' },
      measure: { type: 'string', default: '60' },
      phases: { type: 'string', default: 'before,after' },
      code: { type: 'string', default: '' },
      'log-level': { type: 'string', default: '' },
      'stagger-ms': { type: 'string', default: '100' },
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
    const common = { cp, client, metrics, nodes, addresses, workers: Number(values.workers), staggerMs: Number(values['stagger-ms']), logLevel: values['log-level'], warmupS: Number(values.warmup), measureS: Number(values.measure) };
    for (const name of values.phases.split(',')) {
      if (name === 'before') results.push(await phase(values.code ? `before (the speaker of ${values.code})` : 'before (every node at the fast pace)', { ...common, code: values.code, idle: false }));
      else if (name === 'after') results.push(await phase('after (two paces)', { ...common, code: '', idle: true }));
      else throw new Error(`unknown phase ${name}: before or after`);
    }
  } finally {
    client.close();
    await cp.stop();
  }
  console.log(`\n${n} speakers, ${k} LoadBalancer Services, one kube-apiserver; per second over the measured window`);
  console.log(`${'phase'.padEnd(44)} ${'lease writes/s'.padStart(15)} ${'per node'.padStart(9)} ${'all writes/s'.padStart(13)} ${'lease watch ev/s'.padStart(17)} ${'all watch ev/s'.padStart(15)} ${'apiserver CPU'.padStart(14)} ${'speakers CPU'.padStart(13)} ${'answering'.padStart(10)} ${'fast'.padStart(5)} ${'answered'.padStart(9)}`);
  for (const r of results) {
    console.log(
      `${r.name.padEnd(44)} ${r.leaseWrites.toFixed(1).padStart(15)} ${(r.leaseWrites / n).toFixed(3).padStart(9)} ${r.writes.toFixed(1).padStart(13)} ${r.leaseWatchEvents.toFixed(0).padStart(17)} ${r.watchEvents.toFixed(0).padStart(15)} ${`${(r.apiCores * 100).toFixed(0)}%`.padStart(14)} ${`${(r.benchCores * 100).toFixed(0)}%`.padStart(13)} ${String(r.answering).padStart(10)} ${String(r.fast).padStart(5)} ${r.answered.padStart(9)}`,
    );
  }
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
