// `switchboard controller` replicas for the chaos tests: endpoint controllers only, on one namespace, with leader
// election a few seconds long so that a fault plays out in seconds.
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Leases } from '../../api/resources.js';
import type { Lease } from '../../api/wire.js';
import { eventually } from '../jest/cluster.js';
import { leads, replicaFlags, spawnSwitchboard, type SwitchboardProcess } from '../jest/switchboard-process.js';
import { endpointControllerFlags } from './endpoint-churn.js';

export const LEASE_MS = 4000;
export const RENEW_DEADLINE_MS = 3000;
export const RETRY_PERIOD_MS = 500;

/**
 * How soon a follower takes over once the leader stops renewing: the lease, plus up to one jittered retry period
 * (client-go's ×2.2) before it sees the last renewal and one more before it notices the lease has run out, plus a
 * second for a loaded 2-core machine.
 */
export const TAKEOVER_BOUND_MS = LEASE_MS + 2 * 2.2 * RETRY_PERIOD_MS + 1000;

export function startEndpointReplica(id: string, kubeconfig: string, namespace: string, extraFlags: string[] = []): SwitchboardProcess {
  const timings = { leaseDuration: `${LEASE_MS}ms`, renewDeadline: `${RENEW_DEADLINE_MS}ms`, retryPeriod: `${RETRY_PERIOD_MS}ms` };
  return spawnSwitchboard(id, [...replicaFlags(kubeconfig, namespace, id, timings), ...endpointControllerFlags(namespace), ...extraFlags]);
}

/** Waits for the Lease in `namespace` to name one of `replicas`, and for that one to have started its controllers. */
export async function electedLeader(client: KubeClient, namespace: string, replicas: readonly SwitchboardProcess[]): Promise<SwitchboardProcess> {
  const holder = await eventually(async () => (await client.getOrUndefined<Lease>(Leases, 'switchboard-controller', namespace))?.spec?.holderIdentity ?? false, 30_000);
  const leader = replicas.find((r) => r.id === holder);
  if (!leader) throw new Error(`the Lease names ${holder}, none of ${replicas.map((r) => r.id).join(', ')}`);
  await eventually(() => leads(leader), 15_000, 50);
  return leader;
}

/** The time of its first log line containing `text` (the logs are JSON lines with an ISO `ts`), if any. */
export function loggedAt(p: SwitchboardProcess, text: string): number | undefined {
  const line = p.output.find((l) => l.includes(text));
  return line === undefined ? undefined : Date.parse((JSON.parse(line) as { ts: string }).ts);
}
