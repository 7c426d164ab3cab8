// The CustomResourceDefinitions of switchboard.dev/v1beta1, built here once and written to crds/*.yaml.
// crds/crds.test.ts fails when a YAML file differs from what this module builds; regenerate the files with
// `npm run generate` (crds/generate.ts).
import { SWITCHBOARD_GROUP, SWITCHBOARD_VERSION } from './meta.js';
import { PoolConditionValid } from './ipaddresspool.js';
import { L2ConditionAnnounced } from './servicel2status.js';
import { CLAIM_PHASE_BOUND, CLAIM_TYPE } from './serviceclaim.js';

/** The subset of OpenAPI v3 that structural CRD schemas use. */
export interface JSONSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'boolean' | 'number';
  description?: string;
  properties?: Record<string, JSONSchema>;
  items?: JSONSchema;
  required?: string[];
  additionalProperties?: JSONSchema;
  default?: unknown;
  enum?: string[];
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'boolean' | 'date' | 'number';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JSONSchema };
    }[];
  };
}

const column = (name: string, jsonPath: string, type: PrinterColumn['type'] = 'string', priority?: number): PrinterColumn =>
  priority === undefined ? { name, type, jsonPath } : { name, type, jsonPath, priority };

const str = (description: string, extra: JSONSchema = {}): JSONSchema => ({ type: 'string', description, ...extra });
const bool = (description: string, dflt: boolean): JSONSchema => ({ type: 'boolean', description, default: dflt });
const int64 = (description: string): JSONSchema => ({ type: 'integer', format: 'int64', minimum: 0, description });
const list = (description: string, items: JSONSchema, listType: 'atomic' | 'set' = 'atomic'): JSONSchema => ({
  type: 'array',
  description,
  items,
  'x-kubernetes-list-type': listType,
});
const names = (description: string): JSONSchema => list(description, { type: 'string' });

/** metav1.LabelSelector, as controller-gen renders it. */
export const labelSelectorSchema = (description: string): JSONSchema => ({
  type: 'object',
  description,
  properties: {
    matchExpressions: list('A list of label selector requirements, ANDed.', {
      type: 'object',
      required: ['key', 'operator'],
      properties: {
        key: str('The label key that the selector applies to.'),
        operator: str('One of In, NotIn, Exists, DoesNotExist.'),
        values: names('Values for In and NotIn; empty for Exists and DoesNotExist.'),
      },
    }),
    matchLabels: {
      type: 'object',
      description: 'Each key=value pair is a matchExpressions entry with operator In and a single value.',
      additionalProperties: { type: 'string' },
    },
  },
  'x-kubernetes-map-type': 'atomic',
});

const selectors = (description: string): JSONSchema => list(description, labelSelectorSchema('A label selector.'));

/** metav1.Condition, as controller-gen renders it. */
const conditionsSchema: JSONSchema = {
  type: 'array',
  description: 'The latest observations of the object state.',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: {
    type: 'object',
    required: ['lastTransitionTime', 'message', 'reason', 'status', 'type'],
    properties: {
      lastTransitionTime: str('When the condition last changed status.', { format: 'date-time' }),
      message: str('Human-readable details.', { maxLength: 32768 }),
      observedGeneration: int64('The .metadata.generation the condition was set from.'),
      reason: str('CamelCase reason for the last transition.', {
        maxLength: 1024,
        minLength: 1,
        pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
      }),
      status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
      type: str('Condition type, CamelCase or domain/CamelCase.', {
        maxLength: 316,
        pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
      }),
    },
  },
};

const objectRoot = (kindDescription: string, spec: JSONSchema, status: JSONSchema): JSONSchema => ({
  type: 'object',
  description: kindDescription,
  properties: {
    apiVersion: str('Versioned schema of this representation of an object.'),
    kind: str('REST resource this object represents.'),
    metadata: { type: 'object' },
    spec,
    status,
  },
});

const observedGeneration = int64('The .metadata.generation the status was computed from.');

interface CrdShape {
  kind: string;
  plural: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  columns: PrinterColumn[];
  schema: JSONSchema;
}

const crd = (shape: CrdShape): CustomResourceDefinition => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${shape.plural}.${SWITCHBOARD_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'switchboard' } },
  spec: {
    group: SWITCHBOARD_GROUP,
    names: {
      kind: shape.kind,
      listKind: `${shape.kind}List`,
      plural: shape.plural,
      singular: shape.kind.toLowerCase(),
      shortNames: shape.shortNames,
      categories: ['switchboard'],
    },
    scope: shape.scope,
    versions: [
      {
        name: SWITCHBOARD_VERSION,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: [...shape.columns, column('Age', '.metadata.creationTimestamp', 'date')],
        schema: { openAPIV3Schema: shape.schema },
      },
    ],
  },
});

