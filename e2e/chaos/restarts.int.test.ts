// API server and etcd restarts. On a control plane of its own, two `switchboard controller` replicas (endpoint
// controllers, allocation webhooks behind a balancer, LoadBalancer allocation from a pool) run while a seeded churn
// flips pod readiness, creates and deletes pods, and creates, deletes and retypes Services (ClusterIP, NodePort,
// LoadBalancer). kube-apiserver and etcd are restarted in the middle of it; a replica that exits (a leader that could
// not renew) is replaced, as a Deployment would. After each restart the churn pauses and, within a bound: exactly
// one leader, every EndpointSlice and Endpoints object exactly what the pods imply, claims and held values in exact
// agreement, every LoadBalancer Service holding one pool address of its own and no other Service any; no IP or
// port is ever held twice. Recovery is timed from the API server being ready again to all of that.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { EndpointSlices, Endpoints as EndpointsResource, Nodes, Pods, Services } from '../../api/resources.js';
import type { EndpointSlice, Endpoints, Node, Pod, Service } from '../../api/wire.js';
import { IPAddressPools } from '../../crds/ipaddresspool.js';
import { serviceIPRange, rangeContainsIP } from '../../allocators/service/ip-range.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_TOPOLOGY_ZONE } from '../../controllers/endpointutil/constants.js';
import { createNode, createPod, forceDeletePod, setPodStatus, sliceSnapshot } from '../../testing/endpoint-cluster.js';
import { prng } from '../../testing/prng.js';
import { eventually } from '../jest/cluster.js';
import { type ReplicaSet, leadsNow } from '../jest/replica-set.js';
import { audit, claimsMatchServices } from '../jest/service-allocation.js';
import { type ChaosCluster, SYSTEM_NS, startChaosCluster } from './cluster.js';
import { CHAOS_SEED, spread, trials } from './trials.js';

const WORKLOAD_NS = 'churn';
const GRACE_MS = 2000;
const POOL_CIDR = '192.0.2.0/26';
const API_SERVER_RESTARTS = trials(3, 10);
const ETCD_RESTARTS = trials(1, 3);
/** Everything must be exact this long after the API server is ready again. */
const RECOVERY_BOUND_MS = 60_000;
const SELECTORS = 4;
const MAX_PODS = 30;
const MAX_SERVICES = 14;
const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer'] as const;
const log = (line: string) => process.stderr.write(`[restarts] ${line}\n`);

