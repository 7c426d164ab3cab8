// Which pod updates matter to the endpoint controllers, and which Services they concern (upstream
// podEndpointsChanged / GetServicesToUpdate), for the wiring's pod event handlers.
import type { Pod, Service } from '../../api/wire.js';
import { stringMapsEqual } from './maps.js';
import { isPodReady, isPodTerminal } from './pod.js';
import { serviceKey, serviceSelectsPod } from './service.js';

export interface PodUpdateEffect {
  /** The pod's endpoints may differ: deletion, readiness, IPs, or (Switchboard) the phase turned terminal. */
  podChanged: boolean;
  /** The Services it matches may differ: labels, or hostname/subdomain (which feed the hostname field). */
  labelsChanged: boolean;
}

function podIPList(pod: Pod): string[] {
  return (pod.status?.podIPs ?? []).map((entry) => entry?.ip ?? '');
}

export function podUpdateEffect(oldPod: Pod, newPod: Pod): PodUpdateEffect {
  const labelsChanged =
    !stringMapsEqual(oldPod.metadata?.labels, newPod.metadata?.labels) ||
    (oldPod.spec?.hostname ?? '') !== (newPod.spec?.hostname ?? '') ||
    (oldPod.spec?.subdomain ?? '') !== (newPod.spec?.subdomain ?? '');
  const oldIPs = podIPList(oldPod);
  const newIPs = podIPList(newPod);
  const podChanged =
    (oldPod.metadata?.deletionTimestamp ?? null) !== (newPod.metadata?.deletionTimestamp ?? null) ||
    isPodReady(oldPod) !== isPodReady(newPod) ||
    oldIPs.length !== newIPs.length ||
    oldIPs.some((ip, index) => ip !== newIPs[index]) ||
    // Switchboard: upstream ignores a phase change alone, so a not-ready pod that turns Succeeded/Failed kept its
    // endpoint until some other event; a terminal pod must leave the slices at once.
    isPodTerminal(oldPod) !== isPodTerminal(newPod);
  return { podChanged, labelsChanged };
}

function matchingServiceKeys(services: readonly Service[], pod: Pod): Set<string> {
  return new Set(services.filter((service) => serviceSelectsPod(service, pod)).map(serviceKey));
}

/**
 * The Service keys (ns/name) to queue after a pod update; `services` are those of the pod's namespace. A resync
 * (same resourceVersion) queues nothing. Pod add and delete queue `matchingServiceKeys` of the pod.
 */
export function servicesForPodUpdate(oldPod: Pod, newPod: Pod, services: readonly Service[]): Set<string> {
  if (oldPod.metadata?.resourceVersion && oldPod.metadata.resourceVersion === newPod.metadata?.resourceVersion) {
    return new Set();
  }
  const { podChanged, labelsChanged } = podUpdateEffect(oldPod, newPod);
  if (!podChanged && !labelsChanged) return new Set();
  const current = matchingServiceKeys(services, newPod);
  if (!labelsChanged) return current;
  const previous = matchingServiceKeys(services, oldPod);
  const result = new Set<string>();
  // Pod and labels changed: every Service on either side. Labels only: the Services gained or lost.
  for (const key of current) if (podChanged || !previous.has(key)) result.add(key);
  for (const key of previous) if (podChanged || !current.has(key)) result.add(key);
  return result;
}

/** Service keys to queue for a pod add or delete. */
export function servicesForPod(pod: Pod, services: readonly Service[]): Set<string> {
  return matchingServiceKeys(services, pod);
}
