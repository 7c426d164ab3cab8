// Kill -9 during allocation. Two `switchboard controller` replicas serve the allocation webhooks behind a balancer
// (as a Service would); in each trial a batch of NodePort Services is created concurrently and one replica, chosen
// at random, is SIGKILLed while a seeded number of creates are under way, then replaced as a Deployment would.
// After every trial: no value held twice, no leak once the claim grace period has passed (every claim names a
// Service that holds its value, and every held value is claimed), and a value freed by deleting its holder is given
// at once to a new Service that asks for it. On a control plane of its own: the webhook sees every Service.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { KubeClient } from '../../controllers/runtime/client.js';
import { Namespaces, Services } from '../../api/resources.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { API_SERVER_REQUEST_BOUND_MS } from '../../controllers/serviceallocation/claim-reconciler.js';
import type { Service } from '../../api/wire.js';
import { eventually } from '../jest/cluster.js';
import { ReplicaSet } from '../jest/replica-set.js';
import { Balancer, allocationFlags, audit, bounded, claimsSettle } from '../jest/service-allocation.js';
import { leads, replicaFlags, requireBuiltSwitchboard, spawnSwitchboard } from '../jest/switchboard-process.js';
import { prng } from '../../testing/prng.js';
import { CHAOS_SEED, spread, trials } from './trials.js';

const SYSTEM_NS = 'switchboard-system';
const WORKLOAD_NS = 'kill';
const GRACE_MS = 2000;
const TRIALS = trials(20, 1000);
const BATCH = 12;
const IN_FLIGHT = 6;
/** Services per trial deleted and at once asked for again, by value, by a Service of another name. */
const REUSED = 3;
const log = (line: string) => process.stderr.write(`[allocation-kill] ${line}\n`);

/** How long a confirmed claim whose Service never came is kept: the API server's request bound, and room (cmd/jobs/allocators.ts). */
const COMMIT_WINDOW_MS = API_SERVER_REQUEST_BOUND_MS + 6_000;

/** Claims no Service holds, with the uid they are confirmed for and their phase. */
async function unheldClaims(client: KubeClient): Promise<string[]> {
  const [services, claims] = await Promise.all([client.listAll<Service>(Services), client.listAll<ServiceClaim>(ServiceClaims)]);
  const { held } = audit(services.items);
  return claims.items
    .filter((c) => !held.has(c.metadata.name ?? ''))
    .map((c) => `${c.metadata.name} for ${c.spec.service.namespace}/${c.spec.service.name} uid "${c.spec.service.uid}" phase ${c.status?.phase ?? '-'}`);
}

const nodePortService = (name: string, values: { clusterIP?: string; nodePort?: number } = {}): Service => ({
  metadata: { name, namespace: WORKLOAD_NS },
  spec: { type: 'NodePort', clusterIP: values.clusterIP, ports: [{ port: 80, nodePort: values.nodePort }] },
});

