// `node dist/cmd/up/controlplane/cli.js build|start [--service-cluster-ip-range=<v4>[,<v6>]]`: builds the pinned
// binaries, kube-proxy, CoreDNS and helm included (CI warms its cache with it), or starts a local control plane until
// Ctrl-C, printing its kubeconfig; two CIDRs, one per family, make it dual-stack.
import { ensureBinaries, ensureDataplaneBinaries, ensureHelm } from './binaries.js';
import { LocalControlPlane } from './controlplane.js';

const log = (line: string) => console.log(line);

const RANGE_FLAG = '--service-cluster-ip-range=';

async function main(command: string | undefined, flags: string[]): Promise<void> {
  if (command === 'build') {
    const bins = await ensureBinaries(log);
    log(`Binaries ready in ${bins.dir}`);
    const dataplane = await ensureDataplaneBinaries(log);
    log(`kube-proxy: ${dataplane.kubeProxy}, CoreDNS: ${dataplane.coredns}`);
    log(`helm ready: ${await ensureHelm(log)}`);
    return;
  }
  if (command === 'start') {
    const range = flags.find((f) => f.startsWith(RANGE_FLAG))?.slice(RANGE_FLAG.length);
    const unknown = flags.filter((f) => !f.startsWith(RANGE_FLAG));
    if (unknown.length > 0) throw new Error(`unknown flags: ${unknown.join(' ')}`);
    const cp = await new LocalControlPlane({ log, ...(range ? { serviceClusterIPRange: range } : {}) }).start();
    log(`export KUBECONFIG=${cp.kubeconfig}`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await cp.stop();
    return;
  }
  throw new Error(`usage: cli.js build|start [${RANGE_FLAG}<v4>[,<v6>]]`);
}

main(process.argv[2], process.argv.slice(3)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
