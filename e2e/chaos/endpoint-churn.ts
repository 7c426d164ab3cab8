// What the chaos tests do to the endpoint controllers while a fault happens: a seeded churn of pods behind several
// Services (new pods, readiness flips, graceful and forced deletions), the model of what every Service's
// EndpointSlices and Endpoints must then say, and the check that they say exactly that: no endpoint lost, none
// duplicated, no stale condition.
import { expect } from '@jest/globals';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { EndpointSlices, Endpoints as EndpointsResource, Pods, Services } from '../../api/resources.js';
import type { EndpointSlice, Endpoints } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from '../../controllers/endpointutil/constants.js';
import { createPod, forceDeletePod, inParallel, setPodStatus } from '../../testing/endpoint-cluster.js';
import { prng } from '../../testing/prng.js';
import { eventually } from '../jest/cluster.js';

/**
 * Not the upstream managed-by values: a chaos test on the shared control plane must not claim another suite's
 * slices, nor another suite its own.
 */
export const CHAOS_MANAGED_BY = { slices: 'endpointslice-controller.chaos.switchboard.dev', endpoints: 'endpoint-controller.chaos.switchboard.dev' };

/** The flags that point a replica's endpoint controllers at one namespace, with the chaos managed-by values, and nothing else. */
export function endpointControllerFlags(namespace: string): string[] {
  return [
    `--endpoint-controllers-namespace=${namespace}`,
    `--endpointslice-managed-by=${CHAOS_MANAGED_BY.slices}`,
    `--endpoints-managed-by=${CHAOS_MANAGED_BY.endpoints}`,
    '--endpointslice-mirroring-controller=false',
    '--load-balancer-controller=false',
  ];
}

interface ChurnPod {
  service: string;
  ip: string;
  ready: boolean;
  terminating: boolean;
}

const MAX_ENDPOINTS_PER_SLICE = 100;

export class EndpointChurn {
  private readonly pods = new Map<string, ChurnPod>();
  private readonly random: () => number;
  private nextPod = 0;
  /** API calls the churn made, for the figures. */
  operations = 0;

  private constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly node: string,
    readonly services: readonly string[],
    seed: number,
  ) {
    this.random = prng(seed);
  }

  /** Creates `serviceCount` Services (`svc-0`…) selecting `app: <service>`; `seed` pins every later choice. */
  static async start(client: KubeClient, namespace: string, node: string, serviceCount: number, seed: number): Promise<EndpointChurn> {
    const services = Array.from({ length: serviceCount }, (_, i) => `svc-${i}`);
    for (const name of services) {
      await client.create(Services, { metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    }
    return new EndpointChurn(client, namespace, node, services, seed);
  }

  get podCount(): number {
    return this.pods.size;
  }

  /** Adds `count` pods spread round-robin over the Services, `concurrency` creates at a time. */
  async addPods(count: number, ready: boolean, concurrency = 8): Promise<void> {
    await inParallel(Array.from({ length: count }, (_, i) => i), concurrency, () => this.addPod(this.services[this.nextPod % this.services.length]!, ready));
  }

  private async addPod(service: string, ready: boolean): Promise<void> {
    const n = this.nextPod++;
    const name = `pod-${n}`;
    const ip = `10.${80 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
    // Recorded first: the pod exists for the controllers from the moment the create is sent.
    this.pods.set(name, { service, ip, ready, terminating: false });
    await createPod(this.client, this.namespace, { name, labels: { app: service }, node: this.node, ips: [ip], ready });
    this.operations += 1;
  }

  /** Marks `count` not-ready pods ready (what kubelets report as a rollout comes up), `concurrency` at a time. */
  async makeReady(count: number, concurrency = 8): Promise<void> {
    const waiting = [...this.pods].filter(([, p]) => !p.ready && !p.terminating).slice(0, count);
    await inParallel(waiting, concurrency, async ([name, pod]) => {
      pod.ready = true;
      await setPodStatus(this.client, this.namespace, name, { ips: [pod.ip], ready: true });
      this.operations += 1;
    });
  }

  /** One random change: a readiness flip mostly, sometimes a new pod, a graceful delete or a forced delete. */
  async step(): Promise<void> {
    const live = [...this.pods].filter(([, p]) => !p.terminating);
    const roll = this.random();
    const picked = live[Math.floor(this.random() * live.length)];
    if (!picked || roll < 0.2) {
      await this.addPod(this.services[Math.floor(this.random() * this.services.length)]!, this.random() < 0.5);
      return;
    }
    const [name, pod] = picked;
    if (roll < 0.3) {
      pod.terminating = true; // a bound pod stays Terminating: there is no kubelet to confirm it
      await this.client.delete(Pods, name, { namespace: this.namespace });
    } else if (roll < 0.38) {
      this.pods.delete(name);
      await forceDeletePod(this.client, this.namespace, name);
    } else {
      pod.ready = !pod.ready;
      await setPodStatus(this.client, this.namespace, name, { ips: [pod.ip], ready: pod.ready });
    }
    this.operations += 1;
  }

  /** Steps every `intervalMs` until the returned stop() is awaited. */
  run(intervalMs: number): { stop(): Promise<void> } {
    let running = true;
    const loop = (async () => {
      while (running) {
        await this.step();
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  /**
   * Waits until every Service's slices and Endpoints say exactly what its pods are: per endpoint its address and
   * ready/serving/terminating, each address once, in the fewest slices; ready and not-ready Endpoints addresses.
   */
  async converged(timeoutMs = 30_000): Promise<void> {
    await eventually(
      async () => {
        for (const service of this.services) await this.expectService(service);
        return true;
      },
      timeoutMs,
      250,
    );
  }

  private async expectService(service: string): Promise<void> {
    const pods = [...this.pods.values()].filter((p) => p.service === service);
    const slices = (
      await this.client.list<EndpointSlice>(EndpointSlices, {
        namespace: this.namespace,
        labelSelector: `${LABEL_ENDPOINTSLICE_SERVICE_NAME}=${service},${LABEL_MANAGED_BY}=${CHAOS_MANAGED_BY.slices}`,
      })
    ).items;
    const endpoints = slices
      .flatMap((s) => s.endpoints ?? [])
      .map((e) => JSON.stringify([e.addresses[0], e.conditions?.ready, e.conditions?.serving, e.conditions?.terminating]))
      .sort();
    const expected = pods.map((p) => JSON.stringify([p.ip, p.ready && !p.terminating, p.ready, p.terminating])).sort();
    const slicesNeeded = Math.max(1, Math.ceil(pods.length / MAX_ENDPOINTS_PER_SLICE));
    expect({ service, slices: slices.length, endpoints }).toEqual({ service, slices: slicesNeeded, endpoints: expected });

    const subsets = (await this.client.get<Endpoints>(EndpointsResource, service, this.namespace)).subsets ?? [];
    const ips = (list: { ip: string }[] | undefined) => (list ?? []).map((a) => a.ip);
    expect({
      service,
      ready: subsets.flatMap((s) => ips(s.addresses)).sort(),
      notReady: subsets.flatMap((s) => ips(s.notReadyAddresses)).sort(),
    }).toEqual({
      service,
      ready: pods.filter((p) => p.ready && !p.terminating).map((p) => p.ip).sort(),
      notReady: pods.filter((p) => !p.ready && !p.terminating).map((p) => p.ip).sort(),
    });
  }
}
