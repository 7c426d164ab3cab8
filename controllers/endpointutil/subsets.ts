// Endpoints subsets in canonical form (upstream RepackSubsets) and their order-free comparison; used by the
// Endpoints controller for what it writes and by the mirroring controller for what it reads.
import { portKey } from './ports.js';
import type { EndpointSubset, ObjectReference, SubsetAddress, SubsetPort } from './types.js';

/** IP and target uid joined by a newline, which neither holds; JSON (never a raw newline) for anything else. */
function addressKey(address: SubsetAddress): string {
  const ip: unknown = address.ip;
  const uid: unknown = address.targetRef?.uid ?? '';
  if (typeof ip === 'string' && typeof uid === 'string' && !ip.includes('\n') && !uid.includes('\n')) return `${ip}\n${uid}`;
  return JSON.stringify([ip, uid]);
}

/** A copy that shares nothing with the input (the fields of an address are flat apart from targetRef). */
function copyAddress(address: SubsetAddress): SubsetAddress {
  const copy = { ...address };
  if (address.targetRef) copy.targetRef = { ...address.targetRef };
  return copy;
}

/** By IP text, then target uid (an address without target first), as upstream LessEndpointAddress. */
export function compareAddresses(a: SubsetAddress, b: SubsetAddress): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  if (b.targetRef == null) return a.targetRef == null ? 0 : 1;
  if (a.targetRef == null) return -1;
  const left = a.targetRef.uid ?? '';
  const right = b.targetRef.uid ?? '';
  return left < right ? -1 : left > right ? 1 : 0;
}

function cleanPort(port: SubsetPort): SubsetPort {
  const clean: SubsetPort = { port: port.port, protocol: port.protocol ?? 'TCP' };
  if (port.name) clean.name = port.name;
  if (port.appProtocol != null) clean.appProtocol = port.appProtocol;
  return clean;
}

interface PortGroup {
  /** Undefined for the addresses of port-less subsets (upstream uses a sentinel port -1 for them). */
  port: SubsetPort | undefined;
  readiness: Map<string, boolean>;
}

