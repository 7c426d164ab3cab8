// `make bench-compare`: kube-controller-manager's endpoint controllers against Switchboard's on the same workload,
// each side on a fresh control plane of the same build, one table per phase. It reports figures and never fails
// on time. Sizes by flags; --preset picks a named workload (default: 10 nodes in 3 zones, 100 Services × 100 pods).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeClient } from '../../controllers/runtime/client.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { ConvergenceWatcher } from './convergence.js';
import { ApiServerMetrics } from './metrics.js';
import { RssSampler, cpuSeconds, rssMiB } from './proc.js';
import { chartSvg, phaseTable, resultsJson, type PhaseFigures, type Results } from './report.js';
import { ALL_SIDES, SIDES, SIDE_TITLES, SWITCHBOARD_UNTHROTTLED_ARGS, startKcm, startSwitchboard, type RunningSide, type SideName } from './sides.js';
import { Workload, type PhaseWrites, type WorkloadSize } from './workload.js';

const PRESETS: Record<string, Partial<WorkloadSize>> = {
  default: { nodes: 10, zones: 3, services: 100, podsPerService: 100 },
  'one-big-service': { nodes: 10, zones: 3, services: 1, podsPerService: 5000 },
  small: { nodes: 3, zones: 3, services: 10, podsPerService: 20 },
  '50k': { nodes: 50, zones: 3, services: 500, podsPerService: 100 },
  // The SIG-scalability threshold's Service count, with few pods each: per-Service costs, and a create whose
  // Services each change seconds apart.
  'many-services': { nodes: 10, zones: 3, services: 10000, podsPerService: 2 },
};

function imageNodeOptions(): string {
  const dockerfile = readFileSync(fileURLToPath(new URL('../../../Dockerfile', import.meta.url)), 'utf8');
  return /NODE_OPTIONS=(\S+)/.exec(dockerfile)?.[1] ?? '';
}

