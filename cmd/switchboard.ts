#!/usr/bin/env node
// switchboard: the one executable. `controller` runs the controllers and webhook (leader-elected),
// `speaker` runs the per-node L2 announcer, `up` is the embedded default (a local control plane, the
// operator against it, and a demo).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KubeClient, userAgent } from '../controllers/runtime/client.js';
import { createLogger, type LogLevel } from '../controllers/runtime/log.js';
import { Manager, defaultIdentity, shutdownSignal } from '../controllers/runtime/manager.js';
import { shutdownTelemetry } from '../controllers/runtime/telemetry.js';
import { Namespaces } from '../api/resources.js';
import { LocalControlPlane, WEBHOOK_CLIENT_NAME } from './up/controlplane/controlplane.js';
import { freePort } from './up/controlplane/processes.js';
import { DEMO_NAMESPACE, formatRows, runDemo, type DemoRow } from './up/demo.js';
import { speakerDemo } from './up/demo-speaker.js';
import { dataplaneDemo } from './up/demo-dataplane.js';
import { clientFlagHelp, clientFlags, clientTuning, metricsFlagHelp, metricsFlags, parseBool, parseDuration, secureMetrics } from './flags.js';
import { jobs } from './jobs/index.js';
import { runSpeaker } from './speaker.js';
import type { FlagValues } from './jobs/job.js';

const USAGE = `Usage: switchboard <command> [flags]

Commands:
  controller   run the controllers (leader-elected) against $KUBECONFIG or the in-cluster config
  speaker      run the per-node L2 speaker (ARP/NDP)
  up           run Switchboard: against $KUBECONFIG if set, else on a local control plane it starts
  help         show this text

Run "switchboard <command> --help" for a command's flags.`;

const controllerFlags = {
  kubeconfig: { type: 'string', default: process.env.KUBECONFIG ?? '' },
  namespace: { type: 'string', default: process.env.POD_NAMESPACE ?? 'switchboard-system' },
  'leader-elect': { type: 'string', default: 'true' },
  'leader-elect-lease-duration': { type: 'string', default: '15s' },
  'leader-elect-renew-deadline': { type: 'string', default: '10s' },
  'leader-elect-retry-period': { type: 'string', default: '2s' },
  'leader-elect-id': { type: 'string', default: '' },
  'leader-elect-lease-name': { type: 'string', default: 'switchboard-controller' },
  'metrics-bind-address': { type: 'string', default: ':8080' },
  ...metricsFlags,
  // kube-controller-manager's 20/30 is per controller (each has its own client); this one client serves the three
  // endpoint controllers, the claim and LoadBalancer controllers and the admission webhook's claim writes. Measured:
  // at 100/150 the claim controller needed ~20 s to bind the claims of a 1000-Service burst, and a killed replica's
  // leaked claims waited behind them (17-24 s instead of ~1.5 s); at 400/600 they are freed in ~1.4 s.
  ...clientFlags({ qps: 400, burst: 600 }),
  'log-level': { type: 'string', default: process.env.SWITCHBOARD_LOG_LEVEL ?? 'info' },
  help: { type: 'boolean', default: false },
} satisfies ParseArgsConfig['options'];

type ControllerFlags = { [K in keyof typeof controllerFlags]: (typeof controllerFlags)[K]['default'] } & FlagValues;

/** Every job's own flags, in parseArgs form and with their help lines. */
const jobFlags: ParseArgsConfig['options'] = Object.fromEntries(
  jobs.flatMap((j) => Object.entries(j.flags).map(([name, f]) => [name, { type: f.type, default: f.default }])),
);
const jobFlagHelp: Record<string, string> = Object.fromEntries(jobs.flatMap((j) => Object.entries(j.flags).map(([name, f]) => [name, f.help])));

