// Leader election with real replicas: two `switchboard controller` processes on one Lease. Exactly
// one leads; when it is killed with SIGKILL the other takes over once the lease expires, and when it
// is stopped with SIGTERM it releases the lease and the other takes over at once. In-process electors: never two
// leaders; a leader whose connection goes silent stops within its renew deadline, before anyone takes over; and a
// wedged leader fails its health check.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeClient } from './client.js';
import { Leases } from '../../api/resources.js';
import type { Lease } from '../../api/wire.js';
import { LEADER_HEALTHZ_TOLERANCE_MS, LeaderElector } from './leader-election.js';
import { silentLogger } from './log.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, testClient } from '../../e2e/jest/cluster.js';
import { StallingProxy, apiServerPort, clientThrough } from '../../testing/stalling-proxy.js';
import { leads, replicaFlags, requireBuiltSwitchboard, spawnSwitchboard, type SwitchboardProcess as Replica } from '../../e2e/jest/switchboard-process.js';

const LEASE_MS = 4000;
const RETRY_MS = 500;

function startReplica(id: string, namespace: string): Replica {
  const timings = { leaseDuration: `${LEASE_MS}ms`, renewDeadline: '3s', retryPeriod: `${RETRY_MS}ms` };
  // Keep the replicas' controllers to this test's namespace: other suites share the API server.
  return spawnSwitchboard(id, [...replicaFlags(controlPlaneInfo().kubeconfig, namespace, id, timings), `--endpoint-controllers-namespace=${namespace}`]);
}

async function holder(client: KubeClient, namespace: string): Promise<string | undefined> {
  const lease = await client.getOrUndefined<Lease>(Leases, 'switchboard-controller', namespace);
  return lease?.spec?.holderIdentity;
}

describe('leader election between two controller processes', () => {
  let client: KubeClient;
  let ns: string;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    requireBuiltSwitchboard();
    client = testClient();
    ns = await createNamespace(client, 'le');
  });
  afterEach(() => {
    for (const r of replicas.splice(0)) r.child.kill('SIGKILL');
  });
  afterAll(async () => {
    await deleteNamespace(client, ns);
    client.close();
  });

  async function electOne(): Promise<{ leader: Replica; follower: Replica }> {
    replicas.push(startReplica('replica-a', ns), startReplica('replica-b', ns));
    const id = await eventually(() => holder(client, ns).then((h) => h ?? false), 30_000);
    const leader = replicas.find((r) => r.id === id)!;
    const follower = replicas.find((r) => r.id !== id)!;
    await eventually(() => leads(leader), 10_000);
    // Several renew periods later the follower still has not started anything.
    await new Promise((r) => setTimeout(r, 3 * RETRY_MS));
    expect(leads(follower)).toBe(false);
    expect(await holder(client, ns)).toBe(leader.id);
    return { leader, follower };
  }

  it('elects exactly one, and the other takes over after the leader is killed', async () => {
    const { leader, follower } = await electOne();
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    await eventually(() => leads(follower), 30_000, 50);
    const takeoverMs = Date.now() - killedAt;
    expect(await holder(client, ns)).toBe(follower.id);
    process.stderr.write(`[leader election] takeover after SIGKILL: ${takeoverMs} ms (lease ${LEASE_MS} ms, retry ${RETRY_MS} ms)\n`);
    // The follower may first see the last renewal up to one jittered retry late, and polls with
    // jitter after expiry: the lease duration plus two jittered retry periods bounds the takeover.
    expect(takeoverMs).toBeGreaterThanOrEqual(LEASE_MS - 2 * 2.2 * RETRY_MS);
    expect(takeoverMs).toBeLessThanOrEqual(LEASE_MS + 2 * 2.2 * RETRY_MS + 500);
  });

  it('exits non-zero as soon as it loses the lease, though its webhook would serve until SIGTERM', async () => {
    // The pool webhook runs on every replica, leader or not; served here without registering it with the API server.
    const replica = spawnSwitchboard('replica-w', [
      ...replicaFlags(controlPlaneInfo().kubeconfig, ns, 'replica-w', { leaseDuration: `${LEASE_MS}ms`, renewDeadline: '3s', retryPeriod: `${RETRY_MS}ms` }),
      `--endpoint-controllers-namespace=${ns}`,
      '--leader-elect-lease-name=taken-away', // its own Lease: the one it loses stays taken
      '--pool-webhook-bind-address=127.0.0.1:0',
    ]);
    replicas.push(replica);
    await eventually(() => leads(replica) && replica.output.some((l) => l.includes('pool-validation-webhook","msg":"admission webhook serving"')), 30_000);
    const lease = await client.get<Lease>(Leases, 'taken-away', ns);
    const stolenAt = Date.now();
    await client.replace<Lease>(Leases, { ...lease, spec: { ...lease.spec, holderIdentity: 'thief', leaseDurationSeconds: 3600 } });
    const code = await Promise.race([
      new Promise<number | null>((resolve) => replica.child.once('exit', (c) => resolve(c))),
      new Promise<string>((resolve) => setTimeout(() => resolve('still running after 10 s'), 10_000)),
    ]);
    process.stderr.write(`[leader election] lease taken away: exited with ${String(code)} after ${Date.now() - stolenAt} ms\n`);
    expect(code).toBe(1);
  });

  it('hands over at once when the leader shuts down gracefully (SIGTERM releases the lease)', async () => {
    const { leader, follower } = await electOne();
    const stoppedAt = Date.now();
    leader.child.kill('SIGTERM');
    await eventually(() => leads(follower), 30_000, 50);
    const takeoverMs = Date.now() - stoppedAt;
    process.stderr.write(`[leader election] takeover after SIGTERM: ${takeoverMs} ms\n`);
    expect(takeoverMs).toBeLessThan(LEASE_MS);
    expect(leader.output.some((l) => l.includes('"released lease"'))).toBe(true);
  });
});

