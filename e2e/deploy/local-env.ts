// The scenarios' environment on a local, kubelet-less control plane: pods are created through the API on a Node
// object and given the status a kubelet would report; there is no data path, so LoadBalancer addresses are checked
// in the API only.
import { createNode, createPod } from '../../testing/endpoint-cluster.js';
import type { KubeClient } from '../../controllers/runtime/client.js';
import type { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import type { RunningPod, ScenarioEnv, Workload } from '../scenarios/env.js';

export interface LocalEnvOptions {
  controlPlane: LocalControlPlane;
  /** The admin's client. */
  client: KubeClient;
  /** The Node the pods are put on (created by prepareLocalNode). */
  node: string;
  loadBalancerRange: string;
  log(line: string): void;
}

/** Creates the Node every local pod runs on, Ready, as a kubelet would register it. */
export async function prepareLocalNode(client: KubeClient, node: string): Promise<void> {
  await createNode(client, node, { zone: 'zone-a' });
}

export function localEnv(options: LocalEnvOptions): ScenarioEnv {
  let podCount = 0;
  return {
    name: 'local',
    client: options.client,
    kubectl: (args, input) => options.controlPlane.kubectl(args, input),
    loadBalancerRange: options.loadBalancerRange,
    timeoutMs: 30_000,
    log: options.log,
    async runPods(namespace: string, workload: Workload): Promise<RunningPod[]> {
      const pods: RunningPod[] = [];
      for (let i = 0; i < workload.replicas; i++) {
        const n = ++podCount;
        const pod = { name: `${workload.name}-${i}`, ip: `10.244.${n >> 8}.${n & 255}` };
        await createPod(options.client, namespace, {
          name: pod.name,
          labels: workload.labels,
          node: options.node,
          ips: [pod.ip],
          ready: true,
          ports: [{ containerPort: workload.port, protocol: 'TCP' }],
        });
        pods.push(pod);
      }
      return pods;
    },
  };
}
