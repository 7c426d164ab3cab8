// Benchmarks that print figures (never pass/fail on time): the work queue, the EndpointSlice
// reconciler at scale, the LoadBalancer allocator, the API server's cost of a slice update (bench/update-cost.ts, on a
// control plane of its own), and (as root) the data plane (bench/dataplane.ts). Run with
// `make bench` (BENCH_ARGS="endpoint" for the benchmarks whose names contain it).
import { performance } from 'node:perf_hooks';
import { WorkQueue } from '../controllers/runtime/workqueue.js';
import { reconcileEndpointSlices } from '../controllers/endpointslice/reconciler.js';
import { reconcileEndpoints } from '../controllers/endpoints/reconciler.js';
import { type TriggerTimeState, computeTriggerTime } from '../controllers/endpointutil/trigger-time.js';
import type { Endpoints, Pod } from '../api/wire.js';
import { podForEndpoints } from '../controllers/endpointwiring/informers.js';
import { FakeSliceStore, makeNode, makePod, makePods, makeService } from '../testing/endpoint-objects.js';
import { allocate } from '../allocators/loadbalancer/allocator.js';
import { parsePools } from '../allocators/loadbalancer/pools.js';
import { pool, service } from '../testing/lb.js';
import { dataplaneBenchmarks } from './dataplane.js';
import { updateCostBenchmark } from './update-cost.js';

interface Row {
  benchmark: string;
  figure: string;
}

const rows: Row[] = [];
const record = (benchmark: string, figure: string) => {
  rows.push({ benchmark, figure });
  console.log(`${benchmark.padEnd(58)} ${figure}`);
};

function timeIt<T>(fn: () => T): { ms: number; value: T } {
  const start = performance.now();
  const value = fn();
  return { ms: performance.now() - start, value };
}

async function workQueue(): Promise<void> {
  const q = new WorkQueue<string>();
  const n = 200_000;
  const start = performance.now();
  for (let i = 0; i < n; i++) q.add(`k${i % 50_000}`);
  let processed = 0;
  while (q.len() > 0) {
    const k = (await q.get())!;
    q.done(k);
    processed++;
  }
  const ms = performance.now() - start;
  record('workqueue: 200k adds (50k distinct) + drain', `${ms.toFixed(0)} ms, ${processed} processed, ${Math.round((n / ms) * 1000)} adds/s`);
}

function endpointSlices(): void {
  const nodes = ['a', 'b', 'c'].map((z) => makeNode(`node-${z}`, `zone-${z}`));
  for (const count of [1000, 10_000]) {
    const svc = makeService();
    const pods = makePods(count);
    const store = new FakeSliceStore();
    const first = timeIt(() => reconcileEndpointSlices({ service: svc, pods, nodes, existingSlices: store.list() }));
    store.apply(first.value);
    const changed = pods.map((p, i) => (i === Math.floor(count / 2) ? { ...p, status: { ...p.status, conditions: [{ type: 'Ready', status: 'False' }] } } : p));
    const second = timeIt(() => reconcileEndpointSlices({ service: svc, pods: changed, nodes, existingSlices: store.list() }));
    const writes = store.apply(second.value);
    record(`endpointslice: ${count} pods, first reconcile`, `${first.ms.toFixed(1)} ms, ${first.value.toCreate.length} slices created`);
    record(`endpointslice: ${count} pods, one pod turns not-ready`, `${second.ms.toFixed(1)} ms, writes c/u/d ${writes.create}/${writes.update}/${writes.delete}`);
  }
  const heap = process.memoryUsage().heapUsed / 1024 / 1024;
  record('heap after endpointslice benchmarks', `${heap.toFixed(0)} MiB`);
}

/**
 * The compute of both endpoint controllers' syncs in a flap (bench-compare's 10,000-pod workload: 100 Services of
 * 100 pods on 10 Nodes in 3 zones, 10% of the pods turning not ready and back), without I/O: what bounds how fast a
 * bulk release drains. Objects go through JSON and the Pod cache's transform, so their shapes are the cache's.
 */
