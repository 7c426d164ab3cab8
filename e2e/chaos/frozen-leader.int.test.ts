// Chaos: a frozen leader. Two `switchboard controller` replicas run the endpoint controllers while pods churn; the
// leader is stopped (SIGSTOP: a long GC pause, a throttled cgroup, a VM migration) for longer than its lease, then
// continued. The follower must take over within the lease plus its polling; the old leader, waking up with a
// queue full of work, must write nothing once the new leader has written (the API server's audit log is the
// witness: each replica's User-Agent carries its identity) and must exit non-zero; the slices and Endpoints must
// end exactly as the pods are.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeClient } from '../../controllers/runtime/client.js';
import { createNode } from '../../testing/endpoint-cluster.js';
import { createNamespace, eventually } from '../jest/cluster.js';
import { exited, leads, requireBuiltSwitchboard, stopSwitchboard, type SwitchboardProcess } from '../jest/switchboard-process.js';
import { describeWrite, leaseWritesOf, startAuditedControlPlane, writesOf, type AuditedControlPlane } from './audit.js';
import { EndpointChurn } from './endpoint-churn.js';
import { LEASE_MS, TAKEOVER_BOUND_MS, electedLeader, startEndpointReplica } from './replicas.js';
import { spread, trials } from './trials.js';

const log = (line: string) => process.stderr.write(`[chaos: frozen leader] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('chaos: a leader frozen (SIGSTOP) for longer than its lease', () => {
  let audited: AuditedControlPlane;
  let client: KubeClient;
  const replicas: SwitchboardProcess[] = [];
  const NODE = 'chaos-node';

  beforeAll(async () => {
    requireBuiltSwitchboard();
    audited = await startAuditedControlPlane(log);
    client = KubeClient.fromFile(audited.controlPlane.kubeconfig, 'switchboard-test');
    await createNode(client, NODE);
  }, 120_000);

  afterAll(async () => {
    for (const r of replicas) r.child.kill('SIGCONT'); // a stopped process would not act on SIGTERM
    await Promise.all(replicas.map((r) => stopSwitchboard(r, 'SIGKILL')));
    client?.close();
    await audited?.stop();
  }, 60_000);

  const count = trials(2, 10);
  it(`hands over within lease + retry, and the old leader writes nothing after the new one (${count} trials)`, async () => {
    const takeovers: number[] = [];
    const exits: number[] = [];
    for (let trial = 0; trial < count; trial++) {
      const ns = await createNamespace(client, `frozen-${trial}`);
      const churn = await EndpointChurn.start(client, ns, NODE, 3, trial + 1);
      await churn.addPods(24, true);
      const pair = ['a', 'b'].map((x) => startEndpointReplica(`frozen-${trial}-${x}`, audited.controlPlane.kubeconfig, ns));
      replicas.push(...pair);
      const leader = await electedLeader(client, ns, pair);
      const follower = pair.find((r) => r !== leader)!;
      const churning = churn.run(40);
      await sleep(1500); // the leader has work in flight and in its queue when it freezes

      const frozenAt = Date.now();
      leader.child.kill('SIGSTOP');
      await eventually(() => leads(follower), TAKEOVER_BOUND_MS + 5000, 25);
      const takeoverMs = Date.now() - frozenAt;
      // Frozen past the lease, and long enough for the new leader to have written slices of its own.
      await sleep(Math.max(1000, LEASE_MS + 1000 - takeoverMs));
      const resumedAt = Date.now();
      leader.child.kill('SIGCONT');
      await eventually(() => exited(leader), 10_000, 25); // within ~100 ms unless the machine is starved
      const exitMs = Date.now() - resumedAt;
      await sleep(1000); // churn on under the new leader alone
      await churning.stop();
      await churn.converged();

      const writes = await audited.writes();
      const newLeaderFirst = writesOf(writes, follower.id).find((w) => w.code < 300);
      expect(newLeaderFirst).toBeDefined();
      const oldLeader = writesOf(writes, leader.id);
      // The filter must see the old leader's writes at all, or "none after" would prove nothing.
      expect(oldLeader.filter((w) => w.at < frozenAt && w.object.startsWith('endpointslices/')).length).toBeGreaterThan(0);
      expect(leaseWritesOf(writes, leader.id).length).toBeGreaterThan(0);
      const late = oldLeader.filter((w) => w.at >= newLeaderFirst!.at).map((w) => describeWrite(w, newLeaderFirst!.at));
      expect({ trial, late }).toEqual({ trial, late: [] });
      expect({ trial, exitCode: leader.child.exitCode }).toEqual({ trial, exitCode: 1 });
      expect(takeoverMs).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);

      log(`trial ${trial}: takeover ${takeoverMs} ms after SIGSTOP, old leader exited ${exitMs} ms after SIGCONT (code 1), ${oldLeader.length} writes before, 0 after; ${churn.operations} churn operations, ${churn.podCount} pods exact`);
      takeovers.push(takeoverMs);
      exits.push(exitMs);
      await stopSwitchboard(follower);
    }
    log(`${count} trials: takeover after SIGSTOP ${spread(takeovers)} (bound ${TAKEOVER_BOUND_MS} ms); old leader's exit after SIGCONT ${spread(exits)}; 0 writes after the new leader's first, 0 endpoints lost, 0 duplicated`);
  }, trials(150_000, 600_000));
});
