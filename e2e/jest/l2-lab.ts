// Pieces shared by the speaker's network-namespace suites (controllers/speaker/*.int.test.ts): the allocation
// controller run in the test process, a LoadBalancer Service with one ready endpoint, and what arping and ndisc6
// hear from a namespace.
import { KubeClient } from '../../controllers/runtime/client.js';
import { createLogger } from '../../controllers/runtime/log.js';
import { Manager } from '../../controllers/runtime/manager.js';
import { EndpointSlices, Services } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { loadBalancerJob } from '../../cmd/jobs/loadbalancer.js';
import { inNs, runAsync } from '../../cmd/up/netlab.js';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
