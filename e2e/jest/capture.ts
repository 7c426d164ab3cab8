// Watching the L2 network of a netlab namespace: tcpdump's frames as they come, and ARP and NDP probers, for the speaker
// tests (controllers/speaker/l2-network.int.test.ts, e2e/dataplane/handover.int.test.ts).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { inNs } from '../../cmd/up/netlab.js';

/** One frame as tcpdump -tt -e -n prints it. */
export interface Frame {
  ms: number;
  src: string;
  dst: string;
  text: string;
}

/** tcpdump on eth0 of a namespace, lines parsed as they come. */
export class Capture {
  readonly frames: Frame[] = [];
  private constructor(private readonly child: ChildProcessWithoutNullStreams) {}

  static async start(ns: string, filter: string): Promise<Capture> {
    const child = spawn('ip', inNs(ns, 'tcpdump', '-i', 'eth0', '-n', '-e', '-l', '-tt', '-U', filter).slice(1));
    const capture = new Capture(child);
    let buffered = '';
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^(\d+\.\d+) ([0-9a-f:]{17}) > ([0-9a-f:]{17}), (.*)$/.exec(line);
        if (m) capture.frames.push({ ms: Number(m[1]) * 1000, src: m[2], dst: m[3], text: m[4] });
      }
    });
    await new Promise<void>((ready, fail) => {
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('listening on')) ready();
      });
      child.on('exit', (code) => fail(new Error(`tcpdump exited (${code}): ${err}`)));
    });
    return capture;
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

/** An ARP frame of `mac` saying it holds `vip`: a reply, or a gratuitous request. */
export const isArpFrom = (f: Frame, vip: string, mac: string): boolean => f.src === mac && (f.text.includes(`Reply ${vip} is-at`) || f.text.includes(`tell ${vip},`));

/** A neighbor advertisement of `mac` for `vip`: an answer, or unsolicited (to all nodes). */
export const isNdpFrom = (f: Frame, vip: string, mac: string): boolean => f.src === mac && f.text.includes(`neighbor advertisement, tgt is ${vip},`);

/**
 * Solicits `vip` from `ns` every `everyMs` until stopped: one ndisc6 (one solicitation, from the namespace's own
 * address, so the answers come back unicast) started each time, so a slow answer does not hold the next one back.
 */
export function ndpProbe(ns: string, vip: string, everyMs = 100): () => Promise<void> {
  const loop = `while :; do ndisc6 -q -n -r 1 -w 200 ${vip} eth0 >/dev/null 2>&1 & sleep ${everyMs / 1000}; done`;
  const child = spawn('ip', inNs(ns, 'sh', '-c', loop).slice(1), { stdio: 'ignore', detached: true });
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    if (child.pid) process.kill(-child.pid, 'SIGTERM');
    await exited;
  };
}

/**
 * Probes `vip` from `ns` about every `everyMs` until stopped: staggered `arping -b` (its interval is whole seconds).
 * Broadcast ARP, so a new owner is heard even by a host that knows the old MAC.
 */
export function arpProbe(ns: string, vip: string, seconds: number, everyMs = 100): () => Promise<void> {
  const children: ReturnType<typeof spawn>[] = [];
  let stopped = false;
  const started = (async () => {
    for (let i = 0; i < Math.round(1000 / everyMs) && !stopped; i++) {
      children.push(spawn('ip', inNs(ns, 'arping', '-b', '-c', String(seconds), '-I', 'eth0', vip).slice(1), { stdio: 'ignore' }));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return async () => {
    stopped = true;
    await started;
    for (const c of children) c.kill('SIGTERM');
  };
}
