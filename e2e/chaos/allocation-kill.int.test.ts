// Kill -9 during allocation. Two `switchboard controller` replicas serve the allocation webhooks behind a balancer
// (as a Service would); in each trial a batch of NodePort Services is created concurrently and one replica, chosen
// at random, is SIGKILLed while a seeded number of creates are under way, then replaced as a Deployment would.
// After every trial: no value held twice, no claim unheld past its deadline (the grace period for a reservation,
// the API server's request bound for a confirmed claim, counted on from the current leader's start if that is later,
// plus a little processing), a value freed by deleting its holder
// is given at once to a new Service that asks for it; at the end, claims and held values agree exactly. On a control plane of its own: the webhook sees every Service.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Services } from '../../api/resources.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { API_SERVER_REQUEST_BOUND_MS } from '../../controllers/serviceallocation/claim-reconciler.js';
import type { Service } from '../../api/wire.js';
import { eventually } from '../jest/cluster.js';
import { type ReplicaSet, leadsNow } from '../jest/replica-set.js';
import { audit, bounded, claimsSettle } from '../jest/service-allocation.js';
import { ENDPOINT_CONTROLLERS_OFF, type SwitchboardProcess } from '../jest/switchboard-process.js';
import { prng } from '../../testing/prng.js';
import { type ChaosCluster, SYSTEM_NS, startChaosCluster } from './cluster.js';
import { CHAOS_SEED, trials } from './trials.js';

const WORKLOAD_NS = 'kill';
const GRACE_MS = 2000;
const TRIALS = trials(20, 1000);
/** A webhook call that failed in transport (the connection to a killed replica), not a decision of ours. */
const CALL_TO_KILLED_REPLICA = /failed calling webhook .*(EOF|connection reset by peer|broken pipe)/;
const BATCH = 12;
const IN_FLIGHT = 6;
/** Services per trial deleted and at once asked for again, by value, by a Service of another name. */
const REUSED = 3;
const log = (line: string) => process.stderr.write(`[allocation-kill] ${line}\n`);

/** How long a confirmed claim whose Service never came is kept: the API server's request bound, and room (cmd/jobs/allocators.ts). */
const COMMIT_WINDOW_MS = API_SERVER_REQUEST_BOUND_MS + 6_000;

/**
 * Slack for a claim's deadline, counted from the deadline or from when the current leader started leading, whichever
 * is later: nobody frees claims while nobody leads, and a new leader works through what it finds.
 */
const LEADER_SLACK_MS = 10_000;
/** The final wait for claims to match Services: the longest deadline and a leader change. */
const SETTLE_MS = COMMIT_WINDOW_MS + 15_000;

interface UnheldClaim {
  service: string;
  createdMs: number;
  confirmed: boolean;
}

/** What the test knows of the Services it made: when each was stored (its create answered) and deleted. */
interface ServiceTimes {
  storedAt: Map<string, number>;
  deletedAt: Map<string, number>;
}

/** When a replica first wrote a log line containing `text`, or Infinity. */
function loggedAt(replica: SwitchboardProcess, text: string, last = false): number {
  const line = last ? replica.output.findLast((l) => l.includes(text)) : replica.output.find((l) => l.includes(text));
  return line ? Date.parse((JSON.parse(line) as { ts: string }).ts) : Infinity;
}

/** When a replica's informers had synced: from then on its watch sees every Service stored. */
const syncedAt = (replica: SwitchboardProcess): number => loggedAt(replica, '"caches synced"');

/** When the replica, which leads now, started leading. */
const leadingSince = (replica: SwitchboardProcess): number => loggedAt(replica, '"starting controllers"', true);

/**
 * Claims no Service holds past their deadline. A deleted Service's claims: a leader change after the delete if the
 * leader's watch saw the Service stored, else as for a failed create. A failed create's: a reserved claim the grace
 * period after it was made, a confirmed one (the create may still be in flight) the commit window after. Every
 * unheld claim is recorded in `seen`.
 */
