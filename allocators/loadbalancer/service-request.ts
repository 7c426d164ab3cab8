// What a Service asks of the LoadBalancer allocator: families, requested addresses and pool, sharing key, ports.
// Annotations are read under MetalLB's stable prefix `metallb.io/` and its legacy prefix `metallb.universe.tf/`;
// the stable key wins when both are present.
import type { Service } from '../../api/wire.js';
import { formatIP, parseIPStrict, type IPAddress, type IPFamily } from '../../api/ip.js';
import { labelSetString } from './selector.js';

export const ANNOTATION_PREFIX = 'metallb.io/';
export const LEGACY_ANNOTATION_PREFIX = 'metallb.universe.tf/';
export const ANNOTATION_ADDRESS_POOL = 'address-pool';
export const ANNOTATION_LOADBALANCER_IPS = 'loadBalancerIPs';
export const ANNOTATION_ALLOW_SHARED_IP = 'allow-shared-ip';
/** Written by the controller next to status.loadBalancer.ingress. */
export const ANNOTATION_ALLOCATED_FROM_POOL = `${ANNOTATION_PREFIX}ip-allocated-from-pool`;

/** The loadBalancerClass Switchboard answers to by default (Services without a class are handled too). */
export const DEFAULT_LOAD_BALANCER_CLASS = 'switchboard.dev/l2';

export const serviceKey = (svc: Service): string => `${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`;

/**
 * Services of `ourClass` are ours, and so are Services without a class unless `handleUnset` is false (another
 * implementation is the cluster's default).
 */
export const isHandledClass = (svc: Service, ourClass?: string, handleUnset = true): boolean => {
  const cls = svc.spec?.loadBalancerClass;
  if (cls === undefined || cls === null || cls === '') return handleUnset;
  return ourClass !== undefined && cls === ourClass;
};

export const isLoadBalancer = (svc: Service): boolean => svc.spec?.type === 'LoadBalancer';

export interface AnnotationValue {
  value: string;
  key: string;
  deprecated: boolean;
}

/** The annotation `name` under the stable prefix, else under the legacy one. */
export function readAnnotation(svc: Service, name: string): AnnotationValue | undefined {
  const annotations = svc.metadata?.annotations ?? {};
  for (const prefix of [ANNOTATION_PREFIX, LEGACY_ANNOTATION_PREFIX]) {
    const key = prefix + name;
    if (Object.prototype.hasOwnProperty.call(annotations, key)) return { value: annotations[key], key, deprecated: prefix === LEGACY_ANNOTATION_PREFIX };
  }
  return undefined;
}

export interface ServicePort {
  protocol: string;
  port: number;
}

export type RequestProblemReason = 'NoClusterIP' | 'DualStackUnavailable' | 'InvalidRequest' | 'FamilyMismatch';

export interface RequestProblem {
  reason: RequestProblemReason;
  /** MetalLB's event reason for it. */
  eventReason: string;
  message: string;
}

export interface ServiceRequest {
  key: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  creationTimestamp: string;
  /** Families wanted, in preference order (the Service's ipFamilies order). */
  families: IPFamily[];
  /** PreferDualStack with two families: one family is enough when the other cannot be had. */
  partialOK: boolean;
  requestedIPs?: IPAddress[];
  requestedPool?: string;
  sharingKey: string;
  /** Empty for externalTrafficPolicy Cluster; the selector's label-set text for Local (Local Services share only with the same selector). */
  backendKey: string;
  ports: ServicePort[];
  /** Legacy annotation keys in use (a deprecatedAnnotation warning each). */
  deprecatedKeys: string[];
  problem?: RequestProblem;
}

function clusterFamilies(svc: Service): IPFamily[] {
  const declared = (svc.spec?.ipFamilies ?? []).filter((f): f is IPFamily => f === 'IPv4' || f === 'IPv6');
  if (declared.length > 0) return declared;
  const ips = svc.spec?.clusterIPs?.length ? svc.spec.clusterIPs : svc.spec?.clusterIP ? [svc.spec.clusterIP] : [];
  return ips.map(parseIPStrict).flatMap((a) => (a ? [a.family] : []));
}

/** `["1.2.3.4" "2001:db8::1"]`, the way MetalLB prints a list of IPs (Go %q). */
export const quoteIPs = (ips: readonly (IPAddress | string)[]): string =>
  `[${ips.map((ip) => JSON.stringify(typeof ip === 'string' ? ip : formatIP(ip))).join(' ')}]`;

