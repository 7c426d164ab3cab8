// `switchboard speaker`: the per-node L2 announcer (ARP/NDP), run by the DaemonSet with hostNetwork, NET_RAW and NET_ADMIN.
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KubeClient, userAgent } from '../controllers/runtime/client.js';
import { createLogger, type LogLevel } from '../controllers/runtime/log.js';
import { Manager, shutdownSignal } from '../controllers/runtime/manager.js';
import { DEFAULT_HEARTBEAT_PORT } from '../controllers/speaker/heartbeat.js';
import { DEFAULT_EXCLUDE_PATTERNS, parseNameList } from '../controllers/speaker/interfaces.js';
import { loadAddon } from '../controllers/speaker/raw-socket.js';
import { Speaker, type SpeakerOptions } from '../controllers/speaker/speaker.js';
import { DEFAULT_LOAD_BALANCER_CLASS } from '../allocators/loadbalancer/service-request.js';
import { clientFlagHelp, clientFlags, clientTuning, metricsFlagHelp, metricsFlags, parseBool, parseDuration, secureMetrics } from './flags.js';

const speakerFlags = {
  'node-name': { type: 'string', default: process.env.NODE_NAME ?? '' },
  kubeconfig: { type: 'string', default: process.env.KUBECONFIG ?? '' },
  namespace: { type: 'string', default: process.env.POD_NAMESPACE ?? 'switchboard-system' },
  'lease-duration': { type: 'string', default: '1500ms' },
  'lease-renew-interval': { type: 'string', default: '500ms' },
  'lease-idle-duration': { type: 'string', default: '30s' },
  'lease-idle-renew-interval': { type: 'string', default: '10s' },
  'garp-count': { type: 'string', default: '5' },
  'garp-interval': { type: 'string', default: '1s' },
  'garp-refresh-interval': { type: 'string', default: '0' },
  interfaces: { type: 'string', default: '' },
  'exclude-interfaces': { type: 'string', default: DEFAULT_EXCLUDE_PATTERNS.join(',') },
  'interface-scan-interval': { type: 'string', default: '10s' },
  'require-subnet': { type: 'string', default: 'true' },
  'load-balancer-class': { type: 'string', default: DEFAULT_LOAD_BALANCER_CLASS },
  'load-balancer-handle-unset-class': { type: 'string', default: 'true' },
  'ignore-exclude-lb': { type: 'string', default: 'false' },
  'self-check-interval': { type: 'string', default: '10s' },
  'probe-rate': { type: 'string', default: '50' },
  'conflict-probes': { type: 'string', default: '3' },
  'conflict-probe-interval': { type: 'string', default: '100ms' },
  'handover-forward': { type: 'string', default: 'true' },
  'heartbeat-address': { type: 'string', default: process.env.HEARTBEAT_ADDRESS ?? '' },
  'heartbeat-port': { type: 'string', default: String(DEFAULT_HEARTBEAT_PORT) },
  'heartbeat-interval': { type: 'string', default: '150ms' },
  'answer-window': { type: 'string', default: '800ms' },
  'metrics-bind-address': { type: 'string', default: ':9473' },
  ...metricsFlags,
  // kube-controller-manager's per-client figures: a steady few requests a second, bursts of status writes on failover.
  ...clientFlags({ qps: 20, burst: 30 }),
  'log-level': { type: 'string', default: process.env.SWITCHBOARD_LOG_LEVEL ?? 'info' },
  help: { type: 'boolean', default: false },
} satisfies ParseArgsConfig['options'];

