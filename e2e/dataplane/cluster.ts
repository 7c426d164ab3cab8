// What the traffic tests and the programming-latency benchmark share: a control plane of their own, the data-plane
// lab (cmd/up/dataplane-lab.ts) with three nodes, and the endpoint controllers of either Switchboard (a real
// `switchboard controller` process) or kube-controller-manager, switched at run time so that both are measured on
// the same lab in the same run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../../controllers/runtime/client.js';
import { EndpointSlices, Namespaces, Services } from '../../api/resources.js';
import type { EndpointSlice, Service } from '../../api/wire.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { ensureDataplaneBinaries, type DataplaneBinaries } from '../../cmd/up/controlplane/binaries.js';
import { ManagedProcess } from '../../cmd/up/controlplane/processes.js';
import { DataplaneLab, type LabPod, type RequestResult } from '../../cmd/up/dataplane-lab.js';
import { netlabUnavailable } from '../../cmd/up/netlab.js';

export const SPEAKER_NS = 'switchboard-system';
export const SERVICE_CIDR = '10.96.0.0/16';

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
  private serial = 0;
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

  async stop(): Promise<void> {
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

export const namesOf = (pods: readonly LabPod[]): string[] => pods.map((p) => p.name).sort();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
