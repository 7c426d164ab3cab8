// The configuration writer: creates and repairs the Mutating- and ValidatingWebhookConfigurations a webhook
// needs, with the caBundle of its certificate manager injected. Callers describe every field the API server
// would default, so a stored configuration equals the desired one and any drift (an edit, a stale caBundle)
// shows up as a difference to repair.
//
// The caBundle written is the certificate set's bundle plus every still-valid CA the stored configuration
// already trusts: trust is only added here, and a CA leaves only once expired. A replica still serving a
// certificate of an older CA, or a writer with a stale view of the Secret, then never cuts anyone off.
import { isAlreadyExists, isNotFound, type KubeClient } from '../client.js';
import { MutatingWebhookConfigurations, ValidatingWebhookConfigurations, type ResourceType } from '../../../api/resources.js';
import type { KubeObject } from '../../../api/wire.js';
import { liveAuthorities } from './certificates.js';

/** How the API server reaches a webhook: a URL (local control planes) or a Service (in-cluster). */
export type WebhookEndpoint =
  | { readonly url: string }
  | { readonly service: { readonly namespace: string; readonly name: string; readonly port: number } };

export type ClientConfig = { url: string; caBundle: string } | { service: { namespace: string; name: string; port: number; path: string }; caBundle: string };

export interface Webhook {
  readonly name: string;
  readonly clientConfig: ClientConfig;
  readonly [field: string]: unknown;
}

export interface WebhookConfiguration extends KubeObject {
  webhooks?: Webhook[];
}

export interface DesiredConfiguration {
  readonly rt: ResourceType;
  readonly object: WebhookConfiguration;
}

/** The configurations of one webhook for a given caBundle (PEM). */
export type ConfigurationsFor = (caBundlePem: string) => DesiredConfiguration[];

export function clientConfig(endpoint: WebhookEndpoint, path: string, caBundlePem: string): ClientConfig {
  const caBundle = Buffer.from(caBundlePem).toString('base64');
  if ('url' in endpoint) return { url: `${endpoint.url.replace(/\/+$/, '')}${path}`, caBundle };
  return { service: { ...endpoint.service, path }, caBundle };
}

/** Every CA any webhook of a stored configuration trusts, in their order. */
function trustedBy(configuration: WebhookConfiguration): string {
  const pems = (configuration.webhooks ?? []).map((w) => Buffer.from(w.clientConfig?.caBundle ?? '', 'base64').toString('utf8'));
  return pems.join('');
}

/** The bundle to write: CAs of `bundlePem` the configuration lacks, in front of those it keeps (still valid). */
export function mergedBundle(bundlePem: string, storedPem: string, now: number): string {
  const kept = [...new Set(liveAuthorities(storedPem, now))];
  const added = liveAuthorities(bundlePem, now).filter((pem) => !kept.includes(pem));
  return [...added, ...kept].join('');
}

/** Creates or repairs every configuration so that it trusts `caBundlePem`; returns how many writes it made. */
export async function applyWebhookConfigurations(client: KubeClient, configurationsFor: ConfigurationsFor, caBundlePem: string, now = Date.now()): Promise<number> {
  let writes = 0;
  const fresh = configurationsFor(mergedBundle(caBundlePem, '', now));
  for (const [i, { rt, object }] of fresh.entries()) {
    const name = object.metadata?.name ?? '';
    let stored = await client.getOrUndefined<WebhookConfiguration>(rt, name);
    if (!stored) {
      try {
        await client.create(rt, object);
        writes++;
        continue;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        // Another writer made it first: merge into theirs.
        stored = await client.get<WebhookConfiguration>(rt, name);
      }
    }
    const desired = configurationsFor(mergedBundle(caBundlePem, trustedBy(stored), now))[i].object;
    if (canonical(stored.webhooks) === canonical(desired.webhooks)) continue;
    // Conditional on the version read: a concurrent writer's trust is merged on the retry, never overwritten.
    await client.replace(rt, { ...desired, metadata: { ...desired.metadata, resourceVersion: stored.metadata?.resourceVersion } });
    writes++;
  }
  return writes;
}

/** Removes a webhook's Mutating- and ValidatingWebhookConfiguration of that name (tests and uninstall). */
export async function deleteWebhookConfigurations(client: KubeClient, configurationName: string): Promise<void> {
  for (const rt of [MutatingWebhookConfigurations, ValidatingWebhookConfigurations]) {
    await client.delete(rt, configurationName).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}

/** JSON with object keys sorted, so that two objects compare equal whatever order their fields came in. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}