const flagHelp: Record<keyof typeof controllerFlags, string> = {
  kubeconfig: 'kubeconfig file; empty means $KUBECONFIG, ~/.kube/config, then the in-cluster config',
  namespace: 'namespace of the leader-election Lease and of Switchboard’s own objects',
  'leader-elect': 'elect one active replica through a coordination.k8s.io Lease',
  'leader-elect-lease-duration': 'how long followers wait after the last renewal before taking over',
  'leader-elect-renew-deadline': 'how long the leader keeps trying to renew before it steps down',
  'leader-elect-retry-period': 'how often candidates try to acquire and the leader renews',
  'leader-elect-id': 'identity in the Lease; empty means hostname_random',
  'leader-elect-lease-name': 'name of the leader-election Lease',
  'metrics-bind-address': 'host:port serving /metrics, /healthz and /readyz; "0" disables',
  ...metricsFlagHelp,
  ...clientFlagHelp,
  'log-level': 'debug, info, warn or error',
  help: 'show the flags',
};

function helpFor(command: string, flags: Record<string, { default?: unknown }>, help: Record<string, string>): string {
  const lines = Object.entries(flags).map(([name, f]) => `  --${name.padEnd(30)} ${help[name] ?? ''}${f.default !== undefined && f.default !== '' && f.default !== false ? ` (default ${JSON.stringify(f.default)})` : ''}`);
  return `Usage: switchboard ${command} [flags]\n\nFlags:\n${lines.join('\n')}`;
}

function parseControllerFlags(args: string[]): ControllerFlags {
  const { values } = parseArgs({ args, options: { ...controllerFlags, ...jobFlags }, strict: true, allowPositionals: false });
  return values as ControllerFlags;
}

/** `identity` goes into the User-Agent, so the audit log tells replicas under one ServiceAccount apart. */
function clientFor(flags: ControllerFlags, identity: string): KubeClient {
  const tuning = { ...clientTuning(flags), userAgent: userAgent(`switchboard-controller/${identity}`) };
  return flags.kubeconfig ? KubeClient.fromFile(flags.kubeconfig, undefined, tuning) : KubeClient.fromDefault(undefined, tuning);
}

/** Runs the controller manager until SIGTERM/SIGINT or `signal`; returns the process exit code. */
async function runController(flags: ControllerFlags, signal: AbortSignal): Promise<number> {
  const log = createLogger('switchboard', { level: flags['log-level'] as LogLevel });
  const identity = flags['leader-elect-id'] || defaultIdentity();
  const client = clientFor(flags, identity);
  const manager = new Manager({
    client,
    log,
    component: 'switchboard-controller',
    metricsAddress: flags['metrics-bind-address'] === '0' ? '' : flags['metrics-bind-address'],
    secureMetrics: secureMetrics(flags),
    leaderElection: {
      enabled: parseBool(flags['leader-elect'], 'leader-elect'),
      namespace: flags.namespace,
      leaseName: flags['leader-elect-lease-name'],
      identity,
      leaseDurationMs: parseDuration(flags['leader-elect-lease-duration'], 'leader-elect-lease-duration'),
      renewDeadlineMs: parseDuration(flags['leader-elect-renew-deadline'], 'leader-elect-renew-deadline'),
      retryPeriodMs: parseDuration(flags['leader-elect-retry-period'], 'leader-elect-retry-period'),
    },
  });
  for (const job of jobs) await job.register(manager, flags, { namespace: flags.namespace });
  log.info('switchboard controller starting', { server: client.server, identity: manager.identity, namespace: flags.namespace, jobs: jobs.map((j) => j.name) });
  const outcome = await manager.run(signal);
  client.close();
  return outcome === 'stopped' ? 0 : 1;
}

const upFlags = {
  ...controllerFlags,
  ...jobFlags,
  // A local, single-user run: /metrics in plain HTTP (curl it as is); --metrics-secure=true secures it as in a cluster.
  'metrics-secure': { type: 'string', default: 'false' },
  once: { type: 'boolean', default: false },
} satisfies ParseArgsConfig['options'];

