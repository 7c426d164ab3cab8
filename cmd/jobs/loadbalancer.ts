// The LoadBalancer job: allocation of Service addresses from IPAddressPools (controllers/loadbalancer) and the
// validating webhook for pools and L2Advertisements.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Manager } from '../../controllers/runtime/manager.js';
import { certificateHosts, type AdmissionWebhookOptions } from '../../controllers/runtime/webhook/admission-webhook.js';
import { DEFAULT_CA_VALIDITY_MS } from '../../controllers/runtime/webhook/certificates.js';
import type { WebhookEndpoint } from '../../controllers/runtime/webhook/configuration.js';
import { LoadBalancerController } from '../../controllers/loadbalancer/controller.js';
import { ensureCRDs, missingCRDs } from '../../controllers/loadbalancer/crds.js';
import { registerPoolValidation } from '../../controllers/loadbalancer/webhook.js';
import { DEFAULT_LOAD_BALANCER_CLASS } from '../../allocators/loadbalancer/service-request.js';
import { parseBool, parseDuration } from '../flags.js';
import type { FlagValues, Job, JobContext } from './job.js';
import { clientAuthenticationFlags, clientAuthenticationOf } from './webhook-client-flags.js';

const str = (flags: FlagValues, name: string): string => String(flags[name] ?? '');

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`--${flag}: expected one of ${allowed.join(', ')}, got "${value}"`);
}

/** "namespace/name:port" (port defaults to 443) → a webhook service reference. */
export function parseServiceRef(text: string): { namespace: string; name: string; port: number } {
  const m = /^([a-z0-9-]+)\/([a-z0-9-]+)(?::(\d+))?$/.exec(text);
  if (!m) throw new Error(`--pool-webhook-service: expected namespace/name[:port], got "${text}"`);
  return { namespace: m[1], name: m[2], port: m[3] ? Number(m[3]) : 443 };
}

/** Files from --pool-webhook-cert-dir, served as they are; otherwise a certificate set kept in a Secret and rotated. */
function poolCertificates(flags: FlagValues, context: JobContext, endpoint: WebhookEndpoint | undefined): AdmissionWebhookOptions['certificates'] {
  const dir = str(flags, 'pool-webhook-cert-dir');
  if (dir) {
    const read = (f: string) => readFileSync(join(dir, f), 'utf8');
    let caBundlePem = '';
    try {
      caBundlePem = read('ca.crt');
    } catch {
      caBundlePem = ''; // a publicly trusted certificate needs no caBundle
    }
    return { provided: { certPem: read('tls.crt'), keyPem: read('tls.key'), caBundlePem } };
  }
  return {
    secret: { namespace: context.namespace, name: str(flags, 'pool-webhook-cert-secret') },
    settings: {
      servingValidityMs: parseDuration(str(flags, 'pool-webhook-cert-validity'), 'pool-webhook-cert-validity'),
      caValidityMs: DEFAULT_CA_VALIDITY_MS,
      ...certificateHosts(endpoint),
    },
  };
}

function registerPoolWebhook(manager: Manager, flags: FlagValues, context: JobContext): void {
  const url = str(flags, 'pool-webhook-url');
  const serviceRef = str(flags, 'pool-webhook-service');
  const endpoint: WebhookEndpoint | undefined = url ? { url } : serviceRef ? { service: parseServiceRef(serviceRef) } : undefined;
  registerPoolValidation(manager, {
    bindAddress: str(flags, 'pool-webhook-bind-address'),
    endpoint,
    failurePolicy: oneOf(str(flags, 'pool-webhook-failure-policy'), ['Ignore', 'Fail'] as const, 'pool-webhook-failure-policy'),
    certificates: poolCertificates(flags, context, endpoint),
    clientAuthentication: clientAuthenticationOf(flags, 'pool-webhook'),
  });
}

