// What a chaos test runs on: a control plane of its own (faults must not reach other suites), a client, and
// `switchboard controller` replicas serving the allocation webhooks behind a balancer, replaced when they exit.
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { KubeClient } from '../../controllers/runtime/client.js';
import { Namespaces } from '../../api/resources.js';
import { eventually } from '../jest/cluster.js';
import { ReplicaSet } from '../jest/replica-set.js';
import { Balancer, allocationFlags } from '../jest/service-allocation.js';
import { type ReplicaTimings, replicaFlags, requireBuiltSwitchboard, spawnSwitchboard } from '../jest/switchboard-process.js';

/** Namespace of the replicas' Lease and Switchboard's own objects. */
export const SYSTEM_NS = 'switchboard-system';

export interface ChaosCluster {
  cp: LocalControlPlane;
  client: KubeClient;
  replicas: ReplicaSet;
  stop(): Promise<void>;
}

export interface ChaosClusterOptions {
  /** Prefix of the replicas' identities, and the client's field manager. */
  name: string;
  log: (line: string) => void;
  /** Namespaces to create besides SYSTEM_NS. */
  namespaces: string[];
  replicas: number;
  graceMs: number;
  /** Replica flags besides leader election and allocation. */
  extraFlags: string[];
  /** Leader-election timings; replicaFlags' test defaults (lease 4 s) if left out. */
  timings?: ReplicaTimings;
}

/** Resolves once exactly one replica leads and it has written the webhook configurations. */
export async function startChaosCluster(options: ChaosClusterOptions): Promise<ChaosCluster> {
  requireBuiltSwitchboard();
  const cp = await new LocalControlPlane({ kubeControllerManager: false, log: options.log }).start();
  const client = KubeClient.fromFile(cp.kubeconfig, `${options.name}-test`);
  const balancer = new Balancer();
  const replicas = new ReplicaSet({
    name: options.name,
    replicas: options.replicas,
    spawn: (id, webhookPort) =>
      spawnSwitchboard(id, [...replicaFlags(cp.kubeconfig, SYSTEM_NS, id, options.timings), ...options.extraFlags, ...allocationFlags(balancer, webhookPort, options.graceMs)]),
    onChange: (live) => balancer.route(live.map((r) => r.webhookPort)),
  });
  const stop = async () => {
    await replicas.stop();
    await balancer.close();
    client.close();
    await cp.stop();
  };
  try {
    for (const name of [SYSTEM_NS, ...options.namespaces]) await client.create(Namespaces, { metadata: { name } });
    await balancer.listen();
    await replicas.start();
    await eventually(() => replicas.singleLeader(client, SYSTEM_NS).then((leader) => leader === true), 60_000);
    await eventually(() => replicas.processes.some((r) => r.output.some((l) => l.includes('"webhook configurations written"'))), 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { cp, client, replicas, stop };
}