function endpointSyncs(): void {
  const viaJson = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
  const nodes = viaJson(Array.from({ length: 10 }, (_, i) => makeNode(`node-${i}`, `zone-${i % 3}`)));
  const services = Array.from({ length: 100 }, (_, s) => viaJson(makeService({ name: `svc-${s}`, uid: `svc-uid-${s}`, selector: { app: `svc-${s}` } })));
  const podOf = (s: number, i: number, ready: boolean, since: string): Pod => {
    const pod = makePod(`svc-${s}-pod-${i}`, s * 100 + i, { labels: { app: `svc-${s}` }, node: `node-${i % 10}`, ready, readySince: since });
    pod.status!.conditions = [
      { type: 'PodReadyToStartContainers', status: 'True', lastTransitionTime: '2026-01-01T00:00:01Z' },
      { type: 'Initialized', status: 'True', lastTransitionTime: '2026-01-01T00:00:01Z' },
      ...(pod.status!.conditions ?? []),
      { type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: since },
      { type: 'PodScheduled', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ];
    return podForEndpoints(viaJson(pod));
  };
  const pods = services.map((_, s) => Array.from({ length: 100 }, (_, i) => podOf(s, i, true, '2026-01-01T00:00:02Z')));
  const stores = services.map(() => new FakeSliceStore());
  const endpoints: (Endpoints | undefined)[] = services.map(() => undefined);
  const sliceTimes: (TriggerTimeState | undefined)[] = [];
  const endpointsTimes: (TriggerTimeState | undefined)[] = [];
  const syncAll = () => {
    let sliceMs = 0;
    let endpointsMs = 0;
    let writes = 0;
    services.forEach((service, s) => {
      const existingSlices = stores[s].list().map(viaJson);
      const slices = timeIt(() => {
        const trigger = computeTriggerTime(sliceTimes[s], service, pods[s]);
        sliceTimes[s] = trigger.state;
        return reconcileEndpointSlices({ service, pods: pods[s], nodes, existingSlices, triggerTime: trigger.triggerTime });
      });
      sliceMs += slices.ms;
      const counts = stores[s].apply(slices.value);
      writes += counts.create + counts.update + counts.delete;
      const legacy = timeIt(() => {
        const trigger = computeTriggerTime(endpointsTimes[s], service, pods[s]);
        endpointsTimes[s] = trigger.state;
        return reconcileEndpoints({ namespace: 'default', name: service.metadata!.name!, service, pods: pods[s], existing: endpoints[s], triggerTime: trigger.triggerTime });
      });
      endpointsMs += legacy.ms;
      const { action } = legacy.value;
      if (action.type === 'create' || action.type === 'update') {
        endpoints[s] = viaJson({ ...action.endpoints, metadata: { ...action.endpoints.metadata, resourceVersion: String(s) } });
        writes += 1;
      }
    });
    return { sliceMs, endpointsMs, writes };
  };
  syncAll();
  const rounds: { sliceMs: number; endpointsMs: number; writes: number }[] = [];
  for (let round = 0; round < 20; round++) {
    const ready = round % 2 === 1;
    const since = `2026-01-01T00:01:${String(round).padStart(2, '0')}.${String(round * 7919).padStart(6, '0')}Z`;
    pods.forEach((group, s) => {
      for (let i = 0; i < 10; i++) group[(i * 10 + round) % 100] = podOf(s, (i * 10 + round) % 100, ready, since);
    });
    rounds.push(syncAll());
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const perSync = (ms: number) => `${((ms / services.length) * 1000).toFixed(0)} µs`;
  record('endpoint syncs of a flap (100 Services × 100 pods), EndpointSlice', `${perSync(median(rounds.map((r) => r.sliceMs)))} per Service (median of ${rounds.length} rounds)`);
  record('endpoint syncs of a flap (100 Services × 100 pods), Endpoints', `${perSync(median(rounds.map((r) => r.endpointsMs)))} per Service, ${rounds[0].writes} writes a round`);
}

function loadBalancer(): void {
  const pools = parsePools([pool('big', ['10.200.0.0/16'])]).pools;
  const services = Array.from({ length: 10_000 }, (_, i) => service(`svc-${i}`));
  const first = timeIt(() => allocate({ pools, services, current: new Map(), now: Date.now() }));
  const assigned = [...first.value.services.values()].filter((a) => a.outcome === 'assigned').length;
  record('lb allocator: 10k Services, first pass', `${first.ms.toFixed(0)} ms, ${assigned} assigned`);
  const again = timeIt(() => allocate({ pools, services, current: first.value.assignments, freedAt: first.value.freedAt, now: Date.now() }));
  const changed = [...again.value.services.values()].filter((a) => a.changed).length;
  record('lb allocator: 10k Services, steady-state pass', `${again.ms.toFixed(0)} ms, ${changed} changed`);
}

// `node dist-test/bench/run.js endpoint` runs the benchmarks whose names contain one of the arguments.
const benchmarks: Record<string, () => void | Promise<void>> = {
  workqueue: workQueue,
  endpointslice: endpointSlices,
  'endpoint-syncs': endpointSyncs,
  loadbalancer: loadBalancer,
  'update-cost': () => updateCostBenchmark(record),
  dataplane: () => dataplaneBenchmarks(record),
};
const wanted = process.argv.slice(2);
for (const [name, run] of Object.entries(benchmarks)) {
  if (wanted.length === 0 || wanted.some((part) => name.includes(part))) await run();
}
console.log(`\n${rows.length} figures (machine: ${process.arch}, node ${process.version}; shared machines are noisy, compare runs on one machine)`);
