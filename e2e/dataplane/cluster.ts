// What the traffic tests and the programming-latency benchmark share: a control plane of their own, the data-plane
// lab (cmd/up/dataplane-lab.ts) with three nodes, and the endpoint controllers of either Switchboard (a real
// `switchboard controller` process) or kube-controller-manager, switched at run time so that both are measured on
// the same lab in the same run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../../controllers/runtime/client.js';
import { EndpointSlices, Namespaces, Services } from '../../api/resources.js';
import type { EndpointSlice, Service } from '../../api/wire.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { ensureDataplaneBinaries, type DataplaneBinaries } from '../../cmd/up/controlplane/binaries.js';
import { ManagedProcess } from '../../cmd/up/controlplane/processes.js';
import { DataplaneLab, type LabNode, type LabPod, type RequestResult } from '../../cmd/up/dataplane-lab.js';
import { inNs, netlabUnavailable } from '../../cmd/up/netlab.js';
import { bounded } from '../jest/service-allocation.js';

export const SPEAKER_NS = 'switchboard-system';
export const SERVICE_CIDR = '10.96.0.0/16,fd00:10:96::/108';

/** Why the traffic suite cannot run here, or undefined. */
export function dataplaneUnavailable(): string | undefined {
  const why = netlabUnavailable();
  if (why) return why;
  for (const tool of ['nft', 'iptables', 'conntrack', 'arping']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (make system-deps installs it)`;
  }
  return undefined;
}

/** The repository's dist/cmd/switchboard.js, from wherever this file runs (source under jest, or dist-test/). */
export function switchboardBinary(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      const bin = join(dir, 'dist', 'cmd', 'switchboard.js');
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build\` first`);
      return bin;
    }
  }
  throw new Error('no package.json above this file');
}

export type EndpointControllers = 'switchboard' | 'kube-controller-manager';

export class DataplaneCluster {
  cp!: LocalControlPlane;
  client!: KubeClient;
  lab!: DataplaneLab;
  binaries!: DataplaneBinaries;
  readonly work = mkdtempSync(join(tmpdir(), 'sb-dataplane-'));
  private controllers?: ManagedProcess;
  private coredns?: ManagedProcess;
  private serial = 0;
  private readonly appNames = new Map<string, number>();
  running: EndpointControllers | undefined;

  async start(o: { nodes?: number; log?: (line: string) => void } = {}): Promise<this> {
    this.binaries = await ensureDataplaneBinaries(o.log);
    this.cp = await new LocalControlPlane({ serviceClusterIPRange: SERVICE_CIDR, kubeControllerManager: false, log: o.log }).start();
    this.client = KubeClient.fromFile(this.cp.kubeconfig, 'switchboard-test');
    await this.client.create(Namespaces, { metadata: { name: SPEAKER_NS } });
    this.lab = new DataplaneLab({
      client: this.client,
      kubeconfig: this.cp.kubeconfig,
      apiPort: Number(new URL(this.cp.server).port),
      workDir: this.work,
      kubeProxyBinary: this.binaries.kubeProxy,
      nodeNames: Array.from({ length: o.nodes ?? 3 }, (_, i) => `node${i + 1}`),
      switchboard: switchboardBinary(),
    });
    await this.lab.create();
    return this;
  }

  /** Runs the endpoint controllers of `which` (stopping the other's): Switchboard's process also runs the LoadBalancer job. */
  async use(which: EndpointControllers): Promise<void> {
    if (this.running === which) return;
    await this.controllers?.stop();
    await this.cp.stopControllerManager('endpoints');
    if (which === 'switchboard') {
      const log = join(this.work, `switchboard-${this.serial++}.log`);
      const sb = ManagedProcess.start('switchboard', process.execPath, [switchboardBinary(), 'controller', `--kubeconfig=${this.cp.kubeconfig}`, `--namespace=${SPEAKER_NS}`, '--leader-elect=false', '--metrics-bind-address=0', '--log-level=info'], log);
      this.controllers = sb;
      const deadline = Date.now() + 60_000;
      while (!sb.logTail(200).includes('"starting controllers"')) {
        if (!sb.running || Date.now() > deadline) throw new Error(`switchboard did not start its controllers:\n${sb.logTail()}`);
        await sleep(100);
      }
    } else {
      this.controllers = undefined;
      // kube-controller-manager's defaults (batch period 0, 5 workers), as Switchboard's.
      await this.cp.startControllerManager('endpoints', ['endpointslice-controller', 'endpoints-controller', 'endpointslice-mirroring-controller']);
    }
    this.running = which;
  }