async function overdueClaims(client: KubeClient, leader: SwitchboardProcess, times: ServiceTimes, seen: Map<string, UnheldClaim>): Promise<string[]> {
  const [services, claims] = await Promise.all([client.listAll<Service>(Services), client.listAll<ServiceClaim>(ServiceClaims)]);
  const { held } = audit(services.items);
  const now = Date.now();
  return claims.items.flatMap((claim) => {
    const name = claim.metadata.name ?? '';
    if (held.has(name)) return [];
    const unheld = { service: claim.spec.service.name, createdMs: Date.parse(claim.metadata.creationTimestamp ?? ''), confirmed: claim.spec.service.uid !== '' };
    seen.set(name, unheld);
    const deleted = times.deletedAt.get(unheld.service);
    const leaderSawIt = (times.storedAt.get(unheld.service) ?? -Infinity) > syncedAt(leader);
    const due = deleted !== undefined && leaderSawIt ? deleted : unheld.createdMs + (unheld.confirmed ? COMMIT_WINDOW_MS : GRACE_MS);
    const deadline = Math.max(due, leadingSince(leader)) + LEADER_SLACK_MS;
    return now > deadline ? [`${name} for ${claim.spec.service.namespace}/${unheld.service} uid "${claim.spec.service.uid}", made ${now - unheld.createdMs} ms ago, ${leader.id} leading for ${now - leadingSince(leader)} ms`] : [];
  });
}

const nodePortService = (name: string, values: { clusterIP?: string; nodePort?: number } = {}): Service => ({
  metadata: { name, namespace: WORKLOAD_NS },
  spec: { type: 'NodePort', clusterIP: values.clusterIP, ports: [{ port: 80, nodePort: values.nodePort }] },
});

