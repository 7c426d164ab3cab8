// Benchmarks that print figures (never pass/fail on time): the work queue, the EndpointSlice
// reconciler at scale, the LoadBalancer allocator, and (as root) the data plane (bench/dataplane.ts). Run with
// `make bench`.
import { performance } from 'node:perf_hooks';
import { WorkQueue } from '../controllers/runtime/workqueue.js';
import { reconcileEndpointSlices } from '../controllers/endpointslice/reconciler.js';
import { FakeSliceStore, makeNode, makePods, makeService } from '../testing/endpoint-objects.js';
import { allocate } from '../allocators/loadbalancer/allocator.js';
import { parsePools } from '../allocators/loadbalancer/pools.js';
import { pool, service } from '../testing/lb.js';
import { dataplaneBenchmarks } from './dataplane.js';

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

await workQueue();
endpointSlices();
loadBalancer();
await dataplaneBenchmarks(record);
console.log(`\n${rows.length} figures (machine: ${process.arch}, node ${process.version}; shared machines are noisy, compare runs on one machine)`);