  /** A Service/app name not used before in this cluster: `<prefix>-sb|kcm[-<n>]`. */
  appName(prefix: string, controllers: EndpointControllers): string {
    const base = `${prefix}-${controllers === 'switchboard' ? 'sb' : 'kcm'}`;
    const n = (this.appNames.get(base) ?? 0) + 1;
    this.appNames.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  }

  /** CoreDNS serving cluster.local from the API server, in `node`'s namespace on 127.0.0.1:1053; returns that address. */
  async startCoreDNS(node: LabNode): Promise<string> {
    const corefile = join(this.work, 'Corefile');
    await writeFile(corefile, [
      '.:1053 {',
      '  bind 127.0.0.1',
      '  errors',
      '  kubernetes cluster.local in-addr.arpa ip6.arpa {',
      `    kubeconfig ${this.cp.kubeconfig} local`,
      '    pods insecure',
      '    fallthrough in-addr.arpa ip6.arpa',
      '  }',
      '}',
      '',
    ].join('\n'));
    this.coredns = ManagedProcess.start('coredns', 'ip', inNs(node.host.ns, this.binaries.coredns, '-conf', corefile).slice(1), join(this.work, 'coredns.log'));
    return '127.0.0.1:1053';
  }

  async stop(): Promise<void> {
    await this.coredns?.stop();
    await this.controllers?.stop();
    await this.lab?.stop();
    this.client?.close();
    await this.cp?.stop();
    if (!process.env.SWITCHBOARD_KEEP_CONTROLPLANE) rmSync(this.work, { recursive: true, force: true });
    else process.stderr.write(`[dataplane] logs kept in ${this.work}\n`);
  }

  async service(namespace: string, name: string, spec: Service['spec']): Promise<Service> {
    await this.client.create<Service>(Services, { metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...spec } });
    return this.client.get<Service>(Services, name, namespace);
  }

  /** The ready and the serving-but-terminating endpoint addresses of the Service's slices. */
  async endpoints(namespace: string, service: string): Promise<{ ready: string[]; notReady: string[] }> {
    const slices = (await this.client.list<EndpointSlice>(EndpointSlices, { namespace, labelSelector: `kubernetes.io/service-name=${service}` })).items;
    const all = slices.flatMap((s) => s.endpoints ?? []);
    return {
      ready: all.filter((e) => e.conditions?.ready).flatMap((e) => e.addresses).sort(),
      notReady: all.filter((e) => !e.conditions?.ready).flatMap((e) => e.addresses).sort(),
    };
  }
}

/** Whether `pods` (by name) are exactly the ready ones that answered, and nothing failed. */
export function answeredBy(results: readonly RequestResult[]): { names: Set<string>; failed: number } {
  return { names: new Set(results.flatMap((r) => (r.body ? [r.body] : []))), failed: results.filter((r) => r.error).length };
}

/** The failed requests' errors, counted. */
export function countErrors(results: readonly RequestResult[]): Record<string, number> {
  const errors: Record<string, number> = {};
  for (const r of results) if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
  return errors;
}

export const namesOf = (pods: readonly LabPod[]): string[] => pods.map((p) => p.name).sort();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * Pods `<app>-<generation>-<i>` for the rolling update and the latency benchmark, spread over the nodes; created (and
 * made ready) `limit` at a time.
 */
async function podsFor(cluster: DataplaneCluster, namespace: string, app: string, names: string[], ready: boolean): Promise<LabPod[]> {
  const made = await bounded(names.length, 8, (i) =>
    cluster.lab.addPod({ namespace, name: names[i], node: cluster.lab.nodes[i % cluster.lab.nodes.length], labels: { app }, ready }),
  );
  return made.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
}

/** Waits until `count` requests from node1 to `url` all succeed and are answered only by `pods`. */
async function programmed(cluster: DataplaneCluster, url: string, pods: readonly LabPod[], timeoutMs = 60_000): Promise<void> {
  const want = namesOf(pods).join();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = answeredBy(await cluster.lab.nodes[0].agent.batch(url, Math.max(30, pods.length * 6), 8, 1000));
    if (probe.failed === 0 && [...probe.names].sort().join() === want) return;
    if (Date.now() > deadline) throw new Error(`${url} was not programmed with ${want} within ${timeoutMs / 1000} s (answered by ${[...probe.names].sort().join()}, ${probe.failed} failed)`);
    await sleep(300);
  }
}

export interface RollingUpdateResult {
  controllers: EndpointControllers;
  requests: number;
  failed: number;
  /** The failed requests' errors, counted. */
  errors: Record<string, number>;
}