export const loadBalancerJob: Job = {
  name: 'loadbalancer',
  flags: {
    'load-balancer-controller': {
      type: 'string',
      default: 'true',
      help: 'run LoadBalancer allocation and the pool webhook (false: the job needs no switchboard.dev LoadBalancer CRDs)',
    },
    'load-balancer-class': { type: 'string', default: DEFAULT_LOAD_BALANCER_CLASS, help: 'spec.loadBalancerClass of the Services Switchboard allocates for' },
    'load-balancer-handle-unset-class': {
      type: 'string',
      default: 'true',
      help: 'also allocate for Services without loadBalancerClass (false when another implementation is the default)',
    },
    'load-balancer-ip-mode': { type: 'string', default: 'VIP', help: 'status.loadBalancer.ingress[].ipMode: VIP or Proxy' },
    'load-balancer-install-crds': { type: 'string', default: 'true', help: 'create or update the switchboard.dev CRDs at start' },
    'load-balancer-persist-state': {
      type: 'string',
      default: 'true',
      help: 'remember when addresses were freed (ConfigMap switchboard-lb-allocator) so restarts keep the reuse order',
    },
    'pool-webhook-bind-address': { type: 'string', default: '', help: 'host:port of the IPAddressPool/L2Advertisement validating webhook; empty disables it' },
    'pool-webhook-url': { type: 'string', default: '', help: 'register the webhook with this base URL (e.g. https://127.0.0.1:9443)' },
    'pool-webhook-service': { type: 'string', default: '', help: 'register the webhook behind this Service: namespace/name[:port]' },
    'pool-webhook-cert-dir': { type: 'string', default: '', help: 'tls.crt, tls.key (and ca.crt) to serve with; empty: a self-made certificate kept in --pool-webhook-cert-secret' },
    'pool-webhook-cert-secret': { type: 'string', default: 'switchboard-lb-webhook-tls', help: 'Secret (in --namespace) with the CA bundle and serving certificate of the pool webhook' },
    'pool-webhook-cert-validity': { type: 'string', default: '720h', help: 'lifetime of a pool webhook serving certificate; renewed with a third left' },
    ...clientAuthenticationFlags('pool-webhook'),
    'pool-webhook-failure-policy': { type: 'string', default: 'Ignore', help: 'Ignore (pool status conditions report errors) or Fail' },
  },
  async register(manager: Manager, flags: FlagValues, context: JobContext): Promise<void> {
    const log = manager.log.child('loadbalancer');
    if (!parseBool(flags['load-balancer-controller'], 'load-balancer-controller')) {
      log.info('LoadBalancer allocation is off (--load-balancer-controller=false)');
      return;
    }
    const ipMode = oneOf(str(flags, 'load-balancer-ip-mode'), ['VIP', 'Proxy'] as const, 'load-balancer-ip-mode');
    if (parseBool(flags['load-balancer-install-crds'], 'load-balancer-install-crds')) {
      await ensureCRDs(manager.client).catch((err: unknown) => log.warn('could not install the CRDs', { error: String(err) }));
    }
    // Informers of a resource the server does not serve never sync, which would hold up every other job.
    const missing = await missingCRDs(manager.client).catch((err: unknown) => {
      log.warn('could not check the CRDs; assuming they are installed', { error: String(err) });
      return [];
    });
    if (missing.length > 0) {
      log.error('LoadBalancer allocation disabled: the CRDs are not installed', { missing });
      return;
    }
    new LoadBalancerController(manager, {
      loadBalancerClass: str(flags, 'load-balancer-class'),
      handleUnsetClass: parseBool(flags['load-balancer-handle-unset-class'], 'load-balancer-handle-unset-class'),
      ipMode,
      namespace: context.namespace,
      persistState: parseBool(flags['load-balancer-persist-state'], 'load-balancer-persist-state'),
    });
    if (str(flags, 'pool-webhook-bind-address')) registerPoolWebhook(manager, flags, context);
  },
};
