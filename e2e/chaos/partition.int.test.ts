// Chaos: the leader cut off the API server without being killed. Replica A reaches the API server through a
// StallingProxy, replica B directly; A leads while pods churn, then the proxy goes silent (no FIN, no RST: a dropped
// route or a dead middlebox) and comes back after the renew deadline but before the lease runs out, the window in
// which a leader that did not fence itself would renew and carry on. A must stop within its renew deadline (the
// audit log shows no write of A after its last renewal + the deadline) and exit 1; B takes over; a restarted A
// rejoins as a follower and writes nothing; the slices and Endpoints end exact, nothing duplicated.
// The speaker's version of this fault (a node cut off the API server stops answering ARP before its successor
// starts) is in controllers/speaker/l2-network.int.test.ts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../../controllers/runtime/client.js';
import { createNode } from '../../testing/endpoint-cluster.js';
import { StallingProxy, apiServerPort, writeKubeconfigThrough } from '../../testing/stalling-proxy.js';
import { createNamespace, eventually } from '../jest/cluster.js';
import { exited, leads, requireBuiltSwitchboard, stopSwitchboard, waitForOutput, type SwitchboardProcess } from '../jest/switchboard-process.js';
import { describeWrite, leaseWritesOf, startAuditedControlPlane, writesOf, type AuditedControlPlane } from './audit.js';
import { EndpointChurn } from './endpoint-churn.js';
import { RENEW_DEADLINE_MS, TAKEOVER_BOUND_MS, electedLeader, loggedAt, startEndpointReplica } from './replicas.js';
import { spread, trials } from './trials.js';

const log = (line: string) => process.stderr.write(`[chaos: partition] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('chaos: the leader cut off the API server (a silent connection), then reconnected', () => {
  let audited: AuditedControlPlane;
  let client: KubeClient;
  let dir: string;
  const replicas: SwitchboardProcess[] = [];
  const proxies: StallingProxy[] = [];
  const NODE = 'chaos-node';

  beforeAll(async () => {
    requireBuiltSwitchboard();
    dir = await mkdtemp(join(tmpdir(), 'switchboard-partition-'));
    audited = await startAuditedControlPlane(log);
    client = KubeClient.fromFile(audited.controlPlane.kubeconfig, 'switchboard-test');
    await createNode(client, NODE);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => stopSwitchboard(r, 'SIGKILL')));
    for (const p of proxies) await p.close();
    client?.close();
    await audited?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const count = trials(2, 10);
  it(`stops acting within its renew deadline, exits 1, and rejoins as a follower (${count} trials)`, async () => {
    const stepDowns: number[] = [];
    const takeovers: number[] = [];
    for (let trial = 0; trial < count; trial++) {
      const ns = await createNamespace(client, `partition-${trial}`);
      const churn = await EndpointChurn.start(client, ns, NODE, 3, 100 + trial);
      await churn.addPods(24, true);
      const proxy = await StallingProxy.start(apiServerPort(audited.controlPlane.kubeconfig));
      proxies.push(proxy);
      const proxiedKubeconfig = join(dir, `trial-${trial}.kubeconfig`);
      await writeKubeconfigThrough(proxy, audited.controlPlane.kubeconfig, proxiedKubeconfig);

      // A first, alone, so that the replica behind the proxy is the leader.
      const a = startEndpointReplica(`partition-${trial}-a`, proxiedKubeconfig, ns);
      replicas.push(a);
      await electedLeader(client, ns, [a]);
      const b = startEndpointReplica(`partition-${trial}-b`, audited.controlPlane.kubeconfig, ns);
      replicas.push(b);
      await waitForOutput(b, '"leader observed"');
      const churning = churn.run(40);
      await sleep(1500);

      const stalledAt = Date.now();
      proxy.stall();
      await sleep(RENEW_DEADLINE_MS + 500); // past A's renew deadline, short of the 4 s lease
      proxy.resume(); // new connections get through again: a leader that did not fence itself would renew now
      await eventually(() => exited(a), 10_000, 25);
      await eventually(() => leads(b), TAKEOVER_BOUND_MS, 25);
      const takeoverMs = Date.now() - stalledAt;
      const stepDownMs = loggedAt(a, '"lost leadership"')! - stalledAt;

      // The Deployment restarts A: it comes back through the (now healthy) link as a follower.
      const restarted = startEndpointReplica(`partition-${trial}-a-restarted`, proxiedKubeconfig, ns);
      replicas.push(restarted);
      await waitForOutput(restarted, '"leader observed"');
      await sleep(1000);
      await churning.stop();
      await churn.converged();
      expect(leads(restarted)).toBe(false);

      const writes = await audited.writes();
      const aWrites = writesOf(writes, a.id);
      const lastRenewal = leaseWritesOf(writes, a.id).at(-1)!;
      // It wrote through the proxy before the cut (or "no write after" would prove nothing)…
      expect(aWrites.filter((w) => w.object.startsWith('endpointslices/')).length).toBeGreaterThan(0);
      // …and nothing once its last renewal's window closed, though the link was back before its lease ran out.
      const fenceClosed = lastRenewal.at + RENEW_DEADLINE_MS;
      const late = aWrites.filter((w) => w.at > fenceClosed).map((w) => describeWrite(w, fenceClosed));
      expect({ trial, late }).toEqual({ trial, late: [] });
      expect({ trial, exitCode: a.child.exitCode }).toEqual({ trial, exitCode: 1 });
      expect(stepDownMs).toBeLessThanOrEqual(RENEW_DEADLINE_MS + 250); // its last renewal started before the cut; timer slack
      expect({ trial, restartedWrites: writesOf(writes, restarted.id).map((w) => describeWrite(w, stalledAt)) }).toEqual({ trial, restartedWrites: [] });
      const newLeaderFirst = writesOf(writes, b.id).find((w) => w.code < 300)!;
      expect(newLeaderFirst.at).toBeGreaterThan(fenceClosed);

      log(`trial ${trial}: A stepped down ${stepDownMs} ms after the cut and exited 1, B took over ${takeoverMs} ms after it, ${newLeaderFirst.at - fenceClosed} ms after A's fence closed; ${aWrites.length} writes of A before, 0 after; ${churn.operations} churn operations, ${churn.podCount} pods exact`);
      stepDowns.push(stepDownMs);
      takeovers.push(takeoverMs);
      await Promise.all([stopSwitchboard(b), stopSwitchboard(restarted)]);
    }
    log(`${count} trials: step-down after the cut ${spread(stepDowns)} (renew deadline ${RENEW_DEADLINE_MS} ms); takeover ${spread(takeovers)}; 0 writes after the fence, 0 endpoints lost, 0 duplicated`);
  }, trials(150_000, 600_000));
});