describe('leader election between in-process electors', () => {
  let client: KubeClient;
  let ns: string;

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'le2');
  });
  afterAll(async () => {
    await deleteNamespace(client, ns);
    client.close();
  });

  it('never has two leaders at once among five candidates, across a release', async () => {
    let leaders = 0;
    let peak = 0;
    const stops = Array.from({ length: 5 }, () => new AbortController());
    const runs = stops.map((stop, i) =>
      new LeaderElector({
        client,
        namespace: ns,
        name: 'race',
        identity: `c${i}`,
        leaseDurationMs: 3000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 200,
        log: silentLogger,
        onStartedLeading: async (signal) => {
          peak = Math.max(peak, ++leaders);
          await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
          leaders--;
        },
      }).run(stop.signal),
    );
    const first = await eventually(() => holder2(client, ns), 10_000);
    stops[Number(first.slice(1))].abort(); // the leader leaves gracefully; another must take over
    await eventually(async () => ((await holder2(client, ns)) || '') !== first && (await holder2(client, ns)) !== false, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    for (const s of stops) s.abort();
    await Promise.all(runs);
    expect(peak).toBe(1);
  });
});

describe('a leader whose connection to the API server goes silent', () => {
  let client: KubeClient;
  let ns: string;
  let proxy: StallingProxy;

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'le3');
    proxy = await StallingProxy.start(apiServerPort(controlPlaneInfo().kubeconfig));
  });
  afterAll(async () => {
    await proxy.close();
    await deleteNamespace(client, ns);
    client.close();
  });

  const LEASE = 3000;
  const RENEW_DEADLINE = 2000;
  const RETRY = 300;

  function elector(c: KubeClient, lease: string, identity: string, onStarted: (signal: AbortSignal) => Promise<void>, now?: () => number): LeaderElector {
    return new LeaderElector({
      client: c,
      namespace: ns,
      name: lease,
      identity,
      leaseDurationMs: LEASE,
      renewDeadlineMs: RENEW_DEADLINE,
      retryPeriodMs: RETRY,
      log: silentLogger,
      onStartedLeading: onStarted,
      now,
    });
  }

  const untilAborted = (signal: AbortSignal) => new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));

  it('stops within its renew deadline, before a follower can take over', async () => {
    const proxied = clientThrough(proxy, controlPlaneInfo().kubeconfig);
    const stop = new AbortController();
    let leaderStoppedAt = 0;
    let followerStartedAt = 0;
    const leaderRun = elector(proxied, 'silent', 'stall-a', async (signal) => {
      await untilAborted(signal);
      leaderStoppedAt = Date.now();
    }).run(stop.signal);
    await eventually(async () => (await client.getOrUndefined<Lease>(Leases, 'silent', ns))?.spec?.holderIdentity === 'stall-a', 10_000, 50);
    const followerRun = elector(client, 'silent', 'stall-b', async (signal) => {
      followerStartedAt = Date.now();
      await untilAborted(signal);
    }).run(stop.signal);
    await new Promise((r) => setTimeout(r, 4 * RETRY)); // the follower has seen the leader renew

    const stalledAt = Date.now();
    proxy.stall(); // the leader's requests now hang: no answer, no error, no close
    const leaderReturned = await Promise.race([leaderRun.then(() => Date.now()), new Promise<number>((r) => setTimeout(() => r(0), 10_000))]);
    await eventually(() => followerStartedAt > 0, 15_000, 20);
    stop.abort();
    await followerRun;
    proxied.close();
    proxy.resume();

    process.stderr.write(
      `[leader election] silent connection: leader stopped ${leaderStoppedAt - stalledAt} ms after the stall, follower took over ${followerStartedAt - stalledAt} ms after it (renew deadline ${RENEW_DEADLINE} ms, lease ${LEASE} ms)\n`,
    );
    // The last successful renewal started before the stall; the fence trips renewDeadline after that start.
    expect(leaderStoppedAt).toBeGreaterThan(0);
    expect(leaderStoppedAt - stalledAt).toBeLessThanOrEqual(RENEW_DEADLINE + 500); // timer and scheduling slack
    expect(leaderReturned).toBeGreaterThan(0);
    expect(leaderStoppedAt).toBeLessThan(followerStartedAt);
  });

  it('may act, and renew, only until its renew deadline passes on the clock, before any timer has run', async () => {
    let skewMs = 0;
    let steppedDown = false;
    const stop = new AbortController();
    const leader = elector(client, 'may-act', 'may-act', (signal) => untilAborted(signal).then(() => void (steppedDown = true)), () => Date.now() + skewMs);
    const run = leader.run(stop.signal);
    await eventually(() => leader.mayAct(), 10_000, 20);
    // Synchronously, as a process waking from a freeze would read it: no renewal and no step-down timer between.
    const skewedAt = Date.now();
    skewMs = RENEW_DEADLINE + 1;
    expect(leader.mayAct()).toBe(false);
    // Its next renewal rounds send nothing (one would write a renewTime from the skewed clock), so its own step-down
    // timer ends the term.
    await eventually(() => steppedDown, 2 * RENEW_DEADLINE, 20);
    const renewTime = (await client.get<Lease>(Leases, 'may-act', ns)).spec?.renewTime;
    expect(Date.parse(renewTime ?? '') - skewedAt).toBeLessThan(RENEW_DEADLINE);
    stop.abort();
    await run;
  });

  it('fails its health check when it believes it leads but has not renewed for lease + tolerance', async () => {
    let skewMs = 0;
    const stop = new AbortController();
    // Leader work that ignores the stop: a graceful stop waits for it forever, so the elector is wedged as leader.
    const wedged = elector(client, 'wedged', 'wedged', () => new Promise<void>(() => {}), () => Date.now() + skewMs);
    void wedged.run(stop.signal);
    await eventually(() => wedged.isLeader, 10_000, 50);
    expect(wedged.healthy()).toBe(true);
    stop.abort();
    await new Promise((r) => setTimeout(r, 2 * RETRY));
    expect(wedged.isLeader).toBe(true);
    skewMs = LEASE + LEADER_HEALTHZ_TOLERANCE_MS - 1000;
    expect(wedged.healthy()).toBe(true);
    skewMs = LEASE + LEADER_HEALTHZ_TOLERANCE_MS + 1000;
    expect(wedged.healthy()).toBe(false);
  });
});

async function holder2(client: KubeClient, namespace: string): Promise<string | false> {
  const lease = await client.getOrUndefined<Lease>(Leases, 'race', namespace);
  return lease?.spec?.holderIdentity ?? false;
}
