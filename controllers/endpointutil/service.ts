// Service facts shared by the endpoint controllers.
import type { Pod, Service } from '../../api/wire.js';
import type { AddressType } from './constants.js';
import { readIPField } from './ip.js';
import type { Labels } from './types.js';

/** A ClusterIP is set: neither "None" (headless) nor empty. */
export function isServiceIPSet(service: Service): boolean {
  const clusterIP = service.spec?.clusterIP ?? '';
  return clusterIP !== 'None' && clusterIP !== '';
}

/** A nil selector selects nothing; the JSON of an empty Go map is absent, so `{}` never arrives from the API. */
export function hasSelector(service: Service): boolean {
  return service.spec?.selector != null;
}

export function isExternalName(service: Service): boolean {
  return service.spec?.type === 'ExternalName';
}

export function selectorMatches(selector: Labels, labels: Labels | undefined): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

/** The Service's non-nil selector is a subset of the pod's labels, in the same namespace. */
export function serviceSelectsPod(service: Service, pod: Pod): boolean {
  const selector = service.spec?.selector;
  if (selector == null) return false;
  return pod.metadata?.namespace === service.metadata?.namespace && selectorMatches(selector, pod.metadata?.labels);
}

export function serviceKey(service: Service): string {
  return `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
}

/**
 * The families the Service is served on: spec.ipFamilies; without it (an old apiserver) the ClusterIP's family,
 * or both families for a headless Service.
 */
export function addressTypesForService(service: Service): AddressType[] {
  const families = new Set<AddressType>();
  for (const family of service.spec?.ipFamilies ?? []) {
    if (family === 'IPv4' || family === 'IPv6') families.add(family);
  }
  if (families.size > 0) return [...families];
  if (isServiceIPSet(service)) {
    return [readIPField(service.spec?.clusterIP)?.family === 'IPv6' ? 'IPv6' : 'IPv4'];
  }
  return ['IPv4', 'IPv6'];
}