/** The group's addresses and their readiness in a canonical order, and whether it is a port-less group. */
function addressSetKey(group: PortGroup): string {
  const members = [...group.readiness.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${group.port ? 'ports' : 'portless'}:${JSON.stringify(members)}`;
}

/**
 * Expands subsets to (port, address, ready) and packs them again: addresses are de-duplicated by IP and target
 * uid, not-ready wins over ready for the same address and port, ports with the same address set share a subset,
 * and port-less addresses keep their own port-less subsets. Output order is deterministic (not upstream's md5
 * order, which nobody may rely on).
 */
export function repackSubsets(subsets: readonly EndpointSubset[] | undefined): EndpointSubset[] {
  const addresses = new Map<string, SubsetAddress>();
  const groups = new Map<string, PortGroup>();
  const record = (address: SubsetAddress, groupKey: string, port: SubsetPort | undefined, ready: boolean) => {
    const key = addressKey(address);
    if (!addresses.has(key)) addresses.set(key, copyAddress(address));
    let group = groups.get(groupKey);
    if (!group) {
      group = { port, readiness: new Map() };
      groups.set(groupKey, group);
    }
    const wasReady = group.readiness.get(key);
    if (wasReady === undefined || wasReady) group.readiness.set(key, ready);
  };
  for (const subset of subsets ?? []) {
    const ports: (SubsetPort | undefined)[] = subset.ports?.length ? subset.ports.map(cleanPort) : [undefined];
    for (const port of ports) {
      const groupKey = port ? `port:${portKey(port)}` : 'portless';
      for (const address of subset.addresses ?? []) record(address, groupKey, port, true);
      for (const address of subset.notReadyAddresses ?? []) record(address, groupKey, port, false);
    }
  }

  // Ports offered by exactly the same addresses (with the same readiness) go into one subset. A lone group (one
  // Service port: the usual case) needs no key, which sorts and serialises every address (issue 13: a 5,000-pod
  // Service's Endpoints sync).
  const bySet = new Map<string, { ports: SubsetPort[]; readiness: Map<string, boolean> }>();
  for (const group of groups.values()) {
    const setKey = groups.size === 1 ? '' : addressSetKey(group);
    const entry = bySet.get(setKey) ?? { ports: [], readiness: group.readiness };
    if (group.port) entry.ports.push(group.port);
    bySet.set(setKey, entry);
  }

  const packed: EndpointSubset[] = [];
  for (const { ports, readiness } of bySet.values()) {
    const ready: SubsetAddress[] = [];
    const notReady: SubsetAddress[] = [];
    for (const [key, isReady] of readiness) (isReady ? ready : notReady).push(addresses.get(key)!);
    const subset: EndpointSubset = {};
    if (ready.length) subset.addresses = ready.sort(compareAddresses);
    if (notReady.length) subset.notReadyAddresses = notReady.sort(compareAddresses);
    if (ports.length) subset.ports = ports.sort((a, b) => (portKey(a) < portKey(b) ? -1 : 1));
    packed.push(subset);
  }
  return packed.sort((a, b) => (canonicalSubset(a) < canonicalSubset(b) ? -1 : 1));
}

function canonicalRef(ref: ObjectReference | undefined): unknown {
  if (ref == null) return null;
  return [ref.kind ?? '', ref.namespace ?? '', ref.name ?? '', ref.uid ?? '', ref.apiVersion ?? '', ref.fieldPath ?? ''];
}

/**
 * One address as a string: its fields joined by newlines (a marker tells a missing targetRef from an empty one),
 * or JSON when a field is not a plain newline-free string (JSON never holds a raw newline, so the forms cannot
 * collide). Every sync compares all addresses: JSON for each was a hot spot on large Services (issue 13).
 */
function canonicalAddress(a: SubsetAddress): string {
  const ref = a.targetRef;
  const fields: unknown[] = [a.ip, a.hostname ?? '', a.nodeName ?? ''];
  if (ref == null) fields.push('-');
  else fields.push('+', ref.kind ?? '', ref.namespace ?? '', ref.name ?? '', ref.uid ?? '', ref.apiVersion ?? '', ref.fieldPath ?? '');
  if (fields.every((field) => typeof field === 'string' && !field.includes('\n'))) return fields.join('\n');
  return JSON.stringify([a.ip, a.hostname ?? '', a.nodeName ?? '', canonicalRef(ref)]);
}

function canonicalAddresses(addresses: readonly SubsetAddress[] | undefined): string[] {
  return (addresses ?? []).map(canonicalAddress).sort();
}

/** One subset as a string that ignores order, targetRef.resourceVersion and absent-vs-empty differences. */
function canonicalSubset(subset: EndpointSubset): string {
  return JSON.stringify([
    canonicalAddresses(subset.addresses),
    canonicalAddresses(subset.notReadyAddresses),
    (subset.ports ?? []).map(portKey).sort(),
  ]);
}

/** Subsets are equal as sets, ignoring targetRef.resourceVersion (pod updates must not rewrite Endpoints). */
export function subsetsEqual(a: readonly EndpointSubset[] | undefined, b: readonly EndpointSubset[] | undefined): boolean {
  const left = (a ?? []).map(canonicalSubset).sort();
  const right = (b ?? []).map(canonicalSubset).sort();
  return left.length === right.length && left.every((value, index) => value === right[index]);
}

export function countAddresses(subsets: readonly EndpointSubset[] | undefined): { ready: number; notReady: number } {
  let ready = 0;
  let notReady = 0;
  for (const subset of subsets ?? []) {
    ready += subset.addresses?.length ?? 0;
    notReady += subset.notReadyAddresses?.length ?? 0;
  }
  return { ready, notReady };
}