async function up(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: upFlags, strict: true, allowPositionals: false });
  if (values.help) {
    console.log(helpFor('up', upFlags, { ...flagHelp, ...jobFlagHelp, once: 'start, show the demo, then stop (for scripts and CI)' }));
    return 0;
  }
  const flags = { ...(values as ControllerFlags), 'leader-elect': 'false' };
  const signal = shutdownSignal(createLogger('switchboard'));
  if (flags.kubeconfig) {
    console.log(`Running Switchboard against ${flags.kubeconfig}.`);
    return runController(flags, signal);
  }

  const say = (line: string) => console.log(line);
  const controlPlane = new LocalControlPlane({ log: say });
  say('No $KUBECONFIG: starting a local control plane (etcd + kube-apiserver + kube-controller-manager on 127.0.0.1)…');
  await controlPlane.start();
  const stop = new AbortController();
  signal.addEventListener('abort', () => stop.abort(), { once: true });
  try {
    const info = controlPlane.info;
    const client = KubeClient.fromFile(info.kubeconfig);
    await client.createIfAbsent(Namespaces, { metadata: { name: flags.namespace } });
    const webhookPort = await freePort();
    const running = runController(
      {
        ...flags,
        kubeconfig: info.kubeconfig,
        'metrics-bind-address': values.once ? '0' : flags['metrics-bind-address'],
        // The API server calls the allocation webhook on loopback; it must run for every Service write.
        'webhook-url': `https://127.0.0.1:${webhookPort}`,
        'webhook-bind-address': `127.0.0.1:${webhookPort}`,
        // Only the API server may call it: it presents the client certificate the control plane made for it.
        'webhook-client-ca-file': info.webhookClientCAFile,
        'webhook-client-names': WEBHOOK_CLIENT_NAME,
      },
      stop.signal,
    );
    let rows: DemoRow[] = [];
    try {
      rows = await runDemo({
        client,
        say,
        kubectl: (args, input) => controlPlane.kubectl(args, input),
        arping: (address) =>
          speakerDemo({ kubeconfig: info.kubeconfig, apiPort: Number(new URL(info.server).port), namespace: flags.namespace, nodeName: 'node-0', address, say }),
        traffic: () =>
          dataplaneDemo({
            client,
            kubeconfig: info.kubeconfig,
            apiPort: Number(new URL(info.server).port),
            namespace: DEMO_NAMESPACE,
            speakerNamespace: flags.namespace,
            nodeNames: ['node-0', 'node-1', 'node-2'],
            say,
          }),
      });
    } catch (err) {
      say(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
      stop.abort();
      await running;
      return 1;
    } finally {
      client.close();
    }
    say('');
    say('Switchboard is running on a local control plane:');
    say(formatRows(rows));
    say('');
    say(`  API server:   ${info.server}`);
    say(`  Service CIDR: ${info.serviceClusterIPRange}   NodePorts: ${info.serviceNodePortRange}`);
    say('Explore it with kubectl:');
    say(`  export KUBECONFIG=${info.kubeconfig}`);
    say(`  ${info.kubectl} -n ${DEMO_NAMESPACE} get services,endpointslices,endpoints`);
    say(`  ${info.kubectl} get serviceclaims,ipaddresspools`);
    if (values.once) stop.abort();
    else say('Press Ctrl-C to stop Switchboard and the control plane.');
    return await running;
  } finally {
    stop.abort();
    await controlPlane.stop();
    say('Stopped the local control plane.');
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'controller': {
      const flags = parseControllerFlags(args);
      if (flags.help) {
        console.log(helpFor('controller', { ...controllerFlags, ...jobFlags }, { ...flagHelp, ...jobFlagHelp }));
        return 0;
      }
      return runController(flags, shutdownSignal(createLogger('switchboard')));
    }
    case 'speaker':
      return runSpeaker(args);
    case 'up':
      return up(args);
    case undefined:
      return up([]);
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`switchboard: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  // Spans and metrics still held by the OTLP exporters go out before the process ends.
  (code) => shutdownTelemetry().finally(() => process.exit(code)),
  (err: unknown) => {
    console.error(`switchboard: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
