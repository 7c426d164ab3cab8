// The MutatingWebhookConfiguration and ValidatingWebhookConfiguration that put Switchboard in the Service write
// path. Every field the API server would default is set, so a stored configuration equals the desired one and
// any drift (an edit, a stale caBundle) shows up as a difference to repair.
import { isAlreadyExists, isNotFound, type KubeClient } from '../client.js';
import { MutatingWebhookConfigurations, ValidatingWebhookConfigurations, type ResourceType } from '../../../api/resources.js';
import type { KubeObject } from '../../../api/wire.js';

export const MUTATE_PATH = '/mutate-services';
export const VALIDATE_PATH = '/validate-services';
export const WEBHOOK_NAMES = { mutate: 'allocate.services.switchboard.dev', validate: 'confirm.services.switchboard.dev' } as const;
/** Namespaces labelled with this = disabled are left to the API server's own allocator. */
export const OPT_OUT_LABEL = 'switchboard.dev/service-allocation';

/** How the API server reaches the webhook: a URL (local control planes) or a Service (in-cluster). */
export type WebhookEndpoint =
  | { readonly url: string }
  | { readonly service: { readonly namespace: string; readonly name: string; readonly port: number } };

export interface WebhookSettings {
  readonly configurationName: string;
  readonly endpoint: WebhookEndpoint;
  readonly timeoutSeconds: number;
}

interface WebhookConfiguration extends KubeObject {
  webhooks?: Record<string, unknown>[];
}

function clientConfig(endpoint: WebhookEndpoint, path: string, caBundle: string): Record<string, unknown> {
  const caBundleB64 = Buffer.from(caBundle).toString('base64');
  if ('url' in endpoint) return { url: `${endpoint.url.replace(/\/+$/, '')}${path}`, caBundle: caBundleB64 };
  return { service: { ...endpoint.service, path }, caBundle: caBundleB64 };
}

function webhook(name: string, path: string, settings: WebhookSettings, caBundle: string): Record<string, unknown> {
  return {
    name,
    clientConfig: clientConfig(settings.endpoint, path, caBundle),
    rules: [{ operations: ['CREATE', 'UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['services'], scope: 'Namespaced' }],
    // Without us a Service would get values nobody claimed: refuse instead.
    failurePolicy: 'Fail',
    matchPolicy: 'Equivalent',
    namespaceSelector: { matchExpressions: [{ key: OPT_OUT_LABEL, operator: 'NotIn', values: ['disabled'] }] },
    objectSelector: {},
    // Dry-run requests reach us and take no claims.
    sideEffects: 'NoneOnDryRun',
    timeoutSeconds: settings.timeoutSeconds,
    admissionReviewVersions: ['v1'],
  };
}

export function desiredConfigurations(settings: WebhookSettings, caBundle: string): { rt: ResourceType; object: WebhookConfiguration }[] {
  const metadata = { name: settings.configurationName, labels: { 'app.kubernetes.io/part-of': 'switchboard' } };
  return [
    {
      rt: MutatingWebhookConfigurations,
      object: {
        metadata,
        webhooks: [{ ...webhook(WEBHOOK_NAMES.mutate, MUTATE_PATH, settings, caBundle), reinvocationPolicy: 'Never' }],
      },
    },
    { rt: ValidatingWebhookConfigurations, object: { metadata, webhooks: [webhook(WEBHOOK_NAMES.validate, VALIDATE_PATH, settings, caBundle)] } },
  ];
}

/** Creates or repairs both configurations; returns how many writes it made. */
export async function applyWebhookConfigurations(client: KubeClient, settings: WebhookSettings, caBundle: string): Promise<number> {
  let writes = 0;
  for (const { rt, object } of desiredConfigurations(settings, caBundle)) {
    const stored = await client.getOrUndefined<WebhookConfiguration>(rt, settings.configurationName);
    if (!stored) {
      try {
        await client.create(rt, object);
        writes++;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
      continue;
    }
    if (canonical(stored.webhooks) === canonical(object.webhooks)) continue;
    await client.replace(rt, { ...object, metadata: { ...object.metadata, resourceVersion: stored.metadata?.resourceVersion } });
    writes++;
  }
  return writes;
}

/** Removes both configurations (tests and uninstall). */
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