const pick = <T>(random: () => number, items: readonly T[]): T | undefined => items[Math.floor(random() * items.length)];
const isReady = (pod: Pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
const matches = (service: Service, pod: Pod) => Object.entries(service.spec?.selector ?? {}).every(([k, v]) => pod.metadata?.labels?.[k] === v);

/** The slice the pods imply for a Service (port http → 8080), as the endpoint controllers must publish it. */
function impliedSlice(service: Service, pods: Pod[], zoneOf: Map<string, string>): EndpointSlice {
  return {
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: pods
      .filter((pod) => matches(service, pod) && pod.status?.podIP)
      .map((pod) => ({
        addresses: [pod.status!.podIP!],
        conditions: { ready: isReady(pod), serving: isReady(pod), terminating: false },
        nodeName: pod.spec?.nodeName,
        zone: zoneOf.get(pod.spec?.nodeName ?? ''),
        targetRef: { kind: 'Pod', namespace: WORKLOAD_NS, name: pod.metadata?.name, uid: pod.metadata?.uid },
      })),
  } as EndpointSlice;
}

/** The endpoint groups of a snapshot that have endpoints (a Service without pods keeps an empty placeholder slice). */
const endpointGroups = (slices: EndpointSlice[]) => Object.entries(sliceSnapshot(slices).groups).filter(([, endpoints]) => endpoints.length > 0);

describe('kube-apiserver and etcd restarts during churn', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  let chaos: ChaosCluster | undefined;
  let replicas: ReplicaSet;
  const pool = serviceIPRange(POOL_CIDR);
  /** Values ever seen held twice, by any check. */
  const duplicatesSeen = new Set<string>();

  /** true when everything is exact, else what is not. */
  async function exact(): Promise<true | string> {
    const leader = await replicas.singleLeader(client, SYSTEM_NS);
    if (leader !== true) return `leader: ${leader}`;
    const [services, pods, nodes, slices, endpoints] = await Promise.all([
      client.listAll<Service>(Services),
      client.list<Pod>(Pods, { namespace: WORKLOAD_NS }),
      client.listAll<Node>(Nodes),
      client.list<EndpointSlice>(EndpointSlices, { namespace: WORKLOAD_NS }),
      client.list<Endpoints>(EndpointsResource, { namespace: WORKLOAD_NS }),
    ]);
    for (const duplicate of audit(services.items).duplicates) duplicatesSeen.add(duplicate);
    const claims = await claimsMatchServices(client);
    if (claims !== true) return `claims: ${claims}`;
    const zoneOf = new Map(nodes.items.map((n) => [n.metadata?.name ?? '', n.metadata?.labels?.[LABEL_TOPOLOGY_ZONE] ?? '']));
    const churned = services.items.filter((s) => s.metadata?.namespace === WORKLOAD_NS);
    const lbAddresses = new Map<string, string>();
    for (const service of churned) {
      const name = service.metadata?.name ?? '';
      const own = slices.items.filter((s) => s.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] === name);
      const want = JSON.stringify(endpointGroups([impliedSlice(service, pods.items, zoneOf)]));
      const got = JSON.stringify(endpointGroups(own));
      if (got !== want) return `slices of ${name} differ from its pods: got ${got}, want ${want}`;
      // A pod whose status write failed while the API server was down has no IP yet: it is in neither list.
      const implied = pods.items.filter((pod) => matches(service, pod) && pod.status?.podIP);
      const ips = (ready: boolean) => implied.filter((pod) => isReady(pod) === ready).map((pod) => pod.status?.podIP).sort();
      const subsets = endpoints.items.find((e) => e.metadata?.name === name)?.subsets ?? [];
      const published = (which: 'addresses' | 'notReadyAddresses') => subsets.flatMap((s) => (s[which] ?? []).map((a) => a.ip)).sort();
      const endpointsGot = JSON.stringify([published('addresses'), published('notReadyAddresses')]);
      const endpointsWant = JSON.stringify([ips(true), ips(false)]);
      if (endpointsGot !== endpointsWant) return `Endpoints of ${name} differ from its pods: got ${endpointsGot}, want ${endpointsWant}`;
      const ingress = (service.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
      if (service.spec?.type !== 'LoadBalancer') {
        if (ingress.length > 0) return `${name} (${service.spec?.type}) still has ingress ${ingress.join(',')}`;
        continue;
      }
      if (ingress.length !== 1 || !rangeContainsIP(pool, ingress[0]!)) return `LoadBalancer ${name} has ingress [${ingress.join(',')}]`;
      if (lbAddresses.has(ingress[0]!)) duplicatesSeen.add(`${ingress[0]}: ${lbAddresses.get(ingress[0]!)} and ${name}`);
      lbAddresses.set(ingress[0]!, name);
    }
    return true;
  }

  /** What the check covered: Services by type, pods by readiness. */
  async function population(): Promise<string> {
    const [services, pods] = await Promise.all([client.list<Service>(Services, { namespace: WORKLOAD_NS }), client.list<Pod>(Pods, { namespace: WORKLOAD_NS })]);
    const types = SERVICE_TYPES.map((type) => `${services.items.filter((s) => s.spec?.type === type).length} ${type}`).join(', ');
    return `Services: ${types}; pods: ${pods.items.filter(isReady).length} ready, ${pods.items.filter((p) => !isReady(p)).length} not`;
  }

  beforeAll(async () => {
    chaos = await startChaosCluster({ name: 'ctl', log, namespaces: [WORKLOAD_NS], replicas: 2, graceMs: GRACE_MS, extraFlags: [`--endpoint-controllers-namespace=${WORKLOAD_NS}`] });
    ({ cp, client, replicas } = chaos);
    await createNode(client, 'node-a', { zone: 'z1' });
    await createNode(client, 'node-b', { zone: 'z2' });
    // The replicas install the pool CRD at start.
    await eventually(() => client.create(IPAddressPools, { metadata: { name: 'chaos' }, spec: { addresses: [POOL_CIDR] } }).then(() => true), 60_000, 500);
  }, 180_000);

  afterAll(() => chaos?.stop(), 60_000);

  it(`converges after ${API_SERVER_RESTARTS} kube-apiserver and ${ETCD_RESTARTS} etcd restarts`, async () => {
    const random = prng(CHAOS_SEED);
    const pods: string[] = [];
    const services: string[] = [];
    let made = 0;
    const ops = { ok: 0, failed: 0 };

    const createService = async () => {
      const name = `svc-${made++}`;
      const type = pick(random, SERVICE_TYPES)!;
      await client.create(Services, {
        metadata: { name, namespace: WORKLOAD_NS },
        spec: { type, selector: { app: `web-${Math.floor(random() * SELECTORS)}` }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
      });
      services.push(name);
    };
    const createChurnPod = async () => {
      const n = made++;
      const name = `pod-${n}`;
      await createPod(client, WORKLOAD_NS, { name, labels: { app: `web-${n % SELECTORS}` }, node: random() < 0.5 ? 'node-a' : 'node-b', ips: [`10.80.${n >> 8}.${n & 255}`], ready: random() < 0.7 });
      pods.push(name);
    };
    const remove = (list: string[], name: string) => list.splice(list.indexOf(name), 1);

    /** One seeded change; its outcome may be unknown while the API server is down, so checks read the server. */
    async function churnOnce(): Promise<void> {
      const r = random();
      const pod = pick(random, pods);
      const service = pick(random, services);
      if (r < 0.35 && pod) await setPodStatus(client, WORKLOAD_NS, pod, { ips: [`10.80.${Number(pod.slice(4)) >> 8}.${Number(pod.slice(4)) & 255}`], ready: random() < 0.5 });
      else if (r < 0.5 && pods.length < MAX_PODS) await createChurnPod();
      else if (r < 0.6 && pod) await forceDeletePod(client, WORKLOAD_NS, pod).then(() => remove(pods, pod));
      else if (r < 0.75 && services.length < MAX_SERVICES) await createService();
      else if (r < 0.85 && service) await client.delete(Services, service, { namespace: WORKLOAD_NS }).then(() => remove(services, service));
      else if (service) await client.patch(Services, service, { spec: { type: pick(random, SERVICE_TYPES) } }, 'merge', { namespace: WORKLOAD_NS });
    }

    let churning = true;
    let paused = false;
    const churn = (async () => {
      while (churning) {
        if (paused) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        await churnOnce().then(
          () => ops.ok++,
          () => ops.failed++,
        );
        // Between the checks too: no value held twice at any moment the API server answers.
        if ((ops.ok + ops.failed) % 25 === 0) {
          await client.listAll<Service>(Services).then((list) => audit(list.items).duplicates.forEach((d) => duplicatesSeen.add(d)), () => undefined);
        }
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    /** Pauses the churn once its change under way is done. */
    const pause = async () => {
      paused = true;
      await new Promise((r) => setTimeout(r, 100));
    };

    for (let i = 0; i < 12; i++) await createChurnPod();
    for (let i = 0; i < 6; i++) await createService();

    // etcd restarts spread evenly among the API server's.
    const total = API_SERVER_RESTARTS + ETCD_RESTARTS;
    const faults = Array.from({ length: total }, (_, i) => (Math.floor(((i + 1) * ETCD_RESTARTS) / total) > Math.floor((i * ETCD_RESTARTS) / total) ? 'etcd' : 'kube-apiserver'));
    const recovery: Record<string, number[]> = { 'kube-apiserver': [], etcd: [] };
    try {
      for (const [i, fault] of faults.entries()) {
        paused = false;
        await new Promise((r) => setTimeout(r, 1500 + Math.floor(random() * 1500)));
        const down = Date.now();
        if (fault === 'etcd') await cp.restartEtcd();
        else await cp.restartApiServer();
        const ready = Date.now();
        await pause();
        const result = await eventually(async () => {
          const state = await exact();
          if (state !== true) throw new Error(state);
          return state;
        }, RECOVERY_BOUND_MS, 200).catch((err: unknown) => `${fault} restart ${i}: not exact ${RECOVERY_BOUND_MS} ms after it was ready: ${String(err)}`);
        expect(result).toBe(true);
        recovery[fault]!.push(Date.now() - ready);
        log(`${fault} restart ${i}: down ${ready - down} ms, exact ${Date.now() - ready} ms after ready; leader ${replicas.live().find(leadsNow)?.id}, ${replicas.restarts} replicas replaced so far; ${await population()}`);
      }
    } finally {
      churning = false;
      paused = false;
      await churn;
    }
    log(
      `seed ${CHAOS_SEED}: ${ops.ok} churn changes made, ${ops.failed} failed (API server or webhook down); ${replicas.restarts} replicas replaced; ` +
        `recovery after kube-apiserver restarts ${spread(recovery['kube-apiserver']!)}, after etcd restarts ${spread(recovery.etcd!)}; duplicates ${duplicatesSeen.size}`,
    );
    expect([...duplicatesSeen]).toEqual([]);
  }, (API_SERVER_RESTARTS + ETCD_RESTARTS) * (RECOVERY_BOUND_MS + 60_000));
});
