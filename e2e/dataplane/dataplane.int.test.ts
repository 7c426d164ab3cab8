// Traffic proof: real packets through real kube-proxies (nftables mode), driven by the EndpointSlices Switchboard
// writes, in the lab of cmd/up/dataplane-lab.ts (three node namespaces on one bridge, pods as namespaces behind
// them, a client on the LAN, the L2 speakers in the node namespaces). Short by default (CI);
// SWITCHBOARD_DATAPLANE=full (make test-dataplane) runs the full trial counts and durations. Needs root.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { IPAddressPools } from '../../crds/ipaddresspool.js';
import { L2Advertisements } from '../../crds/l2advertisement.js';
import { ServiceL2Statuses, type ServiceL2Status } from '../../crds/servicel2status.js';
import { Namespaces, Services } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { inNs, runAsync, LAN_PREFIX4 } from '../../cmd/up/netlab.js';
import type { LabNode, LabPod } from '../../cmd/up/dataplane-lab.js';
import { eventually } from '../jest/cluster.js';
import { bounded } from '../jest/service-allocation.js';
import { DataplaneCluster, SPEAKER_NS, answeredBy, dataplaneUnavailable, namesOf, sleep } from './cluster.js';

const skipReason = dataplaneUnavailable();
const suite = skipReason ? describe.skip : describe;
const FULL = process.env.SWITCHBOARD_DATAPLANE === 'full';
const NS = 'app';

suite(`Traffic through kube-proxy and the speakers${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const cluster = new DataplaneCluster();
  let node1: LabNode;

  beforeAll(async () => {
    await cluster.start({ log: (line) => process.stderr.write(`[dataplane] ${line}\n`) });
    await cluster.client.create(Namespaces, { metadata: { name: NS } });
    await cluster.use('switchboard');
    node1 = cluster.lab.nodes[0];
  }, 600_000);

  afterAll(async () => {
    await cluster.stop();
  }, 60_000);

  /** `count` pods named `<app>-<first+i>`, round-robin over the nodes from `firstNode`. */
  async function pods(app: string, count: number, o: { ready: boolean; first?: number; nodes?: LabNode[] }): Promise<LabPod[]> {
    const nodes = o.nodes ?? cluster.lab.nodes;
    const made = await bounded(count, 8, (i) =>
      cluster.lab.addPod({ namespace: NS, name: `${app}-${(o.first ?? 0) + i}`, node: nodes[i % nodes.length], labels: { app }, ready: o.ready }),
    );
    return made.map((r) => {
      if (r.status === 'rejected') throw r.reason;
      return r.value;
    });
  }

  const ips = (list: readonly LabPod[]): string[] => list.map((p) => p.ip).sort();

  it('ClusterIP: 1000 requests reach every ready pod and never a not-ready or terminating one; 3→250 pods all reached', async () => {
    const ready = await pods('web', 3, { ready: true });
    const [notReady] = await pods('web', 1, { ready: false, first: 3 });
    const [terminating] = await pods('web', 1, { ready: true, first: 4 });
    const svc = await cluster.service(NS, 'web', {});
    const url = `http://${svc.spec!.clusterIP}:80/`;
    await eventually(async () => (await cluster.endpoints(NS, 'web')).ready.length === 4, 30_000);
    await cluster.lab.terminatePod(terminating);
    await eventually(async () => JSON.stringify((await cluster.endpoints(NS, 'web')).ready) === JSON.stringify(ips(ready)), 30_000);
    // kube-proxy programs what the slices say within its sync period; then every request must land on a ready pod.
    await eventually(async () => {
      const probe = answeredBy(await node1.agent.batch(url, 60, 8));
      return probe.failed === 0 && [...probe.names].sort().join() === namesOf(ready).join();
    }, 30_000, 500);
    const results = await node1.agent.batch(url, 1000, 16);
    const { names, failed } = answeredBy(results);
    expect(failed).toBe(0);
    expect([...names].sort()).toEqual(namesOf(ready));
    expect(names.has(notReady.name)).toBe(false);
    expect(names.has(terminating.name)).toBe(false);

    const more = await pods('web', 247, { ready: true, first: 5 });
    const all = namesOf([...ready, ...more]);
    await eventually(async () => (await cluster.endpoints(NS, 'web')).ready.length === 250, 60_000, 500);
    const reached = new Set<string>();
    for (let round = 0; round < 12 && reached.size < all.length; round++) {
      const batch = await node1.agent.batch(url, 500, 16);
      expect(answeredBy(batch).failed).toBe(0);
      for (const r of batch) if (r.body) reached.add(r.body);
    }
    expect([...reached].sort()).toEqual(all);
    expect(reached.has(notReady.name) || reached.has(terminating.name)).toBe(false);
  }, 300_000);
});
