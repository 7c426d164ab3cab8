// Pod facts the endpoint controllers look at: readiness, terminal phase, terminating, IPs, hostname rule.
import type { Pod, Service } from '../../api/wire.js';
import type { AddressType } from './constants.js';
import { readIPFamily } from './ip.js';
import type { SkippedItem } from './report.js';
import { selectorMatches } from './service.js';

export function podReadyCondition(pod: Pod): { status: string; lastTransitionTime?: string } | undefined {
  return pod.status?.conditions?.find((condition) => condition.type === 'Ready');
}

/** The pod's Ready condition is True. */
export function isPodReady(pod: Pod): boolean {
  return podReadyCondition(pod)?.status === 'True';
}

/** Succeeded or Failed: all containers stopped for good. */
export function isPodTerminal(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

export function isPodTerminating(pod: Pod): boolean {
  return pod.metadata?.deletionTimestamp != null;
}

/** status.podIPs, or status.podIP alone when an old kubelet filled only that. */
export function podIPTexts(pod: Pod): string[] {
  const listed = (pod.status?.podIPs ?? []).map((entry) => entry?.ip).filter((ip): ip is string => !!ip);
  if (listed.length > 0) return listed;
  return pod.status?.podIP ? [pod.status.podIP] : [];
}

/**
 * The pod's IPs of one family, in order, as written (`text`) and canonical. Unparsable IPs are reported, and so is a
 * pod with no IP of the family.
 */
export function podIPsOfFamily(pod: Pod, family: AddressType, skipped: SkippedItem[]): { text: string; canonical: string }[] {
  const found: { text: string; canonical: string }[] = [];
  for (const text of podIPTexts(pod)) {
    const ip = readIPFamily(text);
    if (!ip) skipped.push({ kind: 'Pod', name: podName(pod), code: 'PodInvalidIP', reason: `pod IP "${text}" is not an IP address` });
    else if (ip.family === family) found.push({ text, canonical: ip.canonical });
  }
  if (found.length === 0) skipped.push({ kind: 'Pod', name: podName(pod), code: 'PodNoIPOfFamily', reason: `pod has no ${family} address` });
  return found;
}

export type PodEligibility = 'eligible' | 'terminal' | 'no-ip' | 'terminating';

/**
 * Upstream ShouldPodBeInEndpoints: terminal pods and pods without any IP are out; terminating pods are in only
 * when includeTerminating (always for slices, publishNotReadyAddresses for Endpoints).
 */
export function podEligibility(pod: Pod, includeTerminating: boolean): PodEligibility {
  if (isPodTerminal(pod)) return 'terminal';
  if (!pod.status?.podIP && (pod.status?.podIPs ?? []).length === 0) return 'no-ip';
  if (!includeTerminating && isPodTerminating(pod)) return 'terminating';
  return 'eligible';
}

/** The pod's hostname is published when its subdomain is the Service's name (headless or not). */
export function shouldSetHostname(pod: Pod, service: Service): boolean {
  const hostname = pod.spec?.hostname ?? '';
  return (
    hostname.length > 0 &&
    (pod.spec?.subdomain ?? '') === service.metadata?.name &&
    pod.metadata?.namespace === service.metadata?.namespace
  );
}

export function podName(pod: Pod): string {
  return pod.metadata?.name ?? '';
}

export function podTargetRef(pod: Pod): { kind: string; namespace?: string; name?: string; uid?: string } {
  return { kind: 'Pod', namespace: pod.metadata?.namespace, name: pod.metadata?.name, uid: pod.metadata?.uid };
}

/**
 * The pods a Service publishes: in its namespace, matched by its selector, and eligible (see podEligibility).
 * Pods of another namespace and pods without any IP are reported; terminal or excluded terminating pods are not.
 */
export function podsToPublish(service: Service, pods: readonly Pod[], includeTerminating: boolean, skipped: SkippedItem[]): Pod[] {
  const selector = service.spec?.selector ?? {};
  return pods.filter((pod) => {
    const name = podName(pod);
    if (pod.metadata?.namespace !== service.metadata?.namespace) {
      skipped.push({ kind: 'Pod', name, code: 'PodOtherNamespace', reason: `pod is in namespace ${pod.metadata?.namespace}` });
      return false;
    }
    if (!selectorMatches(selector, pod.metadata?.labels)) return false;
    const eligibility = podEligibility(pod, includeTerminating);
    if (eligibility === 'no-ip') skipped.push({ kind: 'Pod', name, code: 'PodNoIP', reason: 'pod has no IP address yet' });
    return eligibility === 'eligible';
  });
}
