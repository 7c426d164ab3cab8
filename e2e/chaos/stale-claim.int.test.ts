// A confirmed claim that nobody bound, whose Service was deleted while no replica led, is freed by the next leader as
// soon as the API server's request bound has passed since the claim was last written, on the API server's clock.
// Before, each replica timed that wait from when IT first saw the claim, so replicas replaced faster than the wait
// (one SIGKILL every few seconds in the kill -9 trials) kept such a claim, and its value, forever.
//
// How: the test holds the controllers' Lease itself, so the one replica serves the webhooks (and confirms claims)
// but never leads (nothing binds or frees); it creates and deletes a Service, waits out the window, replaces the
// replica (the new one has never seen the Service), then lets go of the Lease.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Leases, Services } from '../../api/resources.js';
import type { Lease, Service } from '../../api/wire.js';
import { microTime } from '../../controllers/runtime/leader-election.js';
import { API_SERVER_REQUEST_BOUND_MS } from '../../controllers/serviceallocation/claim-reconciler.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { eventually } from '../jest/cluster.js';
import { leadsNow, type ReplicaSet } from '../jest/replica-set.js';
import { ENDPOINT_CONTROLLERS_OFF, exited, stopSwitchboard } from '../jest/switchboard-process.js';
import { type ChaosCluster, SYSTEM_NS, startChaosCluster } from './cluster.js';

const WORKLOAD_NS = 'stale';
const LEASE = 'switchboard-controller';
/** cmd/jobs/allocators.ts: the request bound and room. */
const COMMIT_WINDOW_MS = API_SERVER_REQUEST_BOUND_MS + 6_000;
const log = (line: string) => process.stderr.write(`[stale-claim] ${line}\n`);

describe('a claim left by a Service deleted while nobody led', () => {
  let chaos: ChaosCluster | undefined;
  let client: KubeClient;
  let replicas: ReplicaSet;

  beforeAll(async () => {
    chaos = await startChaosCluster({ name: 'stale', log, namespaces: [WORKLOAD_NS], replicas: 1, graceMs: 2000, extraFlags: [...ENDPOINT_CONTROLLERS_OFF, '--load-balancer-controller=false'] });
    ({ client, replicas } = chaos);
  }, 180_000);

  afterAll(() => chaos?.stop(), 60_000);

  /** Takes the Lease for an hour: the replica loses it and exits, and its replacement only follows. */
  const holdLease = async () => {
    const lease = await client.get<Lease>(Leases, LEASE, SYSTEM_NS);
    const now = microTime(Date.now());
    await client.replace(Leases, { ...lease, spec: { ...lease.spec, holderIdentity: 'the-test', leaseDurationSeconds: 3600, acquireTime: now, renewTime: now } });
  };

  const serving = () =>
    eventually(() => {
      const live = replicas.live();
      return live.length === 1 && live[0]!.output.some((l) => l.includes('"admission webhook serving"')) ? live[0]! : false;
    }, 60_000);

  it('is freed at once by a new leader when the window has passed on the API server’s clock', async () => {
    const first = replicas.live()[0]!;
    await holdLease();
    await eventually(() => exited(first), 30_000); // it lost the Lease
    expect(leadsNow(await serving())).toBe(false);

    const made = await client.create<Service>(Services, { metadata: { name: 'web', namespace: WORKLOAD_NS }, spec: { type: 'NodePort', ports: [{ port: 80 }] } });
    const mine = (claims: ServiceClaim[]) => claims.filter((c) => c.spec.service.uid === made.metadata?.uid);
    const claims = mine((await client.listAll<ServiceClaim>(ServiceClaims)).items);
    expect(claims.map((c) => c.status?.phase)).toEqual([undefined, undefined]); // ClusterIP and nodePort, confirmed, never bound
    await client.delete(Services, 'web', { namespace: WORKLOAD_NS });

    const lastWrite = Date.now();
    await new Promise((r) => setTimeout(r, COMMIT_WINDOW_MS + 2_000));
    const old = replicas.live()[0]!;
    await stopSwitchboard(old, 'SIGKILL');
    const next = await serving();
    expect(exited(old) && next !== old).toBe(true);

    await client.delete(Leases, LEASE, { namespace: SYSTEM_NS });
    await eventually(() => leadsNow(next), 30_000);
    const ledAt = Date.now();
    // Within a few seconds of leading; before, it waited a whole window from its own start.
    await eventually(async () => mine((await client.listAll<ServiceClaim>(ServiceClaims)).items).length === 0, 10_000, 200);
    log(`claims written ${Math.round((ledAt - lastWrite) / 1000)} s before the new leader took over were freed ${Date.now() - ledAt} ms after it did`);
  }, 180_000);
});