const help: Record<keyof typeof speakerFlags, string> = {
  'node-name': 'this node’s name (env NODE_NAME); the Lease holder and the election identity',
  kubeconfig: 'kubeconfig file; empty means $KUBECONFIG, ~/.kube/config, then the in-cluster config',
  namespace: 'namespace of the speakers’ Leases (env POD_NAMESPACE)',
  'lease-duration': 'a speaker whose Lease is this old is dead to its peers, and stops answering itself',
  'lease-renew-interval': 'how often the Lease is renewed while the node answers an address, or is about to',
  'lease-idle-duration': 'the lease duration while the node answers nothing: how long a dead idle node stays a candidate',
  'lease-idle-renew-interval': 'how often the Lease is renewed while the node answers nothing',
  'garp-count': 'gratuitous ARP / unsolicited NA bursts sent when this node takes an address over',
  'garp-interval': 'time between those bursts',
  'garp-refresh-interval': 're-announce every address this often (keeps switch tables warm); 0 disables',
  interfaces: 'comma-separated interfaces to answer on; empty: every eligible interface',
  'exclude-interfaces': 'comma-separated regular expressions of interfaces never used (when --interfaces is empty)',
  'interface-scan-interval': 'how often interfaces and their addresses are re-read',
  'require-subnet': 'answer only on interfaces whose subnet holds the address',
  'load-balancer-class': 'spec.loadBalancerClass of the Services announced',
  'load-balancer-handle-unset-class': 'also announce Services without loadBalancerClass',
  'ignore-exclude-lb': 'let nodes labelled node.kubernetes.io/exclude-from-external-load-balancers announce',
  'self-check-interval': 'how often each announced address is probed by one other node, which checks that only the elected node answers (Service condition L2Healthy); 0 disables',
  'probe-rate': 'probe frames a second, at most, per speaker (self-check and conflict probes together)',
  'conflict-probes': 'ARP probes / DAD solicitations sent before an address is first announced (RFC 5227); an answer from another host keeps it unannounced; 0 disables',
  'conflict-probe-interval': 'time between those probes; answers are awaited twice as long after the last',
  'handover-forward':
    'during a planned handover, send TCP segments of connections the leaving node holds on to it (nftables, needs CAP_NET_ADMIN and nft), so they are not reset',
  'heartbeat-address':
    'IP this speaker receives peer heartbeats on (UDP) and publishes on its Lease, normally the node IP (env HEARTBEAT_ADDRESS); empty: no heartbeats, every node renews its Lease fast while it answers',
  'heartbeat-port': 'UDP port of the heartbeats',
  'heartbeat-interval': 'time between heartbeats to each ring neighbour; a neighbour silent for 4 intervals is fenced',
  'answer-window': 'with heartbeats: how long a read of its own Lease lets a node answer; failover takes about 4 heartbeat intervals plus this',
  'metrics-bind-address': 'host:port serving /metrics, /healthz and /readyz; "0" disables',
  ...metricsFlagHelp,
  ...clientFlagHelp,
  'log-level': 'debug, info, warn or error',
  help: 'show the flags',
};

function usage(): string {
  const lines = Object.entries(speakerFlags).map(([name, f]) => `  --${name.padEnd(34)} ${help[name as keyof typeof speakerFlags]}${f.default !== '' && f.default !== false ? ` (default ${JSON.stringify(f.default)})` : ''}`);
  return `Usage: switchboard speaker [flags]\n\nFlags:\n${lines.join('\n')}`;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${flag}: expected a whole number, got "${value}"`);
  return n;
}

function positiveRate(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--probe-rate: expected a positive number, got "${value}"`);
  return n;
}

type SpeakerFlagValues = { [K in keyof typeof speakerFlags]: (typeof speakerFlags)[K]['default'] extends boolean ? boolean : string };

