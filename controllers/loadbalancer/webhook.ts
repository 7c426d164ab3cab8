// The validating webhook for IPAddressPool and L2Advertisement: denies invalid or overlapping pools and invalid
// advertisements with native-looking 422 messages, and warns (without denying) when a pool holds a node's address.
//
// Unlike MetalLB, it registers with failurePolicy Ignore by default: an unreachable webhook (MetalLB's most common
// install complaint) then never blocks `kubectl apply`; the pool's Valid=False condition and a Warning Event say
// the same thing after the fact, and the allocator never uses an invalid pool.
import { createServer, type Server } from 'node:https';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from '../runtime/client.js';
import type { Logger } from '../runtime/log.js';
import type { ResourceType } from '../../api/resources.js';
import { parseAddress } from '../runtime/telemetry.js';
import type { Node } from '../../api/wire.js';
import { certificateExpiry, createCertificateAuthority, issueCertificate } from '../runtime/pki.js';
import { allowResponse, denyResponse, type AdmissionReviewResponse } from '../../allocators/service/admission.js';
import type { Status } from '../../api/status.js';
import { parseIPStrict as parseIP } from '../../api/ip.js';
import { renderFieldErrors, fieldErrorBody, type FieldError } from '../../allocators/loadbalancer/field-errors.js';
import { locateAddress, parsePools, validateIPAddressPoolChange } from '../../allocators/loadbalancer/pools.js';
import { IPAddressPools, type IPAddressPool } from '../../crds/ipaddresspool.js';
import { L2Advertisements, type L2Advertisement } from '../../crds/l2advertisement.js';
import { SWITCHBOARD_GROUP } from '../../crds/meta.js';
import { validateL2Advertisement } from '../speaker/advertisements.js';

export const POOL_PATH = '/validate-ipaddresspool';
export const L2_PATH = '/validate-l2advertisement';
export const WEBHOOK_CONFIGURATION = 'switchboard-lb-validation';

export interface AdmissionRequest {
  uid: string;
  operation?: string;
  name?: string;
  object?: unknown;
}

/** A 422 Status as the API server builds it for its own validation (kubectl prints the causes the same way). */
export function invalidConfigStatus(kind: string, name: string, errors: readonly FieldError[]): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `${kind}.${SWITCHBOARD_GROUP} ${JSON.stringify(name)} is invalid: ${renderFieldErrors(errors)}`,
    reason: 'Invalid',
    details: { name, group: SWITCHBOARD_GROUP, kind, causes: errors.map((e) => ({ reason: e.type, message: fieldErrorBody(e), field: e.field })) },
    code: 422,
  };
}

/** Node addresses inside the pool: allowed (some setups do it on purpose), but almost always a mistake. */
export function nodeAddressWarnings(pool: IPAddressPool, nodes: readonly Node[]): string[] {
  const parsed = parsePools([pool]).pools;
  const warnings: string[] = [];
  for (const node of nodes) {
    for (const a of node.status?.addresses ?? []) {
      const ip = parseIP(a.address);
      if (ip && locateAddress(parsed, ip)) warnings.push(`spec.addresses holds ${a.address}, the ${a.type} of node ${JSON.stringify(node.metadata?.name ?? '')}`);
    }
  }
  return warnings.slice(0, 10);
}

export function reviewPool(req: AdmissionRequest, existing: readonly IPAddressPool[], nodes: readonly Node[]): AdmissionReviewResponse {
  const pool = req.object as IPAddressPool | undefined;
  if (req.operation === 'DELETE' || !pool?.metadata) return allowResponse(req.uid);
  const errors = validateIPAddressPoolChange(pool, existing);
  if (errors.length > 0) return denyResponse(req.uid, invalidConfigStatus('IPAddressPool', pool.metadata.name ?? req.name ?? '', errors));
  return allowResponse(req.uid, [], nodeAddressWarnings(pool, nodes));
}

export function reviewL2Advertisement(req: AdmissionRequest): AdmissionReviewResponse {
  const ad = req.object as L2Advertisement | undefined;
  if (req.operation === 'DELETE' || !ad?.metadata) return allowResponse(req.uid);
  const errors = validateL2Advertisement(ad);
  if (errors.length > 0) return denyResponse(req.uid, invalidConfigStatus('L2Advertisement', ad.metadata.name ?? req.name ?? '', errors));
  return allowResponse(req.uid);
}

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface WebhookServerOptions {
  address: string;
  certificate: ServingCertificate;
  pools: () => readonly IPAddressPool[];
  nodes: () => readonly Node[];
  log: Logger;
}

/** Serves the two validation paths over TLS; resolves the bound port. */
export async function serveWebhook(options: WebhookServerOptions): Promise<{ server: Server; port: number }> {
  const server = createServer({ cert: options.certificate.certPem, key: options.certificate.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let review: { request?: AdmissionRequest };
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request?: AdmissionRequest };
      } catch {
        res.writeHead(400).end('invalid AdmissionReview\n');
        return;
      }
      const request = review.request;
      const path = (req.url ?? '').split('?')[0];
      if (!request?.uid || req.method !== 'POST' || (path !== POOL_PATH && path !== L2_PATH)) {
        res.writeHead(404).end('not found\n');
        return;
      }
      const response = path === POOL_PATH ? reviewPool(request, options.pools(), options.nodes()) : reviewL2Advertisement(request);
      if (!response.response.allowed) options.log.info('denied', { path, name: request.name, message: response.response.status?.message });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(response));
    });
  });
  const { host, port } = parseAddress(options.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  return { server, port: typeof bound === 'object' && bound ? bound.port : port };
}