function readRequestedIPs(svc: Service): { ips?: IPAddress[]; error?: string; deprecatedKey?: string } {
  const annotation = readAnnotation(svc, ANNOTATION_LOADBALANCER_IPS);
  const fromAnnotation = annotation?.value.trim() ?? '';
  const fromSpec = svc.spec?.loadBalancerIP ?? '';
  const deprecatedKey = annotation?.deprecated ? annotation.key : undefined;
  if (fromAnnotation === '' && fromSpec === '') return { deprecatedKey };
  if (fromAnnotation !== '' && fromSpec !== '') {
    return { error: `service can not have both ${ANNOTATION_PREFIX}${ANNOTATION_LOADBALANCER_IPS} and svc.Spec.LoadBalancerIP`, deprecatedKey };
  }
  const texts = fromAnnotation !== '' ? fromAnnotation.split(',').map((s) => s.trim()) : [fromSpec.trim()];
  const what = fromAnnotation !== '' ? annotation?.key : 'spec.loadBalancerIP';
  const ips: IPAddress[] = [];
  for (const text of texts) {
    const ip = parseIPStrict(text);
    if (!ip) return { error: `invalid ${what}: ${JSON.stringify(text)} is not an IP address`, deprecatedKey };
    ips.push(ip);
  }
  if (ips.length > 2) return { error: `invalid ${what}: at most 2 addresses, one per IP family`, deprecatedKey };
  if (ips.length === 2 && ips[0].family === ips[1].family) return { error: `invalid ${what}: ${quoteIPs(ips)} has the same family`, deprecatedKey };
  return { ips, deprecatedKey };
}

/** Reads the allocation request of a LoadBalancer Service. */
export function readServiceRequest(svc: Service): ServiceRequest {
  const key = serviceKey(svc);
  const policy = svc.spec?.ipFamilyPolicy ?? 'SingleStack';
  const clusterFams = clusterFamilies(svc);
  const pool = readAnnotation(svc, ANNOTATION_ADDRESS_POOL);
  const sharing = readAnnotation(svc, ANNOTATION_ALLOW_SHARED_IP);
  const requested = readRequestedIPs(svc);
  const req: ServiceRequest = {
    key,
    namespace: svc.metadata?.namespace ?? '',
    labels: svc.metadata?.labels ?? {},
    creationTimestamp: svc.metadata?.creationTimestamp ?? '',
    families: policy === 'SingleStack' ? clusterFams.slice(0, 1) : clusterFams.slice(0, 2),
    partialOK: policy === 'PreferDualStack' && clusterFams.length > 1,
    requestedIPs: requested.ips,
    requestedPool: pool?.value.trim() || undefined,
    sharingKey: sharing?.value ?? '',
    backendKey: svc.spec?.externalTrafficPolicy === 'Local' ? labelSetString(svc.spec.selector) : '',
    ports: (svc.spec?.ports ?? []).map((p) => ({ protocol: p.protocol ?? 'TCP', port: p.port })),
    deprecatedKeys: [pool, sharing].flatMap((a) => (a?.deprecated ? [a.key] : [])).concat(requested.deprecatedKey ? [requested.deprecatedKey] : []),
  };
  if (clusterFams.length === 0) {
    req.problem = { reason: 'NoClusterIP', eventReason: 'noclusterIPsIPFamily', message: 'the Service has no ClusterIP, so its IP family cannot be determined' };
  } else if (policy === 'RequireDualStack' && clusterFams.length < 2) {
    req.problem = {
      reason: 'DualStackUnavailable',
      eventReason: 'not enough clusterips',
      message: `Service requires dual stack but not enough clusterips ${JSON.stringify(svc.spec?.clusterIPs ?? [])}`,
    };
  } else if (requested.error) {
    req.problem = { reason: 'InvalidRequest', eventReason: 'LoadBalancerFailed', message: `invalid requested loadbalancer IPs: ${requested.error}` };
  } else if (requested.ips && !familiesFit(requested.ips.map((ip) => ip.family), req)) {
    req.problem = {
      reason: 'FamilyMismatch',
      eventReason: 'AllocationFailed',
      message: `requested loadBalancer IP(s) ${quoteIPs(requested.ips)} does not match the ipFamily of the service (${req.families.join(', ')})`,
    };
  }
  return req;
}

/** Whether addresses of `families` satisfy the Service: every wanted family, or a subset under PreferDualStack. */
export function familiesFit(families: readonly IPFamily[], req: ServiceRequest): boolean {
  if (families.length === 0 || new Set(families).size !== families.length) return false;
  if (!families.every((f) => req.families.includes(f))) return false;
  return req.partialOK || families.length === req.families.length;
}

/** Protocol/port pairs that two Services both use. */
export function overlappingPorts(a: readonly ServicePort[], b: readonly ServicePort[]): ServicePort[] {
  return a.filter((p) => b.some((q) => q.protocol === p.protocol && q.port === p.port));
}
