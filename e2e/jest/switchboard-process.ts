// `switchboard` processes for integration tests: the built executable (dist/cmd/switchboard.js) run as a child with its
// JSON log lines collected, the flags a test replica needs for fast leader election, and waiting/stopping helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { eventually } from './cluster.js';

export const SWITCHBOARD_BIN = fileURLToPath(new URL('../../dist/cmd/switchboard.js', import.meta.url));

export interface SwitchboardProcess {
  id: string;
  child: ChildProcess;
  /** Every line it wrote to stdout and stderr, in order (the logs are JSON lines on stderr). */
  output: string[];
}

/** Throws when the executable has not been built (`npm test` builds it first). */
export function requireBuiltSwitchboard(): void {
  if (!existsSync(SWITCHBOARD_BIN)) throw new Error(`${SWITCHBOARD_BIN} is missing: run \`npm run build\` first (npm test does)`);
}

/** Starts `switchboard <args…>`, e.g. `['controller', '--kubeconfig=…']`; `id` names it in test output. */
export function spawnSwitchboard(id: string, args: string[], env: NodeJS.ProcessEnv = {}): SwitchboardProcess {
  const child = spawn(process.execPath, [SWITCHBOARD_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const output: string[] = [];
  const collect = (b: Buffer) => output.push(...b.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  return { id, child, output };
}

export interface ReplicaTimings {
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
}

/**
 * The flags of a `switchboard controller` replica in a test: its kubeconfig, its namespace (Lease), an identity,
 * leader election a few seconds long, and metrics in plain HTTP on a free loopback port.
 */
export function replicaFlags(kubeconfig: string, namespace: string, id: string, timings: ReplicaTimings = { leaseDuration: '4s', renewDeadline: '3s', retryPeriod: '500ms' }): string[] {
  return [
    'controller',
    `--kubeconfig=${kubeconfig}`,
    `--namespace=${namespace}`,
    `--leader-elect-id=${id}`,
    `--leader-elect-lease-duration=${timings.leaseDuration}`,
    `--leader-elect-renew-deadline=${timings.renewDeadline}`,
    `--leader-elect-retry-period=${timings.retryPeriod}`,
    '--metrics-bind-address=127.0.0.1:0',
    // Tests scrape it with plain fetch (the secured port has its own test: e2e/deploy/secure-metrics.int.test.ts).
    '--metrics-secure=false',
  ];
}

/** Flags that leave the endpoint controllers out of a replica that tests something else. */
export const ENDPOINT_CONTROLLERS_OFF = ['--endpointslice-controller=false', '--endpoints-controller=false', '--endpointslice-mirroring-controller=false'];

/** Whether the process has started its controllers (it leads, or runs without leader election). */
export const leads = (p: SwitchboardProcess): boolean => p.output.some((l) => l.includes('"starting controllers"'));

export const exited = (p: SwitchboardProcess): boolean => p.child.exitCode !== null || p.child.signalCode !== null;

/** Waits until a line of its output contains `text`; fails at once, with its last lines, if it exits first. */
export async function waitForOutput(p: SwitchboardProcess, text: string, timeoutMs = 60_000): Promise<void> {
  await eventually(() => {
    if (exited(p)) throw new Error(`${p.id} exited:\n${p.output.slice(-20).join('\n')}`);
    return p.output.some((l) => l.includes(text));
  }, timeoutMs);
}

/** Sends `signal` and resolves once it has exited (at once if it already has). */
export function stopSwitchboard(p: SwitchboardProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (exited(p)) return Promise.resolve();
  return new Promise((resolve) => {
    p.child.once('exit', () => resolve());
    p.child.kill(signal);
  });
}
