// The end-to-end scenarios, shared by the local suite (e2e/deploy/config.int.test.ts) and the kind suite
// (e2e/kind/run-scenarios.ts). Each runs in a namespace of its own and checks what a user sees: slices for the pods
// of a Service, NodePorts and ClusterIPs taken by Switchboard and kubectl's exact 422 for taken ones, a LoadBalancer
// address from a pool (answered over L2 where the environment has a data path), and the pool webhook's 422.
import assert from 'node:assert/strict';
import { claimName, ipClaim, nodePortClaim } from '../../allocators/service/claim-names.js';
import { parseIPStrict } from '../../api/ip.js';
import { locateAddress, parsePools, validateIPAddressPool } from '../../allocators/loadbalancer/pools.js';
import { ANNOTATION_ALLOCATED_FROM_POOL } from '../../allocators/loadbalancer/service-request.js';
import { ALLOCATOR_ERRORS, clusterIPAllocationStatus, kubectlErrorOutput, nodePortAllocationStatus, webhookDenialStatus, type Status } from '../../api/status.js';
import { DEFAULT_ENDPOINTSLICE_MANAGED_BY, DEFAULT_MIRRORING_MANAGED_BY, LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from '../../controllers/endpointutil/constants.js';
import { invalidConfigStatus } from '../../controllers/loadbalancer/webhook.js';
import { EndpointSlices, Endpoints as EndpointsResource, Namespaces, Services } from '../../api/resources.js';
import type { EndpointSlice, Endpoints, KubeObject, Service } from '../../api/wire.js';
import { WEBHOOK_NAMES } from '../../controllers/serviceallocation/webhook-configurations.js';
import { IPAddressPools, type IPAddressPool } from '../../crds/ipaddresspool.js';
import { L2Advertisements } from '../../crds/l2advertisement.js';
import { SWITCHBOARD_GROUP } from '../../crds/meta.js';
import { CLAIM_PHASE_BOUND, ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { L2ConditionAnnounced, ServiceL2Statuses, type ServiceL2Status } from '../../crds/servicel2status.js';
import { deleteNamespace, eventually, randomSuffix } from '../jest/cluster.js';
import type { ScenarioEnv, Workload } from './env.js';

export interface Scenario {
  /** Short, for namespace names. */
  id: string;
  title: string;
  run(env: ScenarioEnv, namespace: string): Promise<void>;
}

/** Runs one scenario in a fresh namespace, deleted afterwards. */
export async function runScenario(env: ScenarioEnv, scenario: Scenario): Promise<void> {
  const namespace = `e2e-${scenario.id}-${randomSuffix()}`;
  await env.client.create(Namespaces, { metadata: { name: namespace, labels: { 'switchboard.dev/e2e': 'true' } } });
  const started = Date.now();
  try {
    await scenario.run(env, namespace);
    env.log(`[${env.name}] ${scenario.title}: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await deleteNamespace(env.client, namespace);
  }
}

/** A Service manifest as kubectl reads it (JSON is YAML). */
const serviceManifest = (namespace: string, name: string, spec: NonNullable<Service['spec']>): string =>
  JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec });

/** What kubectl prints when `kubectl create -f -` meets this denial from `webhook`. */
const deniedOutput = (webhook: string, status: Status): string => kubectlErrorOutput(webhookDenialStatus(webhook, status), { verb: 'creating', file: 'STDIN' });

const workload = (name: string): Workload => ({ name, labels: { app: name }, replicas: 2, port: 8080 });

/** Managers other than Switchboard in an object's managedFields (its updates clear them: a create leaves its own). */
const otherManagers = (obj: KubeObject): string[] => [...new Set((obj.metadata?.managedFields ?? []).map((f) => f.manager ?? ''))].filter((m) => m !== 'switchboard');

/** The ready addresses of a Service's slices (asserting each slice's managed-by, ports and sole writer). */
async function sliceAddresses(env: ScenarioEnv, ns: string, service: string, managedBy: string, port: number): Promise<string[]> {
  const slices = (await env.client.list<EndpointSlice>(EndpointSlices, { namespace: ns, labelSelector: `${LABEL_ENDPOINTSLICE_SERVICE_NAME}=${service}` })).items;
  for (const slice of slices) {
    assert.equal(slice.metadata?.labels?.[LABEL_MANAGED_BY], managedBy);
    assert.deepEqual(slice.ports, [{ name: 'http', port, protocol: 'TCP' }]);
    // kube-controller-manager's own endpoint controllers are off: nobody else writes them.
    assert.deepEqual(otherManagers(slice), []);
  }
  return slices.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready).map((e) => e.addresses[0])).sort();
}

export const endpointSlicesFromPods: Scenario = {
  id: 'slices',
  title: 'EndpointSlices and Endpoints list the ready pods of a Service, hand-made Endpoints are mirrored, all by Switchboard alone',
  async run(env, ns) {
    const app = workload('web');
    await env.client.create<Service>(Services, {
      metadata: { name: app.name, namespace: ns },
      spec: { selector: app.labels, ports: [{ name: 'http', port: 80, targetPort: app.port, protocol: 'TCP' }] },
    });
    // A Service without selector whose Endpoints someone maintains: the mirroring controller makes its slices.
    const manual = ['198.51.100.20', '198.51.100.21'];
    await env.client.create<Service>(Services, { metadata: { name: 'manual', namespace: ns }, spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } });
    await env.client.create<Endpoints>(EndpointsResource, {
      metadata: { name: 'manual', namespace: ns },
      subsets: [{ addresses: manual.map((ip) => ({ ip })), ports: [{ name: 'http', port: app.port, protocol: 'TCP' }] }],
    });
    const ips = (await env.runPods(ns, app)).map((p) => p.ip).sort();
    await eventually(async () => {
      assert.deepEqual(await sliceAddresses(env, ns, app.name, DEFAULT_ENDPOINTSLICE_MANAGED_BY, app.port), ips);
      const endpoints = await env.client.get<Endpoints>(EndpointsResource, app.name, ns);
      assert.deepEqual((endpoints.subsets ?? []).flatMap((s) => (s.addresses ?? []).map((a) => a.ip)).sort(), ips);
      assert.deepEqual(otherManagers(endpoints), []);
      assert.deepEqual(await sliceAddresses(env, ns, 'manual', DEFAULT_MIRRORING_MANAGED_BY, app.port), manual);
      return true;
    }, env.timeoutMs);

    // What goes away goes: the Endpoints of a deleted Service, the mirrored slices of deleted Endpoints.
    await env.client.delete(Services, app.name, { namespace: ns });
    await env.client.delete(EndpointsResource, 'manual', { namespace: ns });
    await eventually(async () => {
      assert.equal(await env.client.getOrUndefined(EndpointsResource, app.name, ns), undefined);
      assert.deepEqual((await env.client.list<EndpointSlice>(EndpointSlices, { namespace: ns, labelSelector: `${LABEL_ENDPOINTSLICE_SERVICE_NAME}=manual` })).items, []);
      return true;
    }, env.timeoutMs);
  },
};

export const nodePortAndClusterIP: Scenario = {
  id: 'nodeport',
  title: 'kubectl gets its NodePort and ClusterIP from Switchboard, and a taken one is the upstream 422',
  async run(env, ns) {
    const created = await env.kubectl(['create', '-f', '-'], serviceManifest(ns, 'np', { type: 'NodePort', selector: { app: 'np' }, ports: [{ port: 80, targetPort: 8080 }] }));
    assert.deepEqual({ code: created.code, stdout: created.stdout, stderr: created.stderr }, { code: 0, stdout: 'service/np created\n', stderr: '' });
    const np = await env.client.get<Service>(Services, 'np', ns);
    const port = np.spec?.ports?.[0]?.nodePort ?? 0;
    const ip = np.spec?.clusterIP ?? '';
    assert.ok(port >= 30000 && port <= 32767, `nodePort ${port} is outside 30000-32767`);
    // Switchboard took both values: a ServiceClaim each, bound to this Service once it exists.
    await eventually(async () => {
      for (const value of [nodePortClaim(port), ipClaim(ip)]) {
        const claim = await env.client.get<ServiceClaim>(ServiceClaims, claimName(value));
        assert.deepEqual([claim.spec.service.namespace, claim.spec.service.name, claim.spec.service.uid, claim.status?.phase], [ns, 'np', np.metadata?.uid, CLAIM_PHASE_BOUND]);
      }
      return true;
    }, env.timeoutMs);

    const taken: [string, NonNullable<Service['spec']>, Status][] = [
      ['np-taken', { type: 'NodePort', ports: [{ port: 80, nodePort: port }] }, nodePortAllocationStatus('np-taken', 0, port, ALLOCATOR_ERRORS.portAlreadyAllocated)],
      ['ip-taken', { clusterIP: ip, ports: [{ port: 80 }] }, clusterIPAllocationStatus('ip-taken', [ip], ip, ALLOCATOR_ERRORS.ipAlreadyAllocated)],
    ];
    for (const [name, spec, status] of taken) {
      const out = await env.kubectl(['create', '-f', '-'], serviceManifest(ns, name, spec));
      env.log(`[${env.name}] kubectl create ${name}: ${out.stderr.trim()}`);
      assert.deepEqual({ name, code: out.code, stderr: out.stderr }, { name, code: 1, stderr: deniedOutput(WEBHOOK_NAMES.mutate, status) });
    }
  },
};

/** Whether `ip` lies in the range a pool with `addresses` hands out. */
function inRange(addresses: string, ip: string): boolean {
  const address = parseIPStrict(ip);
  const pools = parsePools([{ metadata: { name: 'range' }, spec: { addresses: [addresses] } }]).pools;
  return address !== undefined && locateAddress(pools, address) !== undefined;
}

export const loadBalancerAddress: Scenario = {
  id: 'lb',
  title: 'a LoadBalancer Service gets an address from an IPAddressPool, announced by one speaker (and reachable where the environment has a data path)',
  async run(env, ns) {
    const pool = ns; // cluster-scoped, named after the scenario's namespace
    await env.client.create<IPAddressPool>(IPAddressPools, { metadata: { name: pool }, spec: { addresses: [env.loadBalancerRange], serviceAllocation: { namespaces: [ns] } } });
    await env.client.create(L2Advertisements, { metadata: { name: pool }, spec: { ipAddressPools: [pool] } });
    try {
      const app = workload('lb');
      const pods = await env.runPods(ns, app);
      await env.client.create<Service>(Services, {
        metadata: { name: app.name, namespace: ns },
        spec: { type: 'LoadBalancer', selector: app.labels, ports: [{ name: 'http', port: 80, targetPort: app.port, protocol: 'TCP' }] },
      });
      const svc = await eventually(async () => {
        const s = await env.client.get<Service>(Services, app.name, ns);
        return s.status?.loadBalancer?.ingress?.[0]?.ip ? s : false;
      }, env.timeoutMs);
      const ip = svc.status?.loadBalancer?.ingress?.[0]?.ip ?? '';
      assert.ok(inRange(env.loadBalancerRange, ip), `${ip} is not in ${env.loadBalancerRange}`);
      assert.equal(svc.metadata?.annotations?.[ANNOTATION_ALLOCATED_FROM_POOL], pool);

      // The speakers record who announces the address (a deputy records that nobody can, where no node may).
      const status = await eventually(async () => {
        const s = await env.client.get<ServiceL2Status>(ServiceL2Statuses, app.name, ns);
        return s.status?.addresses?.includes(ip) ? s : false;
      }, env.timeoutMs);
      env.log(`[${env.name}] ${ns}/${app.name} got ${ip}; ServiceL2Status node "${status.status?.node ?? ''}"`);
      if (!env.reach) return;
      const announced = await eventually(async () => {
        const s = await env.client.get<ServiceL2Status>(ServiceL2Statuses, app.name, ns);
        return s.status?.conditions?.find((c) => c.type === L2ConditionAnnounced && c.status === 'True') && s.status.node ? s : false;
      }, env.timeoutMs);
      const reach = env.reach;
      const body = await eventually(() => reach(ip, 80), env.timeoutMs, 1000);
      assert.ok(pods.some((p) => p.name === body.trim()), `http://${ip}/ answered ${JSON.stringify(body)}, not one of the pods`);
      env.log(`[${env.name}] http://${ip}/ answered through node ${announced.status?.node}: ${body.trim()}`);
    } finally {
      await env.client.delete(L2Advertisements, pool).catch(() => undefined);
      await env.client.delete(IPAddressPools, pool).catch(() => undefined);
    }
  },
};

export const invalidPoolRefused: Scenario = {
  id: 'pool422',
  title: 'kubectl gets a 422 from the pool webhook for an IPAddressPool whose ranges overlap',
  async run(env, ns) {
    // TEST-NET-2 ranges overlapping each other: invalid on their own, whatever other pools exist.
    const pool: IPAddressPool = { apiVersion: `${SWITCHBOARD_GROUP}/${IPAddressPools.version}`, kind: 'IPAddressPool', metadata: { name: `${ns}-overlapping` }, spec: { addresses: ['198.51.100.0/28', '198.51.100.8/29'] } };
    const expected = deniedOutput(`ipaddresspools.${SWITCHBOARD_GROUP}`, invalidConfigStatus('IPAddressPool', pool.metadata.name ?? '', validateIPAddressPool(pool)));
    // The webhook registers itself with failurePolicy Ignore: wait (on dry runs) until it answers.
    await eventually(async () => {
      const dry = await env.kubectl(['create', '--dry-run=server', '-f', '-'], JSON.stringify(pool));
      assert.equal(dry.stderr, expected);
      return true;
    }, env.timeoutMs, 500);
    const out = await env.kubectl(['create', '-f', '-'], JSON.stringify(pool));
    env.log(`[${env.name}] kubectl create ipaddresspool: ${out.stderr.trim()}`);
    assert.deepEqual({ code: out.code, stderr: out.stderr }, { code: 1, stderr: expected });
  },
};

export const scenarios: readonly Scenario[] = [endpointSlicesFromPods, nodePortAndClusterIP, loadBalancerAddress, invalidPoolRefused];