/**
 * A rolling update under load, as a Deployment with maxSurge=wave/maxUnavailable=0/minReadySeconds and kubelet carry
 * it out: each wave adds `wave` new pods (not ready, then ready after a probe delay), and once they have been ready
 * for `availableAfterMs` deletes as many old ones (terminating and not ready at once, their server gone after
 * `terminationMs`, as a process without a preStop hook). node1 sends a request every `intervalMs` through the
 * ClusterIP meanwhile; failed requests are counted. Both controllers get the same waves at the same offsets into
 * the stream. `availableAfterMs` is longer than kube-proxy's --min-sync-period (1 s) after the slice writes of the
 * ready pods, so the deletion is programmed by a sync of its own and the failures measure how soon the controllers
 * write it; with a wait of exactly one period, whether a second write of the ready pods (two pods turn ready at once)
 * held kube-proxy's next sync back past the server's exit decided each wave (0 or ~0.5 s of failures) by a few ms.
 */
export async function rollingUpdate(
  cluster: DataplaneCluster,
  controllers: EndpointControllers,
  o: { namespace: string; replicas: number; wave: number; durationMs: number; intervalMs: number; readinessDelayMs: number; availableAfterMs: number; terminationMs: number },
): Promise<RollingUpdateResult> {
  await cluster.use(controllers);
  const app = cluster.appName('roll', controllers);
  let current = await podsFor(cluster, o.namespace, app, Array.from({ length: o.replicas }, (_, i) => `${app}-g0-${i}`), true);
  const svc = await cluster.service(o.namespace, app, {});
  const url = `http://${svc.spec!.clusterIP}:80/`;
  await programmed(cluster, url, current);
  const waves = Math.ceil(o.replicas / o.wave);
  const stream = cluster.lab.nodes[0].agent.stream(url, o.intervalMs, o.durationMs, 1000);
  const started = Date.now();
  for (let w = 0; w < waves; w++) {
    // Waves spread over the stream, the last one done with a second of traffic to spare.
    await sleep(Math.max(0, started + ((w + 0.5) * (o.durationMs - 1000)) / waves - (o.readinessDelayMs + o.availableAfterMs + o.terminationMs) - Date.now()));
    const fresh = await podsFor(cluster, o.namespace, app, Array.from({ length: o.wave }, (_, i) => `${app}-g${w + 1}-${i}`), false);
    await sleep(o.readinessDelayMs);
    await Promise.all(fresh.map((p) => cluster.lab.setPodStatus(p, { ready: true })));
    // The Deployment controller deletes old pods once the new ones are available (ready for minReadySeconds).
    await sleep(o.availableAfterMs);
    const old = current.slice(0, o.wave);
    current = [...current.slice(o.wave), ...fresh];
    await Promise.all(old.map((p) => cluster.lab.terminatePod(p)));
    await sleep(o.terminationMs);
    await Promise.all(old.map((p) => cluster.lab.removePod(p)));
  }
  const results = await stream;
  await Promise.all(current.map((p) => cluster.lab.removePod(p)));
  return { controllers, requests: results.length, failed: results.filter((r) => r.error).length, errors: countErrors(results) };
}

/**
 * Network programming latency: the time from a pod turning Ready (its status write returning) to the first request
 * answered by it, for `count` pods behind one ClusterIP Service; exactly one is ready at a time (the previous one turns
 * not ready in the same step), so every request from node1 goes to the newest once kube-proxy has it. Requests
 * every `intervalMs` bound the resolution.
 */
export async function programmingLatency(cluster: DataplaneCluster, controllers: EndpointControllers, o: { namespace: string; count: number; intervalMs: number }): Promise<number[]> {
  await cluster.use(controllers);
  const app = cluster.appName('lat', controllers);
  // One more than measured: the first is ready before the measurements start.
  const pods = await podsFor(cluster, o.namespace, app, Array.from({ length: o.count + 1 }, (_, i) => `${app}-${i}`), false);
  const svc = await cluster.service(o.namespace, app, {});
  const url = `http://${svc.spec!.clusterIP}:80/`;
  const agent = cluster.lab.nodes[0].agent;
  await cluster.lab.setPodStatus(pods[0], { ready: true });
  await programmed(cluster, url, [pods[0]]);
  const latencies: number[] = [];
  for (let i = 1; i < pods.length; i++) {
    await cluster.lab.setPodStatus(pods[i], { ready: true });
    const readyAt = Date.now();
    await cluster.lab.setPodStatus(pods[i - 1], { ready: false });
    for (;;) {
      const r = await agent.get(url, 1000);
      if (r.body === pods[i].name) {
        latencies.push(r.at - readyAt);
        break;
      }
      if (Date.now() - readyAt > 60_000) throw new Error(`${pods[i].name} was not reached within 60 s`);
      await sleep(Math.max(0, r.at + o.intervalMs - Date.now()));
    }
  }
  await Promise.all(pods.map((p) => cluster.lab.removePod(p)));
  return latencies.sort((a, b) => a - b);
}