const { values: flags } = parseArgs({
  options: {
    preset: { type: 'string', default: 'default' },
    nodes: { type: 'string' },
    zones: { type: 'string' },
    services: { type: 'string' },
    'pods-per-service': { type: 'string' },
    waves: { type: 'string', default: '4' },
    'flap-percent': { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '48' },
    sides: { type: 'string', default: SIDES.join(',') },
    // e.g. "create,flap" for a size where a rolling update would take too long on this machine
    phases: { type: 'string', default: 'create,rolling update,flap' },
    'quiet-seconds': { type: 'string', default: '3' },
    'timeout-seconds': { type: 'string', default: '300' },
    out: { type: 'string', default: 'bench-results' },
    // Default: the image's NODE_OPTIONS (Dockerfile), so Switchboard runs with the heap cap it is deployed with.
    'switchboard-node-options': { type: 'string', default: imageNodeOptions() },
    'switchboard-args': { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
});

if (flags.help) {
  console.log(`bench-compare [--preset ${Object.keys(PRESETS).join('|')}] [--nodes N --zones N --services N --pods-per-service N]
  [--waves 4] [--flap-percent 10] [--concurrency 48] [--sides ${ALL_SIDES.join(',')}] [--phases "create,rolling update,flap"]
  [--quiet-seconds 3] [--timeout-seconds 300]
  [--out bench-results] [--switchboard-node-options "--max-old-space-size=…"] [--switchboard-args "--flag=value …"]`);
  process.exit(0);
}

const preset = PRESETS[flags.preset];
if (!preset) throw new Error(`--preset: one of ${Object.keys(PRESETS).join(', ')}`);
const num = (v: string | undefined, fallback: number | undefined, name: string) => {
  const n = v === undefined ? fallback : Number(v);
  if (n === undefined || !Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number, got "${v}"`);
  return n;
};
const size: WorkloadSize = {
  nodes: num(flags.nodes, preset.nodes, 'nodes'),
  zones: num(flags.zones, preset.zones, 'zones'),
  services: num(flags.services, preset.services, 'services'),
  podsPerService: num(flags['pods-per-service'], preset.podsPerService, 'pods-per-service'),
  waves: num(flags.waves, 4, 'waves'),
  flapShare: num(flags['flap-percent'], 10, 'flap-percent') / 100,
  concurrency: num(flags.concurrency, 48, 'concurrency'),
};
const sides = flags.sides.split(',').map((s) => s.trim()) as SideName[];
for (const s of sides) if (!ALL_SIDES.includes(s)) throw new Error(`--sides: unknown side ${s} (known: ${ALL_SIDES.join(', ')})`);
const PHASES = ['create', 'rolling update', 'flap'];
const phaseNames = flags.phases.split(',').map((p) => p.trim());
for (const p of phaseNames) if (!PHASES.includes(p)) throw new Error(`--phases: unknown phase ${p} (known: ${PHASES.join(', ')})`);
if (phaseNames[0] !== 'create') throw new Error('--phases: the first phase must be create (the others change its pods)');
const quietMs = num(flags['quiet-seconds'], 3, 'quiet-seconds') * 1000;
const timeoutMs = num(flags['timeout-seconds'], 300, 'timeout-seconds') * 1000;
const words = (s: string) => s.split(/\s+/).filter(Boolean);

const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

async function runSide(side: SideName, results: Results): Promise<void> {
  log(`${SIDE_TITLES[side]}: starting a fresh control plane`);
  const controlPlane = await new LocalControlPlane({ kubeControllerManager: false }).start();
  let running: RunningSide | undefined;
  let watcher: ConvergenceWatcher | undefined;
  try {
    const client = KubeClient.fromFile(controlPlane.kubeconfig, 'bench-compare');
    const metrics = new ApiServerMetrics(controlPlane.kubeconfig);
    const workload = new Workload(client, size);
    await workload.setUp();
    const switchboardArgs = [...(side === 'switchboard-unthrottled' ? SWITCHBOARD_UNTHROTTLED_ARGS : []), ...words(flags['switchboard-args'])];
    running = side.startsWith('switchboard')
      ? await startSwitchboard(controlPlane, { nodeOptions: words(flags['switchboard-node-options']), extraArgs: switchboardArgs, logDir: controlPlane.info.dir })
      : await startKcm(controlPlane, side === 'kcm-unthrottled');
    watcher = new ConvergenceWatcher(client, workload);
    await watcher.start();
    const apiPid = controlPlane.apiServerPid!;
    const drivers: Record<string, () => Promise<PhaseWrites>> = {
      create: () => workload.create(),
      'rolling update': () => workload.rollingUpdate(),
      flap: () => workload.flap(),
    };
    const phases = phaseNames.map((name) => [name, drivers[name]] as const);
    for (const [phase, drive] of phases) {
      const before = { writes: await metrics.writes(), cpu: cpuSeconds(running.pid), api: cpuSeconds(apiPid), stale: running.staleCounts(), waits: await running.staleWaits(), throttle: await running.throttleSeconds() };
      const slicesHoldingChangedPods = phase === 'flap' ? watcher.slicesHolding(workload.flappingIPs()) : undefined;
      const rss = new RssSampler(running.pid);
      log(`${SIDE_TITLES[side]}: ${phase} …`);
      const driveStarted = Date.now();
      const driven = await drive();
      const driveSeconds = (driven.lastWriteAt - driveStarted) / 1000;
      const convergence = await watcher.waitForConvergence(driven.lastWriteAt, quietMs, timeoutMs);
      const peakRssMiB = rss.stop();
      const after = { writes: await metrics.writes(), cpu: cpuSeconds(running.pid), api: cpuSeconds(apiPid), stale: running.staleCounts(), waits: await running.staleWaits(), throttle: await running.throttleSeconds() };
      const live = running.liveHeapMiB();
      const figures: PhaseFigures = {
        convergenceSeconds: convergence.slicesSeconds === undefined ? undefined : Math.max(convergence.slicesSeconds, convergence.endpointsSeconds ?? 0),
        slicesConvergenceSeconds: convergence.slicesSeconds,
        endpointsConvergenceSeconds: convergence.endpointsSeconds,
        unconverged: convergence.unconverged.length,
        sliceWrites: after.writes.endpointSlices - before.writes.endpointSlices,
        endpointsWrites: after.writes.endpoints - before.writes.endpoints,
        controllerCpuSeconds: after.cpu - before.cpu,
        apiServerCpuSeconds: after.api - before.api,
        peakRssMiB,
        steadyRssMiB: rssMiB(running.pid),
        liveHeapMiB: live,
        livePerPodKiB: live === undefined ? undefined : (live * 1024) / workload.podCount,
        staleWaits: after.waits === undefined ? undefined : after.waits - (before.waits ?? 0),
        throttleSeconds: after.throttle === undefined ? undefined : after.throttle - (before.throttle ?? 0),
        staleSliceRetries: after.stale.slices - before.stale.slices,
        staleEndpointsRetries: after.stale.endpoints - before.stale.endpoints,
        droppedKeys: after.stale.dropped - before.stale.dropped,
        podChanges: driven.writes,
        slicesHoldingChangedPods,
        driveSeconds,
      };
      if (!results.has(phase)) results.set(phase, new Map());
      results.get(phase)!.set(side, figures);
      const conv = figures.convergenceSeconds === undefined ? `not converged (${figures.unconverged} Services)` : `${figures.convergenceSeconds.toFixed(2)} s`;
      log(`${SIDE_TITLES[side]}: ${phase}: converged ${conv}, writes ${figures.sliceWrites} + ${figures.endpointsWrites}, CPU ${figures.controllerCpuSeconds.toFixed(1)} s`);
    }
  } finally {
    await watcher?.stop();
    await running?.stop();
    await controlPlane.stop();
  }
}

const results: Results = new Map();
const started = Date.now();
for (const side of sides) await runSide(side, results);

const pods = size.services * size.podsPerService;
const title = `${size.services} Services × ${size.podsPerService} pods (${pods} pods), ${size.nodes} nodes in ${size.zones} zones`;
const command = `node dist-test/bench/compare/main.js ${process.argv.slice(2).join(' ')}`.trim();
console.log(`\n## bench-compare: ${title}\n\nCommand: \`${command}\` (Switchboard with \`${flags['switchboard-node-options'] || 'no node options'}\`); rolling update in ${size.waves} waves; flap: ${Math.round(size.flapShare * 100)}% not-ready and back. SB = Switchboard.\n`);
for (const [phase, bySide] of results) console.log(`${phaseTable(phase, bySide)}\n`);
mkdirSync(flags.out, { recursive: true });
const base = join(flags.out, `compare-${flags.preset}${pods !== (preset.services ?? 0) * (preset.podsPerService ?? 0) ? `-${pods}` : ''}`);
const meta = { title, command, size, sides, switchboardNodeOptions: flags['switchboard-node-options'], machine: { arch: process.arch, node: process.version }, seconds: Math.round((Date.now() - started) / 1000), at: new Date().toISOString() };
writeFileSync(`${base}.json`, resultsJson(meta, results));
writeFileSync(`${base}.svg`, chartSvg(title, results));
console.log(`Wrote ${base}.json and ${base}.svg (${meta.seconds} s in all).`);
