// The API resources Switchboard reads and writes, with what it takes to build their paths.

export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export const apiVersionOf = (rt: ResourceType): string => (rt.group ? `${rt.group}/${rt.version}` : rt.version);

const core = (plural: string, kind: string, namespaced = true): ResourceType => ({ group: '', version: 'v1', plural, kind, namespaced });

export const Pods = core('pods', 'Pod');
export const Services = core('services', 'Service');
export const Endpoints = core('endpoints', 'Endpoints');
export const Nodes = core('nodes', 'Node', false);
export const Namespaces = core('namespaces', 'Namespace', false);
export const Events = core('events', 'Event');
export const ConfigMaps = core('configmaps', 'ConfigMap');
export const EndpointSlices: ResourceType = { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', kind: 'EndpointSlice', namespaced: true };
export const Leases: ResourceType = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true };

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
/** Delegated authentication and authorization (the secured /metrics): asked of the API server, never stored. */
export const TokenReviews: ResourceType = { group: 'authentication.k8s.io', version: 'v1', plural: 'tokenreviews', kind: 'TokenReview', namespaced: false };
export const SubjectAccessReviews: ResourceType = { group: 'authorization.k8s.io', version: 'v1', plural: 'subjectaccessreviews', kind: 'SubjectAccessReview', namespaced: false };
