// Two `switchboard controller` replicas with leader election run the endpoint controllers while pods churn; the
// leader is killed (SIGKILL) in the middle. The survivor takes over with empty in-memory state (slice tracker,
// trigger times) and the final EndpointSlices, Endpoints and mirrored slices must match the final pods exactly,
// without duplicate slices.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeClient } from '../runtime/client.js';
import { EndpointSlices, Endpoints as EndpointsResource, Leases, Nodes, Pods, Services } from '../../api/resources.js';
import type { EndpointSlice, Endpoints, Lease } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from '../endpointutil/constants.js';
import { createNode, createPod, forceDeletePod, setPodStatus } from '../../testing/endpoint-cluster.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, randomSuffix, testClient } from '../../e2e/jest/cluster.js';
import { leads, replicaFlags, requireBuiltSwitchboard, spawnSwitchboard, type SwitchboardProcess as Replica } from '../../e2e/jest/switchboard-process.js';

// Not the upstream values: another suite may run Switchboard's defaults on the shared control plane.
const MANAGED_BY = 'endpointslice-controller.le.switchboard.dev';
const MIRROR_MANAGED_BY = 'endpointslicemirroring-controller.le.switchboard.dev';

interface PodModel {
  ip: string;
  ready: boolean;
  terminating: boolean;
}