describe('SIGKILL of a webhook replica during concurrent allocation', () => {
  let client: KubeClient;
  let chaos: ChaosCluster | undefined;
  let replicas: ReplicaSet;

  /**
   * The replacement is up: both replicas serve the webhook, so a kill never leaves the API server without one, and
   * one leads (kills faster than takeovers would leave the claims of deleted Services to wait).
   */
  const healthy = () =>
    eventually(async () => {
      const live = replicas.live();
      const serving = live.filter((r) => r.output.some((l) => l.includes('"admission webhook serving"'))).map((r) => r.id);
      if (live.length !== 2 || serving.length !== 2) {
        const stuck = live.find((r) => !serving.includes(r.id));
        throw new Error(`live: ${live.map((r) => r.id).join(', ')}; serving: ${serving.join(', ')}${stuck ? `; ${stuck.id} last wrote:\n${stuck.output.slice(-15).join('\n')}` : ''}`);
      }
      const leader = await replicas.singleLeader(client, SYSTEM_NS);
      if (leader !== true) throw new Error(leader);
      return true;
    }, 60_000);

  beforeAll(async () => {
    chaos = await startChaosCluster({
      name: 'alloc',
      log,
      namespaces: [WORKLOAD_NS],
      replicas: 2,
      graceMs: GRACE_MS,
      extraFlags: [...ENDPOINT_CONTROLLERS_OFF, '--load-balancer-controller=false'],
      // Short leases: half the kills hit the leader, and each takeover waits out the lease.
      timings: { leaseDuration: '2s', renewDeadline: '1500ms', retryPeriod: '250ms' },
    });
    ({ client, replicas } = chaos);
    await claimsSettle(client, 60_000); // the `kubernetes` Service's ClusterIP, adopted
  }, 180_000);

  afterAll(() => chaos?.stop(), 60_000);

  it(`leaves no duplicate, no leak and no refused reuse over ${TRIALS} kills`, async () => {
    const random = prng(CHAOS_SEED);
    const counts = { creates: 0, created: 0, failedByKill: 0, killedLeader: 0, reuses: 0, reusesRetried: 0, refusedReuses: 0, duplicates: 0, leaks: 0 };
    const failures = new Map<string, number>();
    const refusals: string[] = [];
    const unheld = new Map<string, UnheldClaim>();
    const failedCreates = new Set<string>();
    const times: ServiceTimes = { storedAt: new Map(), deletedAt: new Map() };
    /** No claim outlives its deadline; checked with a leader in place, as the trials go on (waiting would be slow). */
    const expectNoneOverdue = async (trial: number) => {
      const overdue = await overdueClaims(client, replicas.live().find(leadsNow)!, times, unheld);
      counts.leaks += overdue.length;
      expect({ trial, overdue }).toEqual({ trial, overdue: [] });
    };

    for (let trial = 0; trial < TRIALS; trial++) {
      await healthy();
      await expectNoneOverdue(trial - 1);
      const live = replicas.live();
      const victim = live[Math.floor(random() * live.length)]!;
      const killAtCreate = Math.floor(random() * BATCH);
      const killDelayMs = Math.floor(random() * 150);
      if (leadsNow(victim)) counts.killedLeader++;
      let killed: Promise<void> = Promise.resolve();
      const results = await bounded(BATCH, IN_FLIGHT, (i) => {
        if (i === killAtCreate) killed = new Promise((r) => setTimeout(r, killDelayMs)).then(() => void victim.child.kill('SIGKILL'));
        return client.create<Service>(Services, nodePortService(`t${trial}-${i}`)).then((made) => {
          times.storedAt.set(`t${trial}-${i}`, Date.now());
          return made;
        });
      });
      await killed;
      counts.creates += BATCH;
      const created = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      counts.created += created.length;
      for (const [i, r] of results.entries()) {
        if (r.status !== 'rejected') continue;
        counts.failedByKill++;
        failedCreates.add(`t${trial}-${i}`);
        // The API server's call to the killed replica failed (failurePolicy Fail); the reason, for the log.
        const reason = String(r.reason).replace(/t\d+-\d+/g, '<name>').replace(/\d+\.\d+\.\d+\.\d+:\d+/g, '<addr>').slice(0, 160);
        failures.set(reason, (failures.get(reason) ?? 0) + 1);
      }

      // Values freed by deleting their holder go at once to a new Service that asks for them.
      for (const [j, holder] of created.slice(0, REUSED).entries()) {
        const values = { clusterIP: holder.spec?.clusterIP, nodePort: holder.spec?.ports?.[0]?.nodePort };
        await client.delete(Services, holder.metadata!.name!, { namespace: WORKLOAD_NS });
        times.deletedAt.set(holder.metadata!.name!, Date.now());
        counts.reuses++;
        const reuse = () => client.create(Services, nodePortService(`t${trial}-reuse-${j}`, values));
        // The API server may send this create on a pooled connection to the replica just killed (an EOF, as with a
        // dying webhook pod): that is the kill failing a request, not a refusal of the value, and a user retries it.
        await reuse()
          .catch(async (err: unknown) => {
            if (!CALL_TO_KILLED_REPLICA.test(String(err))) throw err;
            counts.reusesRetried++;
            return reuse();
          })
          .then(
            () => void times.storedAt.set(`t${trial}-reuse-${j}`, Date.now()),
            (err: unknown) => {
              counts.refusedReuses++;
              refusals.push(`trial ${trial}: ${values.clusterIP}/${values.nodePort}: ${String(err).slice(0, 300)}`);
            },
          );
      }

      const services = (await client.listAll<Service>(Services)).items;
      const { duplicates } = audit(services);
      counts.duplicates += duplicates.length;
      expect({ trial, duplicates }).toEqual({ trial, duplicates: [] });

      log(`trial ${trial}: killed ${victim.id} at create ${killAtCreate} + ${killDelayMs} ms; ${created.length}/${BATCH} created`);

      // Keep the ranges from filling over a thousand trials.
      const trialServices = services.filter((s) => s.metadata?.namespace === WORKLOAD_NS).map((s) => s.metadata!.name!);
      await bounded(trialServices.length, 10, (i) => client.delete(Services, trialServices[i]!, { namespace: WORKLOAD_NS }));
      for (const name of trialServices) times.deletedAt.set(name, Date.now());
    }
    await healthy();
    await expectNoneOverdue(TRIALS - 1);
    const settleStart = Date.now();
    await claimsSettle(client, SETTLE_MS, 200);
    // Claims that failed creates left behind (the others are those of Services the test deleted).
    const leftByFailures = [...unheld.values()].filter((claim) => failedCreates.has(claim.service));
    const confirmedUnstored = leftByFailures.filter((claim) => claim.confirmed).length;

    log(
      `seed ${CHAOS_SEED}: ${TRIALS} trials, ${replicas.restarts} replicas replaced (${counts.killedLeader} kills of the leader); ` +
        `${counts.creates} creates, ${counts.created} created, ${counts.failedByKill} failed with the killed replica; ` +
        `${counts.reuses} freed values asked for again (${counts.reusesRetried} sent again after the killed replica's connection failed them), ${counts.refusedReuses} refused; duplicates ${counts.duplicates}; overdue claims ${counts.leaks}; ` +
        `failed creates left ${leftByFailures.length} claims, ${confirmedUnstored} of them confirmed for a create the killed replica never answered ` +
        `(kept for the API server's request bound); claims matched Services ${Date.now() - settleStart} ms after the last trial`,
    );
    for (const [reason, n] of failures) log(`  ${n}× ${reason}`);
    expect(refusals).toEqual([]);
  }, TRIALS * 60_000);
});
