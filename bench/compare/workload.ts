// The workload both sides get: Nodes in zones, Services, and pods made and changed through the API the way a
// kubelet would report them (no kubelet runs: a Pod object with a nodeName, then its status), plus the desired
// endpoints of every Service that the convergence watcher compares the controllers' output with.
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Namespaces, Services } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { createNode, createPod, forceDeletePod, inParallel, setPodStatus } from '../../testing/endpoint-cluster.js';

export interface WorkloadSize {
  nodes: number;
  zones: number;
  services: number;
  podsPerService: number;
  /** Waves of the rolling update; each replaces 1/waves of every Service's pods. */
  waves: number;
  /** Share of each Service's pods that turn not-ready and back in the flap phase. */
  flapShare: number;
  /** Workload writes in flight at once. */
  concurrency: number;
}

export const NAMESPACE = 'bench';
const TARGET_PORT = 8080;

interface BenchPod {
  name: string;
  service: number;
  ip: string;
  ready: boolean;
}

/** Desired endpoints of one Service: pod IP → ready. */
export type DesiredEndpoints = Map<string, boolean>;

export interface PhaseWrites {
  /** When the last workload write of the phase was answered (ms since epoch). */
  lastWriteAt: number;
  writes: number;
}

export class Workload {
  private readonly pods = new Map<string, BenchPod>();
  private nextIP = 1;
  private generation = 0;
  /** Services whose desired endpoints changed since the watcher last read them. */
  readonly changed = new Set<string>();

  constructor(
    private readonly client: KubeClient,
    readonly size: WorkloadSize,
  ) {}

  serviceName(i: number): string {
    return `svc-${i}`;
  }

  get podCount(): number {
    return this.pods.size;
  }

  /** The desired endpoints of every Service, by Service name. */
  desired(): Map<string, DesiredEndpoints> {
    const out = new Map<string, DesiredEndpoints>();
    for (let i = 0; i < this.size.services; i++) out.set(this.serviceName(i), new Map());
    for (const pod of this.pods.values()) out.get(this.serviceName(pod.service))!.set(pod.ip, pod.ready);
    return out;
  }

  /** Namespace, Nodes (zones round-robin) and Services: not measured. */
  async setUp(): Promise<void> {
    const { nodes, zones, services, concurrency } = this.size;
    await this.client.create(Namespaces, { metadata: { name: NAMESPACE } });
    await inParallel(
      Array.from({ length: nodes }, (_, i) => i),
      concurrency,
      (i) => createNode(this.client, `node-${i}`, { zone: `zone-${i % zones}`, cpu: '4' }),
    );
    await inParallel(
      Array.from({ length: services }, (_, i) => i),
      concurrency,
      (i) =>
        this.client.create<Service>(Services, {
          metadata: { name: this.serviceName(i), namespace: NAMESPACE },
          spec: { selector: { app: this.serviceName(i) }, ports: [{ name: 'http', port: 80, targetPort: TARGET_PORT }] },
        }),
    );
  }

  private newIP(): string {
    const i = this.nextIP++;
    return `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  }

  private async run(ops: (() => Promise<unknown>)[]): Promise<PhaseWrites> {
    let lastWriteAt = Date.now();
    await inParallel(ops, this.size.concurrency, async (op) => {
      await op();
      lastWriteAt = Date.now();
    });
    return { lastWriteAt, writes: ops.length };
  }

  /** A ready pod for Service `service`: create, then the status a kubelet would set (two writes). */
  private addPod(service: number): () => Promise<void> {
    const pod: BenchPod = { name: `${this.serviceName(service)}-g${this.generation}-${this.pods.size}-${this.nextIP}`, service, ip: this.newIP(), ready: true };
    const node = `node-${this.nextIP % this.size.nodes}`;
    return async () => {
      await createPod(this.client, NAMESPACE, { name: pod.name, labels: { app: this.serviceName(service) }, node, ips: [pod.ip], ready: true, ports: [{ name: 'http', containerPort: TARGET_PORT }] });
      this.pods.set(pod.name, pod);
      this.changed.add(this.serviceName(service));
    };
  }

  private removePod(pod: BenchPod): () => Promise<void> {
    return async () => {
      await forceDeletePod(this.client, NAMESPACE, pod.name);
      this.pods.delete(pod.name);
      this.changed.add(this.serviceName(pod.service));
    };
  }

  private setReady(pod: BenchPod, ready: boolean): () => Promise<void> {
    return async () => {
      await setPodStatus(this.client, NAMESPACE, pod.name, { ips: [pod.ip], ready });
      pod.ready = ready;
      this.changed.add(this.serviceName(pod.service));
    };
  }

  /** Every Service gets its pods, interleaved across Services as a scheduler would start them. */
  create(): Promise<PhaseWrites> {
    const ops: (() => Promise<void>)[] = [];
    for (let j = 0; j < this.size.podsPerService; j++) for (let s = 0; s < this.size.services; s++) ops.push(this.addPod(s));
    return this.run(ops);
  }

  /** Replaces every pod in `waves` waves: each wave starts its new pods, then removes as many old ones. */
  async rollingUpdate(): Promise<PhaseWrites> {
    const old = [...this.pods.values()];
    this.generation += 1;
    const perWave = Math.ceil(old.length / this.size.waves);
    let writes = 0;
    let lastWriteAt = Date.now();
    for (let w = 0; w < this.size.waves; w++) {
      const leaving = old.slice(w * perWave, (w + 1) * perWave);
      const started = await this.run(leaving.map((pod) => this.addPod(pod.service)));
      const stopped = await this.run(leaving.map((pod) => this.removePod(pod)));
      writes += started.writes + stopped.writes;
      lastWriteAt = Math.max(started.lastWriteAt, stopped.lastWriteAt);
    }
    return { lastWriteAt, writes };
  }

  /** The pods the flap phase turns not-ready and back: the first `flapShare` of every Service's. */
  private flapping(): BenchPod[] {
    const bySvc = new Map<number, BenchPod[]>();
    for (const pod of this.pods.values()) {
      const pods = bySvc.get(pod.service);
      if (pods) pods.push(pod);
      else bySvc.set(pod.service, [pod]);
    }
    return [...bySvc.values()].flatMap((pods) => pods.slice(0, Math.max(1, Math.round(pods.length * this.size.flapShare))));
  }

  /** The IPs of the pods the flap phase will change. */
  flappingIPs(): Set<string> {
    return new Set(this.flapping().map((pod) => pod.ip));
  }

  /** `flapShare` of every Service's pods turn not-ready, and straight back once all have. */
  async flap(): Promise<PhaseWrites> {
    const flapping = this.flapping();
    const down = await this.run(flapping.map((pod) => this.setReady(pod, false)));
    const up = await this.run(flapping.map((pod) => this.setReady(pod, true)));
    return { lastWriteAt: up.lastWriteAt, writes: down.writes + up.writes };
  }
}