describe('endpoint controllers under leader election', () => {
  let client: KubeClient;
  let ns: string;
  let node: string;
  const replicas: Replica[] = [];

  function startReplica(id: string): Replica {
    const replica = spawnSwitchboard(id, [
      ...replicaFlags(controlPlaneInfo().kubeconfig, ns, id),
      `--endpoint-controllers-namespace=${ns}`,
      `--endpointslice-managed-by=${MANAGED_BY}`,
      `--mirroring-managed-by=${MIRROR_MANAGED_BY}`,
    ]);
    replicas.push(replica);
    return replica;
  }

  beforeAll(async () => {
    requireBuiltSwitchboard();
    client = testClient();
    ns = await createNamespace(client, 'esle');
    node = `esle-${randomSuffix()}`;
    await createNode(client, node, { zone: 'z1' });
  });

  afterAll(async () => {
    for (const r of replicas) r.child.kill('SIGKILL');
    await deleteNamespace(client, ns);
    await client.delete(Nodes, node).catch(() => undefined);
    client.close();
  });

  it('converges to the final pods after the leader is killed mid-churn', async () => {
    const pods = new Map<string, PodModel>();
    let nextPod = 0;
    const addPod = async (ready: boolean) => {
      const name = `web-${nextPod++}`;
      const ip = `10.77.${nextPod >> 8}.${nextPod & 255}`;
      await createPod(client, ns, { name, labels: { app: 'web' }, node, ips: [ip], ready });
      pods.set(name, { ip, ready, terminating: false });
    };
    await client.create(Services, { metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    await client.create(Services, { metadata: { name: 'manual', namespace: ns }, spec: { ports: [{ name: 'http', port: 80 }] } });
    const manualEndpoints = (ips: string[]): Endpoints => ({
      metadata: { name: 'manual', namespace: ns },
      subsets: ips.length ? [{ addresses: ips.map((ip) => ({ ip })), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }] : [],
    });
    let manualIPs = ['10.78.0.1', '10.78.0.2'];
    await client.create(EndpointsResource, manualEndpoints(manualIPs));
    for (let i = 0; i < 12; i++) await addPod(i % 3 !== 0);

    startReplica('replica-a');
    startReplica('replica-b');
    const leaderId = await eventually(async () => (await client.getOrUndefined<Lease>(Leases, 'switchboard-controller', ns))?.spec?.holderIdentity ?? false, 30_000);
    const leader = replicas.find((r) => r.id === leaderId)!;
    const follower = replicas.find((r) => r.id !== leaderId)!;
    await eventually(() => leads(leader), 15_000);

    // Churn: readiness flips, new pods, graceful and forced deletions, and edits of the mirrored Endpoints.
    let ops = 0;
    let churning = true;
    const churn = (async () => {
      let step = 0;
      while (churning) {
        step += 1;
        const live = [...pods].filter(([, p]) => !p.terminating);
        const [name, pod] = live[(step * 7) % Math.max(1, live.length)] ?? [];
        if (step % 5 === 0 || !name || !pod) await addPod(step % 2 === 0);
        else if (step % 11 === 0) {
          await client.delete(Pods, name, { namespace: ns });
          pod.terminating = true;
        } else if (step % 13 === 0) {
          await forceDeletePod(client, ns, name);
          pods.delete(name);
        } else if (step % 17 === 0) {
          manualIPs = step % 2 ? [...manualIPs, `10.78.${step >> 8}.${step & 255}`] : manualIPs.slice(1);
          const current = await client.get<Endpoints>(EndpointsResource, 'manual', ns);
          await client.replace(EndpointsResource, { ...manualEndpoints(manualIPs), metadata: current.metadata });
        } else {
          pod.ready = !pod.ready;
          await setPodStatus(client, ns, name, { ips: [pod.ip], ready: pod.ready });
        }
        ops += 1;
        await new Promise((r) => setTimeout(r, 60));
      }
    })();

    await new Promise((r) => setTimeout(r, 2500));
    expect(leads(follower)).toBe(false);
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    await eventually(() => leads(follower), 30_000, 100);
    const takeoverMs = Date.now() - killedAt;
    await new Promise((r) => setTimeout(r, 2500)); // keep churning under the new leader
    churning = false;
    await churn;

    const expectedSlice = [...pods.values()]
      .map((p) => JSON.stringify([p.ip, p.ready && !p.terminating, p.ready, p.terminating]))
      .sort();
    const expectedEndpoints = {
      ready: [...pods.values()].filter((p) => p.ready && !p.terminating).map((p) => p.ip).sort(),
      notReady: [...pods.values()].filter((p) => !p.ready && !p.terminating).map((p) => p.ip).sort(),
    };
    const slicesOf = async (service: string, managedBy: string) =>
      (await client.list<EndpointSlice>(EndpointSlices, { namespace: ns, labelSelector: `${LABEL_ENDPOINTSLICE_SERVICE_NAME}=${service},${LABEL_MANAGED_BY}=${managedBy}` })).items;

    await eventually(async () => {
      const slices = await slicesOf('web', MANAGED_BY);
      const endpoints = slices.flatMap((s) => s.endpoints ?? []);
      const got = endpoints.map((e) => JSON.stringify([e.addresses[0], e.conditions?.ready, e.conditions?.serving, e.conditions?.terminating])).sort();
      expect({ slices: slices.length, endpoints: got }).toEqual({ slices: 1, endpoints: expectedSlice });

      const web = await client.get<Endpoints>(EndpointsResource, 'web', ns);
      const ips = (list: { ip: string }[] | undefined) => (list ?? []).map((a) => a.ip);
      const subsets = web.subsets ?? [];
      expect({ ready: subsets.flatMap((s) => ips(s.addresses)).sort(), notReady: subsets.flatMap((s) => ips(s.notReadyAddresses)).sort() }).toEqual(expectedEndpoints);

      const mirrored = await slicesOf('manual', MIRROR_MANAGED_BY);
      expect(mirrored.flatMap((s) => (s.endpoints ?? []).map((e) => e.addresses[0])).sort()).toEqual([...manualIPs].sort());
      return true;
    }, 30_000, 250);

    process.stderr.write(`[endpoint controllers, leader election] ${ops} churn operations; takeover ${takeoverMs} ms after SIGKILL; final ${pods.size} pods\n`);
    const restarts = follower.output.filter((l) => l.includes('"starting controllers"')).length;
    expect(restarts).toBe(1);

    // The new leader exports upstream's metric names (its counters as kube-controller-manager names them, without _total).
    const serving = follower.output.map((l) => JSON.parse(l) as { msg?: string; port?: number }).find((l) => l.msg === 'serving metrics and health');
    const metrics = await (await fetch(`http://127.0.0.1:${serving?.port}/metrics`)).text();
    for (const name of [
      'endpoint_slice_controller_endpoints_added_per_sync_bucket',
      'endpoint_slice_controller_endpoints_removed_per_sync_bucket',
      'endpoint_slice_controller_endpoints_desired',
      'endpoint_slice_controller_num_endpoint_slices',
      'endpoint_slice_controller_desired_endpoint_slices',
      'endpoint_slice_controller_changes{operation="update"}',
      'endpoint_slice_controller_syncs{result="success"}',
      'endpoint_slice_controller_endpointslices_changed_per_sync_bucket',
      'endpoint_slice_mirroring_controller_endpoints_sync_duration_bucket',
      'endpoint_slice_mirroring_controller_addresses_skipped_per_sync_bucket',
      'workqueue_depth{name="endpoint_slice"}',
      'workqueue_depth{name="endpoint"}',
      'workqueue_depth{name="endpoint_slice_mirroring"}',
    ]) {
      expect({ name, found: metrics.includes(name) }).toEqual({ name, found: true });
    }
  });
});
