// The MutatingWebhookConfiguration and ValidatingWebhookConfiguration that put Switchboard in the Service write
// path. Every field the API server would default is set (see the runtime's configuration writer).
import { MutatingWebhookConfigurations, ValidatingWebhookConfigurations } from '../../api/resources.js';
import { clientConfig, type DesiredConfiguration, type Webhook, type WebhookEndpoint } from '../runtime/webhook/configuration.js';

export const MUTATE_PATH = '/mutate-services';
export const VALIDATE_PATH = '/validate-services';
export const RESERVATIONS_PATH = '/validate-reservations';
export const WEBHOOK_NAMES = {
  mutate: 'allocate.services.switchboard.dev',
  validate: 'confirm.services.switchboard.dev',
  reservations: 'reservations.serviceclaims.switchboard.dev',
} as const;
/** Namespaces labelled with this = disabled are left to the API server's own allocator. */
export const OPT_OUT_LABEL = 'switchboard.dev/service-allocation';

export interface WebhookSettings {
  readonly configurationName: string;
  readonly endpoint: WebhookEndpoint;
  readonly timeoutSeconds: number;
}

function webhook(name: string, path: string, settings: WebhookSettings, caBundle: string): Webhook {
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

/**
 * Reservations (ServiceClaims with spec.reserved) only: the matchCondition keeps Switchboard's own claim writes off
 * this webhook. Cluster-scoped objects: the namespaceSelector does not apply.
 */
function reservationsWebhook(settings: WebhookSettings, caBundle: string): Webhook {
  return {
    name: WEBHOOK_NAMES.reservations,
    clientConfig: clientConfig(settings.endpoint, RESERVATIONS_PATH, caBundle),
    rules: [{ operations: ['CREATE', 'UPDATE'], apiGroups: ['switchboard.dev'], apiVersions: ['v1beta1'], resources: ['serviceclaims'], scope: 'Cluster' }],
    failurePolicy: 'Fail',
    matchPolicy: 'Equivalent',
    namespaceSelector: {},
    objectSelector: {},
    matchConditions: [{ name: 'reserved', expression: 'has(object.spec.reserved) && object.spec.reserved == true' }],
    sideEffects: 'None',
    timeoutSeconds: settings.timeoutSeconds,
    admissionReviewVersions: ['v1'],
  };
}

export function desiredConfigurations(settings: WebhookSettings, caBundle: string): DesiredConfiguration[] {
  const metadata = { name: settings.configurationName, labels: { 'app.kubernetes.io/part-of': 'switchboard' } };
  return [
    {
      rt: MutatingWebhookConfigurations,
      object: {
        metadata,
        webhooks: [{ ...webhook(WEBHOOK_NAMES.mutate, MUTATE_PATH, settings, caBundle), reinvocationPolicy: 'Never' }],
      },
    },
    {
      rt: ValidatingWebhookConfigurations,
      object: { metadata, webhooks: [webhook(WEBHOOK_NAMES.validate, VALIDATE_PATH, settings, caBundle), reservationsWebhook(settings, caBundle)] },
    },
  ];
}