describe('SIGKILL of a webhook replica during concurrent allocation', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  let replicas: ReplicaSet;
  const balancer = new Balancer();

  /** Both replicas serve the webhook, so a kill never leaves the API server without one, and one leads. */
  const twoServing = () =>
    eventually(async () => {
      const live = replicas.live();
      if (live.length !== 2 || !live.every((r) => r.output.some((l) => l.includes('"admission webhook serving"')))) return false;
      const leader = await replicas.singleLeader(client, SYSTEM_NS);
      if (leader !== true) throw new Error(leader);
      return true;
    }, 60_000);

  beforeAll(async () => {
    requireBuiltSwitchboard();
    cp = await new LocalControlPlane({ kubeControllerManager: false, log }).start();
    client = KubeClient.fromFile(cp.kubeconfig, 'allocation-kill-test');
    for (const name of [SYSTEM_NS, WORKLOAD_NS]) await client.create(Namespaces, { metadata: { name } });
    await balancer.listen();
    replicas = new ReplicaSet({
      name: 'alloc',
      replicas: 2,
      spawn: (id, webhookPort) =>
        spawnSwitchboard(id, [
          ...replicaFlags(cp.kubeconfig, SYSTEM_NS, id),
          '--endpointslice-controller=false',
          '--endpoints-controller=false',
          '--endpointslice-mirroring-controller=false',
          '--load-balancer-controller=false',
          ...allocationFlags(balancer, webhookPort, GRACE_MS),
        ]),
      onChange: (live) => balancer.route(live.map((r) => r.webhookPort)),
    });
    await replicas.start();
    await twoServing();
    await eventually(() => replicas.processes.some((r) => r.output.some((l) => l.includes('"webhook configurations written"'))), 60_000);
    await claimsSettle(client, 60_000); // the `kubernetes` Service's ClusterIP, adopted
  }, 180_000);

  afterAll(async () => {
    const { writeFileSync } = await import('node:fs');
    for (const r of replicas?.processes ?? []) writeFileSync(`/tmp/wt-i/${r.id}.log`, r.output.join('\n'));
    await replicas?.stop();
    await balancer.close();
    client?.close();
    await cp?.stop();
  }, 60_000);

  it(`leaves no duplicate, no leak and no refused reuse over ${TRIALS} kills`, async () => {
    const random = prng(CHAOS_SEED);
    const settleMs: number[] = [];
    const counts = { creates: 0, created: 0, failedByKill: 0, killedLeader: 0, reuses: 0, refusedReuses: 0, duplicates: 0, leaks: 0 };
    const failures = new Map<string, number>();
    const refusals: string[] = [];
    const slowSettles: Record<number, string[]> = {};

    for (let trial = 0; trial < TRIALS; trial++) {
      await twoServing();
      const live = replicas.live();
      const victim = live[Math.floor(random() * live.length)]!;
      const killAtCreate = Math.floor(random() * BATCH);
      const killDelayMs = Math.floor(random() * 150);
      if (leads(victim)) counts.killedLeader++;
      let killed: Promise<void> = Promise.resolve();
      const results = await bounded(BATCH, IN_FLIGHT, (i) => {
        if (i === killAtCreate) killed = new Promise((r) => setTimeout(r, killDelayMs)).then(() => void victim.child.kill('SIGKILL'));
        return client.create<Service>(Services, nodePortService(`t${trial}-${i}`));
      });
      await killed;
      counts.creates += BATCH;
      const created = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      counts.created += created.length;
      for (const r of results) {
        if (r.status !== 'rejected') continue;
        counts.failedByKill++;
        // The API server's call to the killed replica failed (failurePolicy Fail); the reason, for the log.
        const reason = String(r.reason).replace(/t\d+-\d+/g, '<name>').replace(/\d+\.\d+\.\d+\.\d+:\d+/g, '<addr>').slice(0, 160);
        failures.set(reason, (failures.get(reason) ?? 0) + 1);
      }

      // Values freed by deleting their holder go at once to a new Service that asks for them.
      for (const [j, holder] of created.slice(0, REUSED).entries()) {
        const values = { clusterIP: holder.spec?.clusterIP, nodePort: holder.spec?.ports?.[0]?.nodePort };
        await client.delete(Services, holder.metadata!.name!, { namespace: WORKLOAD_NS });
        counts.reuses++;
        await client.create(Services, nodePortService(`t${trial}-reuse-${j}`, values)).catch((err: unknown) => {
          counts.refusedReuses++;
          refusals.push(`trial ${trial}: ${values.clusterIP}/${values.nodePort}: ${String(err).slice(0, 300)}`);
        });
      }

      const services = (await client.listAll<Service>(Services)).items;
      const { duplicates } = audit(services);
      counts.duplicates += duplicates.length;
      expect({ trial, duplicates }).toEqual({ trial, duplicates: [] });

      // Claims the killed replica reserved for creates that never completed are freed after the grace period; one
      // it had already confirmed for a create it then never answered waits out the API server's request bound.
      const settleStart = Date.now();
      const slow = setTimeout(() => void unheldClaims(client).then((claims) => (slowSettles[trial] = claims)), GRACE_MS + 10_000);
      await claimsSettle(client, COMMIT_WINDOW_MS + GRACE_MS + 15_000, 100).catch((err: unknown) => {
        counts.leaks++;
        throw new Error(`trial ${trial} (killed ${victim.id}): ${String(err)}`);
      }).finally(() => clearTimeout(slow));
      settleMs.push(Date.now() - settleStart);
      log(`trial ${trial}: killed ${victim.id} at create ${killAtCreate} + ${killDelayMs} ms; ${created.length}/${BATCH} created; claims matched ${settleMs[trial]} ms after`);

      // Keep the ranges from filling over a thousand trials.
      const trialServices = services.filter((s) => s.metadata?.namespace === WORKLOAD_NS).map((s) => s.metadata!.name!);
      await bounded(trialServices.length, 10, (i) => client.delete(Services, trialServices[i]!, { namespace: WORKLOAD_NS }));
    }
    await claimsSettle(client, GRACE_MS + 30_000, 100);

    log(
      `seed ${CHAOS_SEED}: ${TRIALS} trials, ${replicas.restarts} replicas replaced (${counts.killedLeader} kills of the leader); ` +
        `${counts.creates} creates, ${counts.created} created, ${counts.failedByKill} failed with the killed replica; ` +
        `${counts.reuses} freed values asked for again, ${counts.refusedReuses} refused; duplicates ${counts.duplicates}; leaks ${counts.leaks}; ` +
        `claims matched Services ${spread(settleMs)} after each trial`,
    );
    for (const [reason, n] of failures) log(`  ${n}× ${reason}`);
    for (const [trial, claims] of Object.entries(slowSettles)) log(`  trial ${trial}: claims still unheld ${GRACE_MS + 10_000} ms after: ${claims.join('; ')}`);
    expect(refusals).toEqual([]);
  }, TRIALS * 60_000);
});
