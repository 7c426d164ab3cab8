// What an end-to-end scenario needs from the cluster it runs on. Two implementations: the local suite's
// (e2e/deploy: a kubelet-less control plane, pods made through the API with the status a kubelet would set, no data
// path) and the kind suite's (e2e/kind: pods run by real kubelets, LoadBalancer addresses reached over the kind
// network). The scenarios themselves (scenarios.ts) are the same for both.
import type { KubeClient } from '../../controllers/runtime/client.js';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl (as the cluster's admin) with `args`, `input` on stdin; resolves with its output even on failure. */
export type Kubectl = (args: string[], input?: string) => Promise<KubectlResult>;

/** Pods of one app: `replicas` of them, labelled `labels`, answering HTTP GET on `port` with their own name. */
export interface Workload {
  name: string;
  labels: Record<string, string>;
  replicas: number;
  port: number;
}

export interface RunningPod {
  name: string;
  ip: string;
}

export interface ScenarioEnv {
  /** "local" or "kind", for logs. */
  readonly name: string;
  /** The cluster's admin. */
  readonly client: KubeClient;
  readonly kubectl: Kubectl;
  /** Runs the workload in `namespace`; resolves once every pod is Ready, with their names and IPs. */
  runPods(namespace: string, workload: Workload): Promise<RunningPod[]>;
  /** Addresses (a CIDR or "first-last") a scenario's IPAddressPool may hand out. */
  readonly loadBalancerRange: string;
  /**
   * An HTTP GET of http://ip:port/ from outside the cluster's nodes (over the nodes' L2 network, so through the
   * speaker's ARP answer); resolves with the body. Absent where there is no data path (the local suite).
   */
  readonly reach?: (ip: string, port: number) => Promise<string>;
  /** How long a scenario waits for the cluster to settle (image pulls and kubelets make kind slower). */
  readonly timeoutMs: number;
  log(line: string): void;
}