export const ipAddressPoolCRD = crd({
  kind: 'IPAddressPool',
  plural: 'ipaddresspools',
  shortNames: ['ipp', 'lbpool'],
  scope: 'Cluster',
  columns: [
    column('Auto Assign', '.spec.autoAssign', 'boolean'),
    column('Avoid Buggy IPs', '.spec.avoidBuggyIPs', 'boolean'),
    column('Addresses', '.spec.addresses'),
    column('Disabled', '.spec.disabled', 'boolean'),
    column('Assigned IPv4', '.status.assignedIPv4', 'integer'),
    column('Available IPv4', '.status.availableIPv4', 'integer'),
    column('In Conflict', '.status.addressesInConflict', 'integer'),
    column('Assigned IPv6', '.status.assignedIPv6', 'integer', 1),
    column('Available IPv6', '.status.availableIPv6', 'integer', 1),
    column('Valid', `.status.conditions[?(@.type=="${PoolConditionValid}")].status`, 'string', 1),
  ],
  schema: objectRoot(
    'A pool of addresses for Services of type LoadBalancer (MetalLB-compatible fields).',
    {
      type: 'object',
      description: 'The addresses of the pool and who may use them.',
      required: ['addresses'],
      properties: {
        addresses: {
          ...names('CIDRs (host bits zero, e.g. 192.168.10.0/24 or 192.168.10.7/32) or ranges (192.168.10.10-192.168.10.20).'),
          minItems: 1,
        },
        autoAssign: bool('When false, only Services that request an address or this pool get one from it.', true),
        avoidBuggyIPs: bool('Skip IPv4 addresses ending in .0 or .255.', false),
        allowNetworkAndBroadcast: bool('Hand out the first and last address of CIDR entries (network and broadcast).', false),
        disabled: bool('Drain the pool: no new allocations; Services that hold an address keep it.', false),
        serviceAllocation: {
          type: 'object',
          description: 'Which Services may use the pool, and its precedence over other pools.',
          properties: {
            priority: { type: 'integer', minimum: 0, description: 'Lower is tried first; 0 or unset comes after every positive priority.' },
            namespaces: names('Namespaces whose Services may use the pool.'),
            namespaceSelectors: selectors('Namespaces (by label) whose Services may use the pool.'),
            serviceSelectors: selectors('Services (by label) that may use the pool; ORed.'),
          },
        },
      },
    },
    {
      type: 'object',
      description: 'Usage counters and conditions, written by the controller; addresses in conflict, written by the speakers.',
      properties: {
        assignedIPv4: int64('IPv4 addresses in use.'),
        availableIPv4: int64('IPv4 addresses still free.'),
        assignedIPv6: int64('IPv6 addresses in use.'),
        availableIPv6: int64('IPv6 addresses still free (capped at 2^53-1).'),
        addressesInConflict: int64('Addresses another host on the LAN answered for before they were first announced (the length of conflicts).'),
        conflicts: {
          type: 'array',
          description: 'Addresses of the pool that a speaker found in use on the LAN before announcing them (RFC 5227 probe): not handed out.',
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['address'],
          items: {
            type: 'object',
            required: ['address'],
            properties: {
              address: { type: 'string', description: 'The address in conflict.' },
              macs: { type: 'array', items: { type: 'string' }, description: 'The link-layer addresses that answered for it.' },
              node: { type: 'string', description: 'The node whose speaker probed it.' },
              lastSeen: { type: 'string', format: 'date-time', description: 'When the holders were found (rechecked every 30 s by one speaker; rewritten only when they change, removed once nobody answers).' },
            },
          },
        },
        observedGeneration,
        conditions: conditionsSchema,
      },
    },
  ),
});

