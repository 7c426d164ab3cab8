// ClusterIP and NodePort allocation as a job: the admission webhook on every replica, the claim and repair
// controllers on the leader. It is on only when the API server can reach the webhook, i.e. with --webhook-url
// (local control planes: the API server dials a URL) or --webhook-service-name (in-cluster: a Service).
import { nodePortRange } from '../../allocators/service/port-range.js';
import { API_SERVER_REQUEST_BOUND_MS } from '../../controllers/serviceallocation/claim-reconciler.js';
import { rangesOutsideApiServer, resolveServiceIPRanges } from '../../controllers/serviceallocation/api-ranges.js';
import { ensureServiceClaimCRD } from '../../controllers/serviceallocation/crd.js';
import { registerServiceAllocation } from '../../controllers/serviceallocation/index.js';
import { certificateHosts } from '../../controllers/runtime/webhook/admission-webhook.js';
import { DEFAULT_CA_VALIDITY_MS } from '../../controllers/runtime/webhook/certificates.js';
import type { WebhookEndpoint } from '../../controllers/runtime/webhook/configuration.js';
import type { Manager } from '../../controllers/runtime/manager.js';
import { parseBool, parseDuration } from '../flags.js';
import type { FlagValues, Job, JobContext, JobFlag } from './job.js';
import { clientAuthenticationFlags, clientAuthenticationOf } from './webhook-client-flags.js';

const flags = {
  'service-cluster-ip-range': {
    type: 'string',
    default: '',
    help: 'CIDRs ClusterIPs come from (at most one per family, primary first); must lie inside kube-apiserver\'s. Empty: the API server\'s own (ServiceCIDR "kubernetes")',
  },
  'service-node-port-range': { type: 'string', default: '30000-32767', help: 'NodePort range; must lie inside kube-apiserver\'s --service-node-port-range' },
  'webhook-url': { type: 'string', default: '', help: 'base URL the API server calls the webhook at, e.g. https://127.0.0.1:9443 (turns allocation on)' },
  'webhook-service-name': { type: 'string', default: '', help: 'Service the API server calls the webhook through, in-cluster (turns allocation on)' },
  'webhook-service-namespace': { type: 'string', default: '', help: 'namespace of --webhook-service-name (empty: --namespace)' },
  'webhook-service-port': { type: 'string', default: '443', help: 'port of --webhook-service-name' },
  'webhook-bind-address': { type: 'string', default: ':9443', help: 'host:port the webhook serves HTTPS on' },
  'webhook-configuration-name': { type: 'string', default: 'switchboard-service-allocation', help: 'name of the Mutating- and ValidatingWebhookConfiguration' },
  'webhook-timeout': { type: 'string', default: '10s', help: 'timeoutSeconds of the webhooks (1s..30s)' },
  'webhook-cert-secret': { type: 'string', default: 'switchboard-webhook-cert', help: 'Secret (in --namespace) with the CA bundle and serving certificate' },
  'webhook-cert-validity': { type: 'string', default: '720h', help: 'lifetime of a serving certificate; renewed with a third left' },
  ...clientAuthenticationFlags('webhook'),
  'max-pending-claims': {
    type: 'string',
    default: '1000',
    help: 'ClusterIPs and NodePorts claimed by the webhooks whose Service is not yet seen holding them, at most, cluster-wide; beyond it new claims are refused (0: no bound)',
  },
  'max-pending-claims-per-namespace': { type: 'string', default: '500', help: 'the same bound per Service namespace (0: no bound)' },
  'claim-grace-period': { type: 'string', default: '10s', help: 'age at which a claim whose Service was never written is freed' },
  'allocators-install-crd': { type: 'string', default: 'true', help: 'create or update the ServiceClaim CRD at start (false: only check it)' },
} satisfies Record<string, JobFlag>;

type FlagName = keyof typeof flags;

