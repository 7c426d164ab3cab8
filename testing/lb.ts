// Builders for LoadBalancer allocator tests (pools and Services with just the fields that matter).
import type { IPAddressPool, IPAddressPoolSpec } from '../crds/ipaddresspool.js';
import { SWITCHBOARD_API_VERSION } from '../crds/meta.js';
import type { Service } from '../api/wire.js';

export const pool = (name: string, addresses: string[], spec: Partial<IPAddressPoolSpec> = {}, created = '2026-01-01T00:00:00Z'): IPAddressPool => ({
  apiVersion: SWITCHBOARD_API_VERSION,
  kind: 'IPAddressPool',
  metadata: { name, creationTimestamp: created },
  spec: { addresses, ...spec },
});

export interface ServiceOptions {
  namespace?: string;
  type?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  ports?: { port: number; protocol?: string }[];
  families?: ('IPv4' | 'IPv6')[];
  policy?: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
  loadBalancerIP?: string;
  loadBalancerClass?: string;
  local?: boolean;
  selector?: Record<string, string>;
  created?: string;
  ingress?: string[];
}

export function service(name: string, o: ServiceOptions = {}): Service {
  const families = o.families ?? ['IPv4'];
  const clusterIPs = families.map((f) => (f === 'IPv4' ? '10.96.0.10' : 'fd00:96::10'));
  return {
    metadata: {
      name,
      namespace: o.namespace ?? 'default',
      annotations: o.annotations,
      labels: o.labels,
      creationTimestamp: o.created ?? '2026-02-01T00:00:00Z',
    },
    spec: {
      type: o.type ?? 'LoadBalancer',
      ports: (o.ports ?? [{ port: 80 }]).map((p) => ({ port: p.port, protocol: p.protocol ?? 'TCP' })),
      ipFamilies: families,
      ipFamilyPolicy: o.policy ?? 'SingleStack',
      clusterIP: clusterIPs[0],
      clusterIPs,
      loadBalancerIP: o.loadBalancerIP,
      loadBalancerClass: o.loadBalancerClass,
      externalTrafficPolicy: o.local ? 'Local' : 'Cluster',
      selector: o.selector ?? { app: name },
    },
    status: o.ingress ? { loadBalancer: { ingress: o.ingress.map((ip) => ({ ip })) } } : undefined,
  };
}
