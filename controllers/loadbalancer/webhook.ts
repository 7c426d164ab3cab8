// The validating webhook for IPAddressPool and L2Advertisement: denies invalid or overlapping pools and invalid
// advertisements with native-looking 422 messages, and warns (without denying) when a pool holds a node's address.
// It is served by the runtime's webhook stack, which keeps its certificate in a Secret, rotates it and writes the
// configuration below with the CA bundle.
//
// Unlike MetalLB, it registers with failurePolicy Ignore by default: an unreachable webhook (MetalLB's most common
// install complaint) then never blocks `kubectl apply`; the pool's Valid=False condition and a Warning Event say
// the same thing after the fact, and the allocator never uses an invalid pool.
import { allowResponse, denyResponse, type AdmissionRequest, type AdmissionReviewResponse } from '../../api/admission.js';
import { Nodes, ValidatingWebhookConfigurations, type ResourceType } from '../../api/resources.js';
import { invalidStatus, type FieldError, type Status } from '../../api/status.js';
import type { Node } from '../../api/wire.js';
import { parseIPStrict } from '../../api/ip.js';
import { locateAddress, parsePools, validateIPAddressPoolChange } from '../../allocators/loadbalancer/pools.js';
import { IPAddressPools, type IPAddressPool } from '../../crds/ipaddresspool.js';
import { L2Advertisements, type L2Advertisement } from '../../crds/l2advertisement.js';
import { SWITCHBOARD_GROUP } from '../../crds/meta.js';
import { validateL2Advertisement } from '../speaker/advertisements.js';
import type { Manager } from '../runtime/manager.js';
import { registerAdmissionWebhook, type AdmissionWebhookOptions } from '../runtime/webhook/admission-webhook.js';
import { clientConfig, type DesiredConfiguration, type Webhook, type WebhookEndpoint } from '../runtime/webhook/configuration.js';

export const POOL_PATH = '/validate-ipaddresspool';
export const L2_PATH = '/validate-l2advertisement';
export const WEBHOOK_CONFIGURATION = 'switchboard-lb-validation';

/** A 422 Status as the API server builds it for its own validation (kubectl prints the causes the same way). */
export const invalidConfigStatus = (kind: string, name: string, errors: readonly FieldError[]): Status => invalidStatus(kind, name, errors, { group: SWITCHBOARD_GROUP });

/** Node addresses inside the pool: allowed (some setups do it on purpose), but almost always a mistake. */
export function nodeAddressWarnings(pool: IPAddressPool, nodes: readonly Node[]): string[] {
  const parsed = parsePools([pool]).pools;
  const warnings: string[] = [];
  for (const node of nodes) {
    for (const a of node.status?.addresses ?? []) {
      const ip = parseIPStrict(a.address);
      if (ip && locateAddress(parsed, ip)) warnings.push(`spec.addresses holds ${a.address}, the ${a.type} of node ${JSON.stringify(node.metadata?.name ?? '')}`);
    }
  }
  return warnings.slice(0, 10);
}

export function reviewPool(req: AdmissionRequest<IPAddressPool>, existing: readonly IPAddressPool[], nodes: readonly Node[]): AdmissionReviewResponse {
  const pool = req.object;
  if (req.operation === 'DELETE' || !pool?.metadata) return allowResponse(req.uid);
  const errors = validateIPAddressPoolChange(pool, existing);
  if (errors.length > 0) return denyResponse(req.uid, invalidConfigStatus('IPAddressPool', pool.metadata.name ?? req.name ?? '', errors));
  return allowResponse(req.uid, [], nodeAddressWarnings(pool, nodes));
}

export function reviewL2Advertisement(req: AdmissionRequest<L2Advertisement>): AdmissionReviewResponse {
  const ad = req.object;
  if (req.operation === 'DELETE' || !ad?.metadata) return allowResponse(req.uid);
  const errors = validateL2Advertisement(ad);
  if (errors.length > 0) return denyResponse(req.uid, invalidConfigStatus('L2Advertisement', ad.metadata.name ?? req.name ?? '', errors));
  return allowResponse(req.uid);
}

export interface PoolValidationOptions {
  readonly bindAddress: string;
  /** How the API server reaches the webhook; none: serve without registering. */
  readonly endpoint: WebhookEndpoint | undefined;
  readonly failurePolicy: 'Ignore' | 'Fail';
  readonly certificates: AdmissionWebhookOptions['certificates'];
  readonly clientAuthentication?: AdmissionWebhookOptions['clientAuthentication'];
}

/** What the configuration depends on. */
type PoolRegistration = Pick<PoolValidationOptions, 'endpoint' | 'failurePolicy'>;

function poolWebhook(resource: string, path: string, rt: ResourceType, options: PoolRegistration & { endpoint: WebhookEndpoint }, caBundle: string): Webhook {
  return {
    name: `${resource}.${SWITCHBOARD_GROUP}`,
    clientConfig: clientConfig(options.endpoint, path, caBundle),
    rules: [{ apiGroups: [rt.group], apiVersions: [rt.version], resources: [rt.plural], operations: ['CREATE', 'UPDATE'], scope: '*' }],
    failurePolicy: options.failurePolicy,
    matchPolicy: 'Equivalent',
    namespaceSelector: {},
    objectSelector: {},
    sideEffects: 'None',
    timeoutSeconds: 5,
    admissionReviewVersions: ['v1'],
  };
}

/** The ValidatingWebhookConfiguration for pools and advertisements (none without an endpoint). */
export function poolValidationConfigurations(options: PoolRegistration, caBundle: string): DesiredConfiguration[] {
  const { endpoint } = options;
  if (!endpoint) return [];
  const withEndpoint = { ...options, endpoint };
  return [
    {
      rt: ValidatingWebhookConfigurations,
      object: {
        metadata: { name: WEBHOOK_CONFIGURATION, labels: { 'app.kubernetes.io/part-of': 'switchboard' } },
        webhooks: [
          poolWebhook('ipaddresspools', POOL_PATH, IPAddressPools, withEndpoint, caBundle),
          poolWebhook('l2advertisements', L2_PATH, L2Advertisements, withEndpoint, caBundle),
        ],
      },
    },
  ];
}

/** Serves the two validation paths on the runtime's webhook stack. */
export function registerPoolValidation(manager: Manager, options: PoolValidationOptions): void {
  const pools = manager.informer<IPAddressPool>(IPAddressPools);
  const nodes = manager.informer<Node>(Nodes);
  const log = manager.log.child('pool-validation');
  const server = registerAdmissionWebhook(manager, {
    name: 'pool-validation',
    bindAddress: options.bindAddress,
    certificates: options.certificates,
    clientAuthentication: options.clientAuthentication,
    configurations: (caBundle) => poolValidationConfigurations(options, caBundle),
  });
  const logDenial = (request: AdmissionRequest, response: AdmissionReviewResponse): AdmissionReviewResponse => {
    if (!response.response.allowed) log.info('denied', { kind: request.kind?.kind, name: request.name, message: response.response.status?.message });
    return response;
  };
  server.handle<IPAddressPool>(POOL_PATH, (request) => logDenial(request, reviewPool(request, pools.store.list(), nodes.store.list())));
  server.handle<L2Advertisement>(L2_PATH, (request) => logDenial(request, reviewL2Advertisement(request)));
}