const Secrets: ResourceType = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true };
export const CERT_SECRET = 'switchboard-lb-webhook-tls';
const SANS_ANNOTATION = 'switchboard.dev/subject-alternative-names';
const RENEW_BEFORE_MS = 30 * 24 * 3600_000;

interface Secret {
  metadata: { name: string; namespace: string; resourceVersion?: string; annotations?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

/**
 * The serving certificate for `hosts` (DNS names or IPs), shared by every replica through a Secret: the first
 * replica creates it, the others read it; it is reissued (compare-and-swap) when the names change or expiry nears.
 */
export async function sharedServingCertificate(client: KubeClient, namespace: string, hosts: readonly string[]): Promise<ServingCertificate> {
  const sans = [...new Set(hosts)].sort().join(',');
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await client.getOrUndefined<Secret>(Secrets, CERT_SECRET, namespace);
    const cert: ServingCertificate | undefined = existing?.data
      ? { certPem: unb64(existing.data['tls.crt']), keyPem: unb64(existing.data['tls.key']), caPem: unb64(existing.data['ca.crt']) }
      : undefined;
    if (cert && existing?.metadata.annotations?.[SANS_ANNOTATION] === sans && certificateExpiry(cert.certPem).getTime() - Date.now() > RENEW_BEFORE_MS) return cert;
    const ca = await createCertificateAuthority('switchboard-lb-webhook-ca');
    const ips = hosts.filter((h) => parseIP(h) !== undefined);
    const leaf = await issueCertificate(ca, { commonName: hosts[0] ?? 'switchboard-lb-webhook', dnsNames: hosts.filter((h) => !ips.includes(h)), ipAddresses: ips, usage: 'server' });
    const fresh: ServingCertificate = { certPem: leaf.certPem, keyPem: leaf.keyPem, caPem: ca.certPem };
    const secret: Secret = {
      metadata: { name: CERT_SECRET, namespace, annotations: { [SANS_ANNOTATION]: sans }, resourceVersion: existing?.metadata.resourceVersion },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(fresh.certPem), 'tls.key': b64(fresh.keyPem), 'ca.crt': b64(fresh.caPem) },
    };
    try {
      if (existing) await client.replace(Secrets, secret);
      else await client.create(Secrets, secret);
      return fresh;
    } catch (err) {
      if (!isConflict(err) && !isAlreadyExists(err)) throw err; // another replica won: use theirs
    }
  }
  throw new Error(`could not agree on the webhook certificate in Secret ${namespace}/${CERT_SECRET}`);
}

const ValidatingWebhookConfigurations: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'validatingwebhookconfigurations',
  kind: 'ValidatingWebhookConfiguration',
  namespaced: false,
};

export type ClientConfig = { url: string } | { service: { namespace: string; name: string; port: number } };

export interface RegistrationOptions {
  clientConfig: ClientConfig;
  caPem: string;
  failurePolicy: 'Ignore' | 'Fail';
}

const withPath = (c: ClientConfig, path: string): ClientConfig => ('url' in c ? { url: `${c.url.replace(/\/$/, '')}${path}` } : { service: { ...c.service, path } as typeof c.service });

/** Creates or updates the ValidatingWebhookConfiguration for pools and advertisements. */
export async function registerValidatingWebhook(client: KubeClient, o: RegistrationOptions): Promise<void> {
  const webhook = (resource: string, path: string, rt: ResourceType) => ({
    name: `${resource}.${SWITCHBOARD_GROUP}`,
    clientConfig: { ...withPath(o.clientConfig, path), caBundle: b64(o.caPem) },
    rules: [{ apiGroups: [rt.group], apiVersions: [rt.version], resources: [rt.plural], operations: ['CREATE', 'UPDATE'], scope: '*' }],
    failurePolicy: o.failurePolicy,
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    timeoutSeconds: 5,
  });
  const body = {
    metadata: { name: WEBHOOK_CONFIGURATION, labels: { 'app.kubernetes.io/part-of': 'switchboard' } },
    webhooks: [webhook('ipaddresspools', POOL_PATH, IPAddressPools), webhook('l2advertisements', L2_PATH, L2Advertisements)],
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await client.getOrUndefined<{ metadata: { resourceVersion?: string } }>(ValidatingWebhookConfigurations, WEBHOOK_CONFIGURATION);
    try {
      if (existing) await client.replace(ValidatingWebhookConfigurations, { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } });
      else await client.create(ValidatingWebhookConfigurations, body);
      return;
    } catch (err) {
      if (!isConflict(err) && !isAlreadyExists(err) && !isNotFound(err)) throw err;
    }
  }
  throw new Error(`could not register ValidatingWebhookConfiguration ${WEBHOOK_CONFIGURATION}`);
}
