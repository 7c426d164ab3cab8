// The contestants: kube-controller-manager's three endpoint controllers (with its default client limits, or with
// them lifted) and `switchboard controller` with only its endpoint controllers doing work. Each runs as its own
// process against a fresh control plane; the harness reads its pid (CPU, RSS) and its log (stale-cache retries).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPLACED_CONTROLLERS, type LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';

export type SideName = 'kcm-default' | 'kcm-unthrottled' | 'switchboard' | 'switchboard-unthrottled';
/** The sides run by default; `switchboard-unthrottled` (client QPS limit off) is there to measure that limit. */
export const SIDES: readonly SideName[] = ['kcm-default', 'kcm-unthrottled', 'switchboard'];
export const ALL_SIDES: readonly SideName[] = [...SIDES, 'switchboard-unthrottled'];
export const SIDE_TITLES: Record<SideName, string> = {
  'kcm-default': 'KCM default',
  'kcm-unthrottled': 'KCM unthrottled',
  switchboard: 'Switchboard',
  'switchboard-unthrottled': 'Switchboard, QPS off',
};
/** `switchboard controller --kube-api-qps=0`: the client's token bucket off, as KCM unthrottled. */
export const SWITCHBOARD_UNTHROTTLED_ARGS = ['--kube-api-qps=0'];

/** Retries because the controller's cache lagged its own writes, by controller, and keys given up on. */
export interface StaleCounts {
  slices: number;
  endpoints: number;
  dropped: number;
}

export interface RunningSide {
  pid: number;
  staleCounts(): StaleCounts;
  /** Syncs that found the cache behind their own writes and waited for it: Switchboard only (its metrics). */
  staleWaits(): Promise<number | undefined>;
  /** Seconds requests waited for client QPS/burst tokens, summed: Switchboard only (its metrics). */
  throttleSeconds(): Promise<number | undefined>;
  /** V8 heap after the latest full collection (MiB): Switchboard only (from --trace-gc). */
  liveHeapMiB(): number | undefined;
  stop(): Promise<void>;
}

const SWITCHBOARD_BIN = fileURLToPath(new URL('../../../dist/cmd/switchboard.js', import.meta.url));

/** "informer cache is out of date" is upstream's StaleInformerCache text and Switchboard's StaleCacheError text. */
function countStale(log: string, slicesLine: RegExp, endpointsLine: RegExp, droppedLine: RegExp): StaleCounts {
  let slices = 0;
  let endpoints = 0;
  let dropped = 0;
  for (const line of log.split('\n')) {
    if (droppedLine.test(line)) dropped++;
    if (!line.includes('informer cache is out of date')) continue;
    if (slicesLine.test(line)) slices++;
    else if (endpointsLine.test(line)) endpoints++;
  }
  return { slices, endpoints, dropped };
}

export async function startKcm(controlPlane: LocalControlPlane, unthrottled: boolean): Promise<RunningSide> {
  // --v=2: the Endpoints controller logs its retries at V(2) (the slice controller at V(0)).
  const limits = unthrottled ? ['--kube-api-qps=100000', '--kube-api-burst=100000'] : ['--kube-api-qps=20', '--kube-api-burst=30'];
  const kcm = await controlPlane.startControllerManager('endpoints', REPLACED_CONTROLLERS, [...limits, '--v=2']);
  return {
    pid: kcm.pid!,
    staleCounts: () => countStale(readFileSync(kcm.logFile, 'utf8'), /Error syncing endpoint slices/, /Error syncing endpoints/, /Dropping (service|endpoints?) .*out of the queue/i),
    liveHeapMiB: () => undefined,
    staleWaits: async () => undefined,
    throttleSeconds: async () => undefined,
    stop: () => kcm.stop(),
  };
}

export interface SwitchboardSideOptions {
  nodeOptions: string[];
  extraArgs: string[];
  logDir: string;
}

export async function startSwitchboard(controlPlane: LocalControlPlane, options: SwitchboardSideOptions): Promise<RunningSide> {
  const args = [
    ...options.nodeOptions,
    '--trace-gc',
    SWITCHBOARD_BIN,
    'controller',
    `--kubeconfig=${controlPlane.kubeconfig}`,
    '--leader-elect=false',
    '--namespace=default',
    '--metrics-bind-address=127.0.0.1:0',
    '--metrics-secure=false', // the harness reads switchboard_stale_cache_waits over plain HTTP
    '--load-balancer-controller=false', // allocation is off too: it needs --webhook-url
    ...options.extraArgs,
  ];
  const logFile = join(options.logDir, 'switchboard.log');
  const log = createWriteStream(logFile);
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let live: number | undefined;
  let metricsPort: number | undefined;
  let output = '';
  const started = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`switchboard exited (${code}) before starting its controllers:\n${output.slice(-3000)}`)));
    const onData = (b: Buffer) => {
      const text = b.toString();
      log.write(text);
      if (output.length < 1e6) output += text;
      // --trace-gc: "Mark-Compact 95.3 (120.1) -> 80.2 (110.0) MB": the heap after a full collection is the live set.
      for (const m of text.matchAll(/Mark-Compact(?: \(reduce\))? [\d.]+ \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/g)) live = Number(m[1]);
      const port = /"serving metrics and health".*?"port":(\d+)/.exec(text);
      if (port) metricsPort = Number(port[1]);
      if (text.includes('"starting controllers"')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  });
  await started;
  /** The sum of every series of a metric (lines starting with `name`) on Switchboard's /metrics. */
  const sumOfMetric = async (name: string): Promise<number | undefined> => {
    if (!metricsPort) return undefined;
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    return sum;
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid!,
    staleCounts: () => countStale(readFileSync(logFile, 'utf8'), /"controller":"endpoint_slice"/, /"controller":"endpoint"/, /dropping key until it changes/),
    liveHeapMiB: () => live,
    staleWaits: () => sumOfMetric('switchboard_stale_cache_waits'),
    throttleSeconds: () => sumOfMetric('switchboard_api_rate_limiter_duration_seconds_sum'),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      log.end();
    },
  };
}