export const l2AdvertisementCRD = crd({
  kind: 'L2Advertisement',
  plural: 'l2advertisements',
  shortNames: ['l2adv'],
  scope: 'Cluster',
  columns: [
    column('IPAddressPools', '.spec.ipAddressPools'),
    column('IPAddressPool Selectors', '.spec.ipAddressPoolSelectors'),
    column('Interfaces', '.spec.interfaces'),
    column('Node Selectors', '.spec.nodeSelectors', 'string', 10),
  ],
  schema: objectRoot(
    'Announces the addresses of some pools with ARP (IPv4) and NDP (IPv6) (MetalLB-compatible fields).',
    {
      type: 'object',
      description: 'Which pools, nodes and interfaces; every list empty means all.',
      properties: {
        ipAddressPools: names('Pools to announce, by name.'),
        ipAddressPoolSelectors: selectors('Pools to announce, by label.'),
        nodeSelectors: selectors('Nodes allowed to announce; empty means every node.'),
        interfaces: names('Interfaces to answer on, by exact name; empty means every eligible interface.'),
        serviceSelectors: selectors('Limits the advertisement to matching Services.'),
        preferredNodeSelectors: list('Soft preference among the eligible nodes.', {
          type: 'object',
          required: ['weight', 'preference'],
          properties: {
            weight: { type: 'integer', minimum: 1, maximum: 100, description: 'Added to the score of matching nodes.' },
            preference: labelSelectorSchema('Nodes that get the weight.'),
          },
        }),
      },
    },
    { type: 'object', description: 'Unused.' },
  ),
});

export const serviceL2StatusCRD = crd({
  kind: 'ServiceL2Status',
  plural: 'servicel2statuses',
  shortNames: ['l2status'],
  scope: 'Namespaced',
  columns: [
    column('Allocated Node', '.status.node'),
    column('Service Name', '.status.serviceName'),
    column('Service Namespace', '.status.serviceNamespace'),
    column('Announced', `.status.conditions[?(@.type=="${L2ConditionAnnounced}")].status`),
    column('Reason', `.status.conditions[?(@.type=="${L2ConditionAnnounced}")].reason`, 'string', 1),
    column('Addresses', '.status.addresses', 'string', 1),
  ],
  schema: objectRoot(
    'Which node announces a Service of type LoadBalancer in layer 2 mode, and why nobody does when nobody does.',
    { type: 'object', description: 'Unused.' },
    {
      type: 'object',
      description: 'Written by the speakers.',
      properties: {
        node: str('The node that answers ARP/NDP for the addresses.'),
        serviceName: str('The Service.'),
        serviceNamespace: str('The namespace of the Service.'),
        addresses: names('The addresses announced.'),
        interfaces: list('Interfaces the node answers on.', {
          type: 'object',
          required: ['name'],
          properties: { name: str('Interface name.') },
        }),
        observedGeneration,
        conditions: conditionsSchema,
      },
    },
  ),
});

export const serviceClaimCRD = crd({
  kind: 'ServiceClaim',
  plural: 'serviceclaims',
  shortNames: ['svcclaim'],
  scope: 'Cluster',
  columns: [
    column('Value', '.spec.value'),
    column('Type', '.spec.type'),
    column('Namespace', '.spec.service.namespace'),
    column('Service', '.spec.service.name'),
    column('Phase', '.status.phase'),
    column('Reserved', '.spec.reserved', 'boolean'),
    column('Service UID', '.spec.service.uid', 'string', 1),
  ],
  schema: objectRoot(
    'One allocated ClusterIP or NodePort, named after the value (ipv4-10-96-0-10, ipv6-…, nodeport-30080) so that the API server refuses a second claim.',
    {
      type: 'object',
      description: 'The value and the Service holding it.',
      required: ['type', 'value', 'service'],
      properties: {
        type: str('What is claimed.', { enum: Object.values(CLAIM_TYPE) }),
        value: str('The IP in canonical form, or the port number.', { minLength: 1 }),
        family: str('IP family of a ClusterIP claim.', { enum: ['IPv4', 'IPv6'] }),
        service: {
          type: 'object',
          description: 'The Service the value is reserved for or held by.',
          required: ['namespace', 'name'],
          properties: {
            namespace: str('Namespace of the Service.'),
            name: str('Name of the Service.'),
            uid: str('Empty while reserved for a request; the Service\'s uid once confirmed.'),
          },
        },
        request: str('uid of the admission request that last reserved, confirmed, took over or contested the claim.'),
        reserved: {
          type: 'boolean',
          description:
            'A reservation: only the Service spec.service names gets the value (also when it asks for none), and the claim outlives that Service. Made by hand; never freed by Switchboard.',
        },
      },
    },
    {
      type: 'object',
      description: 'Written by the controller.',
      properties: {
        phase: str('Bound once the Service is seen holding the value; empty while reserved.', { enum: [CLAIM_PHASE_BOUND] }),
        boundUID: str('The uid of the Service seen holding the value.'),
        observedGeneration,
      },
    },
  ),
});

/** File name (under crds/) → definition. */
export const crdManifests: Record<string, CustomResourceDefinition> = {
  'ipaddresspool.yaml': ipAddressPoolCRD,
  'l2advertisement.yaml': l2AdvertisementCRD,
  'servicel2status.yaml': serviceL2StatusCRD,
  'serviceclaim.yaml': serviceClaimCRD,
};
