// The data plane's figures, Switchboard's endpoint controllers beside kube-controller-manager's in one run on one lab
// (e2e/dataplane/): network programming latency (a pod turning Ready → the first request through kube-proxy that
// reaches it) and failed requests during a rolling update under load. Needs root and network namespaces; says why
// and prints nothing else otherwise. SWITCHBOARD_BENCH_PODS sets the pod count of the latency run (default 200).
import { Namespaces } from '../api/resources.js';
import { DataplaneCluster, dataplaneUnavailable, percentile, programmingLatency, rollingUpdate, type EndpointControllers } from '../e2e/dataplane/cluster.js';

export async function dataplaneBenchmarks(record: (benchmark: string, figure: string) => void): Promise<void> {
  const why = dataplaneUnavailable();
  if (why) {
    record('dataplane: programming latency, rolling update', `skipped: ${why}`);
    return;
  }
  const count = Number(process.env.SWITCHBOARD_BENCH_PODS ?? 200);
  const cluster = new DataplaneCluster();
  try {
    await cluster.start();
    await cluster.client.create(Namespaces, { metadata: { name: 'bench' } });
    const controllers: EndpointControllers[] = ['switchboard', 'kube-controller-manager'];
    for (const which of controllers) {
      const latencies = await programmingLatency(cluster, which, { namespace: 'bench', count, intervalMs: 10 });
      record(
        `dataplane: pod Ready → first request reaches it (${which})`,
        `p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${latencies[latencies.length - 1]} ms over ${latencies.length} pods`,
      );
    }
    for (const which of controllers) {
      const r = await rollingUpdate(cluster, which, { namespace: 'bench', replicas: 12, wave: 2, durationMs: 60_000, intervalMs: 20, readinessDelayMs: 1000, availableAfterMs: 2000, terminationMs: 500 });
      record(`dataplane: rolling update, 12 pods in waves of 2 (old ones deleted after the new were ready 2 s), 50 req/s for 60 s (${which})`, `${r.failed} of ${r.requests} requests failed ${JSON.stringify(r.errors)}`);
    }
  } finally {
    await cluster.stop();
  }
}
