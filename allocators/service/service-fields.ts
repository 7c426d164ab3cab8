// Reading the Service fields that allocation depends on, with the apiserver's defaults for absent ones.
import type { Service } from '../../api/wire.js';

export const SERVICE_TYPE = {
  clusterIP: 'ClusterIP',
  nodePort: 'NodePort',
  loadBalancer: 'LoadBalancer',
  externalName: 'ExternalName',
} as const;

export const CLUSTER_IP_NONE = 'None';

export function serviceType(service: Service): string {
  return service.spec?.type ?? SERVICE_TYPE.clusterIP;
}

export function serviceName(service: Service): string {
  return service.metadata?.name ?? '';
}

/** Exactly ["None"]; validation rejects "None" anywhere else. */
export function isHeadless(service: Service | undefined): boolean {
  const ips = service?.spec?.clusterIPs;
  return ips !== undefined && ips.length === 1 && ips[0] === CLUSTER_IP_NONE;
}

export function hasSelector(service: Service): boolean {
  return Object.keys(service.spec?.selector ?? {}).length > 0;
}

/** NeedsHealthCheck: a LoadBalancer whose external traffic stays on the node it arrives at. */
export function needsHealthCheck(service: Service): boolean {
  return serviceType(service) === SERVICE_TYPE.loadBalancer && service.spec?.externalTrafficPolicy === 'Local';
}

/** NodePort always, LoadBalancer unless allocateLoadBalancerNodePorts is false (requested ports are still kept). */
export function allocatesNodePorts(service: Service): boolean {
  const type = serviceType(service);
  if (type === SERVICE_TYPE.nodePort) return true;
  return type === SERVICE_TYPE.loadBalancer && service.spec?.allocateLoadBalancerNodePorts !== false;
}

export function usesNodePorts(service: Service): boolean {
  const type = serviceType(service);
  return type === SERVICE_TYPE.nodePort || type === SERVICE_TYPE.loadBalancer;
}

/** Go's length-and-elements comparison, which treats nil and empty alike. */
export function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const left = a ?? [];
  const right = b ?? [];
  return left.length === right.length && left.every((value, i) => value === right[i]);
}

export function cloneService(service: Service): Service {
  return structuredClone(service);
}
