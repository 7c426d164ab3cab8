// `node dist/cmd/up/controlplane/cli.js build|start`: builds the pinned binaries and helm (CI warms its cache
// with it) or starts a local control plane until Ctrl-C, printing its kubeconfig.
import { ensureBinaries, ensureHelm } from './binaries.js';
import { LocalControlPlane } from './controlplane.js';

const log = (line: string) => console.log(line);

async function main(command: string | undefined): Promise<void> {
  if (command === 'build') {
    const bins = await ensureBinaries(log);
    log(`Binaries ready in ${bins.dir}`);
    log(`helm ready: ${await ensureHelm(log)}`);
    return;
  }
  if (command === 'start') {
    const cp = await new LocalControlPlane({ log }).start();
    log(`export KUBECONFIG=${cp.kubeconfig}`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await cp.stop();
    return;
  }
  throw new Error('usage: cli.js build|start');
}

main(process.argv[2]).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
