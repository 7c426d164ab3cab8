// The API server's CPU for one update of a 100-endpoint EndpointSlice, as the endpoint controllers send it (from a
// cache without managedFields), with field tracking (a plain PUT: the object keeps its managedFields) and without
// (KubeClient.replaceUntracked). Two sets of slices, since an object once cleared stays untracked under plain PUTs
// too. On a fresh control plane of its own, 10 updates in flight, rounds alternated so that drift in the machine's
// load falls on both; CPU from /proc. `make bench BENCH_ARGS=update-cost`.
import { LocalControlPlane } from '../cmd/up/controlplane/controlplane.js';
import { KubeClient } from '../controllers/runtime/client.js';
import { EndpointSlices } from '../api/resources.js';
import type { EndpointSlice, KubeObject } from '../api/wire.js';
import { reconcileEndpointSlices } from '../controllers/endpointslice/reconciler.js';
import { makeNode, makePod, makeService } from '../testing/endpoint-objects.js';
import { cpuSeconds } from './compare/proc.js';

const SLICES = 20;
const IN_FLIGHT = 10;
const UPDATES_PER_ROUND = 1000;

/** The slice the EndpointSlice reconciler makes for a Service of 100 pods on 10 Nodes in 3 zones. */
function sliceOf(name: string, index: number): EndpointSlice {
  const nodes = Array.from({ length: 10 }, (_, i) => makeNode(`node-${i}`, `zone-${i % 3}`));
  const service = makeService({ name, uid: `${name}-uid`, selector: { app: name } });
  const pods = Array.from({ length: 100 }, (_, i) => makePod(`${name}-pod-${i}`, index * 100 + i, { labels: { app: name }, node: `node-${i % 10}` }));
  return reconcileEndpointSlices({ service, pods, nodes, existingSlices: [] }).toCreate[0];
}

export async function updateCostBenchmark(record: (benchmark: string, figure: string) => void): Promise<void> {
  const controlPlane = await new LocalControlPlane({ kubeControllerManager: false }).start();
  const client = KubeClient.fromFile(controlPlane.kubeconfig, 'bench-update-cost');
  try {
    const apiPid = controlPlane.apiServerPid!;
    const createSet = (set: string) =>
      Promise.all(
        Array.from({ length: SLICES }, async (_, s) => {
          const created = await client.create<EndpointSlice>(EndpointSlices, sliceOf(`${set}-${s}`, s));
          delete created.metadata!.managedFields; // as the informers' caches keep them
          return created;
        }),
      );
    const sets = { tracked: await createSet('tracked'), untracked: await createSet('untracked') };
    let flips = 0;
    const round = async (slices: EndpointSlice[], write: (obj: EndpointSlice) => Promise<KubeObject>): Promise<number> => {
      const before = cpuSeconds(apiPid);
      // Each worker owns the slices s ≡ w (mod IN_FLIGHT), so two updates of one slice are never in flight at once.
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async (_, w) => {
          for (let k = w; k < UPDATES_PER_ROUND; k += IN_FLIGHT) {
            const s = k % SLICES;
            const ready = (flips + Math.floor(k / SLICES)) % 2 === 0;
            const next = { ...slices[s], endpoints: slices[s].endpoints.map((e, i) => (i < 10 ? { ...e, conditions: { ...e.conditions, ready } } : e)) };
            const stored = await write(next);
            slices[s] = { ...next, metadata: { ...next.metadata, resourceVersion: stored.metadata?.resourceVersion } };
          }
        }),
      );
      flips++;
      return ((cpuSeconds(apiPid) - before) * 1000) / UPDATES_PER_ROUND;
    };
    const tracked: number[] = [];
    const untracked: number[] = [];
    for (let r = 0; r < 3; r++) {
      tracked.push(await round(sets.tracked, (obj) => client.replaceForMetadata(EndpointSlices, obj)));
      untracked.push(await round(sets.untracked, (obj) => client.replaceUntracked(EndpointSlices, obj)));
    }
    const fmt = (values: number[]) => values.map((v) => v.toFixed(2)).join(' / ');
    record('update cost: API server CPU per slice update, tracked', `${fmt(tracked)} ms (${UPDATES_PER_ROUND} updates a round, ${IN_FLIGHT} in flight)`);
    record('update cost: API server CPU per slice update, untracked', `${fmt(untracked)} ms`);
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    record('update cost: untracked ÷ tracked', `${(sum(untracked) / sum(tracked)).toFixed(2)}×`);
  } finally {
    client.close();
    await controlPlane.stop();
  }
}