function endpointOf(get: (name: FlagName) => string, context: JobContext): WebhookEndpoint | undefined {
  const url = get('webhook-url');
  const service = get('webhook-service-name');
  if (url && service) throw new Error('--webhook-url and --webhook-service-name: give one of them');
  if (url) {
    if (!/^https:\/\/[^/]+/.test(url)) throw new Error(`--webhook-url: expected https://host[:port][/path], got "${url}"`);
    return { url };
  }
  if (!service) return undefined;
  const port = Number(get('webhook-service-port'));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--webhook-service-port: not a port: "${get('webhook-service-port')}"`);
  return { service: { namespace: get('webhook-service-namespace') || context.namespace, name: service, port } };
}

function nonNegativeInteger(text: string, flag: FlagName): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new Error(`--${flag}: expected a whole number, got "${text}"`);
  return value;
}

async function register(manager: Manager, values: FlagValues, context: JobContext): Promise<void> {
  const get = (name: FlagName) => String(values[name] ?? flags[name].default);
  const endpoint = endpointOf(get, context);
  if (!endpoint) {
    manager.log.info('ClusterIP/NodePort allocation is off: give --webhook-url or --webhook-service-name to turn it on');
    return;
  }
  const timeoutMs = parseDuration(get('webhook-timeout'), 'webhook-timeout');
  if (timeoutMs < 1000 || timeoutMs > 30_000) throw new Error('--webhook-timeout: must be from 1s to 30s');
  let portRange;
  try {
    portRange = nodePortRange(get('service-node-port-range'));
  } catch (err) {
    throw new Error(`--service-node-port-range: ${(err as Error).message}`);
  }
  await ensureServiceClaimCRD(manager.client, parseBool(get('allocators-install-crd'), 'allocators-install-crd'));
  const ipRanges = await resolveServiceIPRanges(manager.client, get('service-cluster-ip-range')).catch((err: Error) => {
    throw new Error(`--service-cluster-ip-range: ${err.message}`);
  });
  const outside = await rangesOutsideApiServer(manager.client, ipRanges).catch(() => []);
  for (const range of outside) {
    manager.log.warn('Service CIDR lies outside every ServiceCIDR of the API server: it will refuse these ClusterIPs', { cidr: range.cidr });
  }
  manager.log.info('ClusterIP/NodePort allocation', { cidrs: ipRanges.map((r) => r.cidr), nodePorts: get('service-node-port-range'), endpoint });
  await registerServiceAllocation(manager, {
    allocation: { ipRanges, nodePortRange: portRange },
    // Without the flag the ranges follow the API server's ServiceCIDRs as they come and go.
    liveServiceCIDRs: get('service-cluster-ip-range').trim() === '',
    timings: {
      graceMs: parseDuration(get('claim-grace-period'), 'claim-grace-period'),
      // The API server's bound plus room for its etcd write and clock steps between our observations.
      commitWindowMs: API_SERVER_REQUEST_BOUND_MS + 6_000,
    },
    webhook: {
      configurationName: get('webhook-configuration-name'),
      endpoint,
      timeoutSeconds: Math.round(timeoutMs / 1000),
      bindAddress: get('webhook-bind-address'),
      clientAuthentication: clientAuthenticationOf(values, 'webhook'),
      certificateSecret: get('webhook-cert-secret'),
      certificates: {
        servingValidityMs: parseDuration(get('webhook-cert-validity'), 'webhook-cert-validity'),
        caValidityMs: DEFAULT_CA_VALIDITY_MS,
        ...certificateHosts(endpoint),
      },
    },
    pendingClaimLimits: {
      total: nonNegativeInteger(get('max-pending-claims'), 'max-pending-claims'),
      perNamespace: nonNegativeInteger(get('max-pending-claims-per-namespace'), 'max-pending-claims-per-namespace'),
    },
    namespace: context.namespace,
    stallAfterClaim: process.env.SWITCHBOARD_FAULT_INJECTION === 'stall-after-claim',
  });
}

export const allocatorsJob: Job = { name: 'allocators', flags, register };
