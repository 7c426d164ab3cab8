// MetalLB manifests as users write them (MetalLB docs style), for checking that Switchboard's CRDs take them with
// only the apiVersion changed.
import { SWITCHBOARD_API_VERSION } from '../crds/meta.js';

export const METALLB_API_VERSION = 'metallb.io/v1beta1';

export const metallbPoolManifest = (name: string): string => `apiVersion: ${METALLB_API_VERSION}
kind: IPAddressPool
metadata:
  name: ${name}
  namespace: metallb-system
spec:
  addresses:
  - 192.168.10.0/24
  - 192.168.9.1-192.168.9.5
  - fc00:f853:0ccd:e799::/124
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [namespace-a, namespace-b]
    namespaceSelectors:
    - matchLabels: {foo: bar}
    serviceSelectors:
    - matchExpressions:
      - {key: app, operator: In, values: [bar]}
`;

export const metallbL2AdvertisementManifest = (name: string, pool: string): string => `apiVersion: ${METALLB_API_VERSION}
kind: L2Advertisement
metadata:
  name: ${name}
  namespace: metallb-system
spec:
  ipAddressPools: [${pool}]
  ipAddressPoolSelectors:
  - matchLabels: {marker: ipaddresspool-l2}
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: NodeA}
  interfaces: [eth3]
  serviceSelectors:
  - matchLabels: {app: web}
  preferredNodeSelectors:
  - weight: 50
    preference: {matchLabels: {zone: a}}
`;

/** The same manifest for Switchboard: only the apiVersion differs. */
export const asSwitchboard = (manifest: string): string => manifest.replaceAll(METALLB_API_VERSION, SWITCHBOARD_API_VERSION);
