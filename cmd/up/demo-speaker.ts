// The demo's network part (only where it may: root with network namespaces): one "node" namespace running a
// real `switchboard speaker` for node-0 and a client namespace on one bridge; `arping` from the client for the
// LoadBalancer address must be answered with the node's MAC. Everything it makes is removed before it returns.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess } from './controlplane/processes.js';
import { FORWARDER, NetLab, inNs, netlabUnavailable, runAsync } from './netlab.js';
import type { DemoRow } from './demo.js';

const SWITCHBOARD = fileURLToPath(new URL('../switchboard.js', import.meta.url));

export interface SpeakerDemoOptions {
  kubeconfig: string;
  apiPort: number;
  namespace: string;
  nodeName: string;
  address: string;
  say(line: string): void;
}

export async function speakerDemo(o: SpeakerDemoOptions): Promise<DemoRow> {
  const row = (result: string): DemoRow => ({ job: 'L2 speaker (ARP)', object: `arping ${o.address}`, result });
  const why = netlabUnavailable() ?? (spawnSync('sh', ['-c', 'command -v arping']).status === 0 ? undefined : 'arping is not installed');
  if (why) return row(`skipped: ${why}`);

  o.say(`demo: a speaker for ${o.nodeName} in a network namespace, and arping from a client namespace…`);
  const work = mkdtempSync(join(tmpdir(), 'sb-demo-l2-'));
  const lab = new NetLab();
  const processes: ManagedProcess[] = [];
  try {
    lab.create(1);
    const [node] = lab.nodes;
    const socket = join(work, 'api.sock');
    const start = (name: string, cmd: string[]) => processes.push(ManagedProcess.start(name, cmd[0], cmd.slice(1), join(work, `${name}.log`)));
    // A namespace has its own loopback: the speaker reaches the API server through a Unix socket.
    start('forwarder-root', [process.execPath, '-e', FORWARDER, socket, String(o.apiPort)]);
    start('forwarder-node', inNs(node.ns, process.execPath, '-e', FORWARDER, String(o.apiPort), socket));
    start('speaker', inNs(node.ns, process.execPath, SWITCHBOARD, 'speaker', `--node-name=${o.nodeName}`, `--kubeconfig=${o.kubeconfig}`, `--namespace=${o.namespace}`, '--metrics-bind-address=0', '--log-level=warn'));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const out = await runAsync(inNs(lab.client!.ns, 'arping', '-c', '1', '-w', '1', '-I', 'eth0', o.address));
      const reply = /reply from \S+ \[([0-9a-f:]+)\]/i.exec(out);
      if (reply) {
        const from = reply[1].toLowerCase();
        return row(`reply from ${from}${from === node.mac ? ` (${o.nodeName}'s eth0)` : ` (expected ${node.mac})`}`);
      }
      if (!processes.every((p) => p.running)) return row(`failed: a helper process exited (logs in ${work})`);
    }
    return row('no answer within 30 s');
  } catch (err) {
    return row(`failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const p of processes.reverse()) await p.kill();
    lab.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}
