// API resources only the allocation job uses (the shared ones live in controllers/runtime/resources.ts).
import type { ResourceType } from '../../api/resources.js';

const admissionregistration = (plural: string, kind: string): ResourceType => ({
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural,
  kind,
  namespaced: false,
});

export const MutatingWebhookConfigurations = admissionregistration('mutatingwebhookconfigurations', 'MutatingWebhookConfiguration');
export const ValidatingWebhookConfigurations = admissionregistration('validatingwebhookconfigurations', 'ValidatingWebhookConfiguration');
export const Secrets: ResourceType = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true };
/** The API server publishes its --service-cluster-ip-range as the ServiceCIDR named "kubernetes". */
export const ServiceCIDRs: ResourceType = { group: 'networking.k8s.io', version: 'v1', plural: 'servicecidrs', kind: 'ServiceCIDR', namespaced: false };
/** The API server's own ClusterIP allocations, one object per IP. */
export const IPAddresses: ResourceType = { group: 'networking.k8s.io', version: 'v1', plural: 'ipaddresses', kind: 'IPAddress', namespaced: false };