export function speakerOptions(values: SpeakerFlagValues): SpeakerOptions {
  const node = values['node-name'];
  if (!node) throw new Error('--node-name (or env NODE_NAME) is required');
  const leaseDurationMs = parseDuration(values['lease-duration'], 'lease-duration');
  const leaseRenewIntervalMs = parseDuration(values['lease-renew-interval'], 'lease-renew-interval');
  if (leaseRenewIntervalMs <= 0 || leaseRenewIntervalMs >= leaseDurationMs) throw new Error('--lease-renew-interval must be positive and shorter than --lease-duration');
  const leaseIdleDurationMs = parseDuration(values['lease-idle-duration'], 'lease-idle-duration');
  const leaseIdleRenewIntervalMs = parseDuration(values['lease-idle-renew-interval'], 'lease-idle-renew-interval');
  if (leaseIdleRenewIntervalMs < leaseRenewIntervalMs || leaseIdleRenewIntervalMs >= leaseIdleDurationMs || leaseIdleDurationMs < leaseDurationMs) {
    throw new Error('--lease-idle-renew-interval must be at least --lease-renew-interval and shorter than --lease-idle-duration, which must be at least --lease-duration');
  }
  return {
    node,
    namespace: values.namespace,
    leaseDurationMs,
    leaseRenewIntervalMs,
    leaseIdleDurationMs,
    leaseIdleRenewIntervalMs,
    garpCount: positiveInt(values['garp-count'], 'garp-count'),
    garpIntervalMs: parseDuration(values['garp-interval'], 'garp-interval'),
    garpRefreshIntervalMs: parseDuration(values['garp-refresh-interval'], 'garp-refresh-interval'),
    interfaces: { include: parseNameList(values.interfaces), exclude: parseNameList(values['exclude-interfaces']).map((p) => new RegExp(p)) },
    interfaceScanIntervalMs: parseDuration(values['interface-scan-interval'], 'interface-scan-interval'),
    requireSubnet: parseBool(values['require-subnet'], 'require-subnet'),
    loadBalancerClass: values['load-balancer-class'],
    handleUnsetClass: parseBool(values['load-balancer-handle-unset-class'], 'load-balancer-handle-unset-class'),
    ignoreExcludeLabel: parseBool(values['ignore-exclude-lb'], 'ignore-exclude-lb'),
    selfCheckIntervalMs: parseDuration(values['self-check-interval'], 'self-check-interval'),
    probeRatePerSecond: positiveRate(values['probe-rate']),
    conflictProbeCount: positiveInt(values['conflict-probes'], 'conflict-probes'),
    conflictProbeIntervalMs: parseDuration(values['conflict-probe-interval'], 'conflict-probe-interval'),
    handoverForward: parseBool(values['handover-forward'], 'handover-forward'),
    heartbeat: heartbeatOptions(values, leaseDurationMs),
  };
}

function heartbeatOptions(values: SpeakerFlagValues, leaseDurationMs: number): SpeakerOptions['heartbeat'] {
  const address = values['heartbeat-address'];
  if (!address) return undefined;
  if (isIP(address) === 0) throw new Error(`--heartbeat-address: expected an IP address, got "${address}"`);
  const port = positiveInt(values['heartbeat-port'], 'heartbeat-port');
  if (port < 1 || port > 65535) throw new Error(`--heartbeat-port: expected 1–65535, got "${port}"`);
  const intervalMs = parseDuration(values['heartbeat-interval'], 'heartbeat-interval');
  const answerWindowMs = parseDuration(values['answer-window'], 'answer-window');
  if (intervalMs <= 0) throw new Error('--heartbeat-interval must be positive');
  if (answerWindowMs < 150 || answerWindowMs > leaseDurationMs) throw new Error('--answer-window must be at least 150ms and at most --lease-duration');
  return { address, port, intervalMs, answerWindowMs };
}

export async function runSpeaker(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: speakerFlags, strict: true, allowPositionals: false });
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const options = speakerOptions(values);
  loadAddon(); // fail at start, with the build command, rather than at the first interface
  const log = createLogger('switchboard-speaker', { level: values['log-level'] as LogLevel });
  const tuning = { ...clientTuning(values), userAgent: userAgent(`switchboard-speaker/${options.node}`) };
  const client = values.kubeconfig ? KubeClient.fromFile(values.kubeconfig, 'switchboard-speaker', tuning) : KubeClient.fromDefault('switchboard-speaker', tuning);
  const manager = new Manager({
    client,
    log,
    component: 'switchboard-speaker',
    metricsAddress: values['metrics-bind-address'] === '0' ? '' : values['metrics-bind-address'],
    secureMetrics: secureMetrics(values),
    leaderElection: { enabled: false, namespace: options.namespace, leaseName: '', leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 },
  });
  const speaker = new Speaker(manager, options);
  log.info('speaker starting', { node: options.node, server: client.server, namespace: options.namespace, leaseDurationMs: options.leaseDurationMs });
  // SIGTERM is a planned departure: hand the addresses over (make before break) before everything stops.
  const stop = new AbortController();
  shutdownSignal(log).addEventListener('abort', () => void speaker.leave().finally(() => stop.abort()), { once: true });
  const outcome = await manager.run(stop.signal);
  client.close();
  return outcome === 'stopped' ? 0 : 1;
}
