// Identity and comparison of EndpointSlice endpoints (upstream EndpointSet / EndpointsEqualBeyondHash).
import type { ObjectReference, SliceEndpoint } from './types.js';

/**
 * An endpoint is identified by its sorted addresses, hostname and target namespace/name. The uid is left out on
 * purpose: a pod recreated with the same name and IP (a StatefulSet) is updated in place, not replaced.
 */
export function endpointKey(endpoint: SliceEndpoint): string {
  const addresses: unknown[] = Array.isArray(endpoint?.addresses) ? endpoint.addresses : [];
  const fields: unknown[] = [addresses[0], endpoint?.hostname ?? '', endpoint?.targetRef?.namespace ?? '', endpoint?.targetRef?.name ?? ''];
  // The usual endpoint (one address, plain strings) joined by newlines, which these fields never hold; anything
  // else as JSON, which never holds a raw newline, so the two forms cannot collide. A sync keys every endpoint
  // three times: JSON for all of them was a hot spot on large Services (issue 13).
  if (addresses.length === 1 && fields.every((field) => typeof field === 'string' && !field.includes('\n'))) return fields.join('\n');
  return JSON.stringify([[...addresses].sort(), ...fields.slice(1)]);
}

/** Object references are equal apart from resourceVersion (pod updates must not cause endpoint writes). */
export function targetRefsEqual(a: ObjectReference | undefined, b: ObjectReference | undefined): boolean {
  if (a == null || b == null) return a == null && b == null;
  const fields = ['apiVersion', 'kind', 'namespace', 'name', 'uid', 'fieldPath'] as const;
  return fields.every((field) => (a[field] ?? '') === (b[field] ?? ''));
}

/**
 * The fields the key does not cover: nodeName, zone, the three conditions and targetRef. Hints are not compared;
 * the hint logic decides on its own whether a slice needs rewriting for them.
 */
export function endpointsEqualBeyondKey(a: SliceEndpoint, b: SliceEndpoint): boolean {
  return (
    a.nodeName === b.nodeName &&
    a.zone === b.zone &&
    a.conditions?.ready === b.conditions?.ready &&
    a.conditions?.serving === b.conditions?.serving &&
    a.conditions?.terminating === b.conditions?.terminating &&
    targetRefsEqual(a.targetRef, b.targetRef)
  );
}

/** Desired endpoints by key, in insertion order; removing while iterating is how slices claim them. */
export class EndpointSet {
  private readonly byKey = new Map<string, SliceEndpoint>();

  insert(endpoint: SliceEndpoint): void {
    this.byKey.set(endpointKey(endpoint), endpoint);
  }

  get(endpoint: SliceEndpoint): SliceEndpoint | undefined {
    return this.byKey.get(endpointKey(endpoint));
  }

  /** Removes and returns the endpoint with the same identity. */
  take(endpoint: SliceEndpoint): SliceEndpoint | undefined {
    const key = endpointKey(endpoint);
    const found = this.byKey.get(key);
    if (found) this.byKey.delete(key);
    return found;
  }

  /** Takes any one endpoint out (the first inserted, which keeps results reproducible). */
  popAny(): SliceEndpoint | undefined {
    const first = this.byKey.entries().next();
    if (first.done) return undefined;
    this.byKey.delete(first.value[0]);
    return first.value[1];
  }

  get size(): number {
    return this.byKey.size;
  }
}
