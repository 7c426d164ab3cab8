// Ownership of the slices the two slice-writing controllers manage: owner references, name prefixes, and which
// listed slices are really theirs.
import type { EndpointSlice, ObjectMeta } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from './constants.js';
import type { SkippedItem } from './report.js';
import type { OwnerReference } from './types.js';

/** The controller owner reference to a core/v1 object (a Service, or the Endpoints for mirrored slices). */
export function controllerOwnerReference(kind: 'Service' | 'Endpoints', owner: { metadata?: ObjectMeta }): OwnerReference {
  return {
    apiVersion: 'v1',
    kind,
    name: owner.metadata?.name ?? '',
    uid: owner.metadata?.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** `<name>-` unless that is no valid DNS-1123 subdomain prefix (over 253 characters), then the bare name. */
export function generateNamePrefix(name: string): string {
  return name.length + 1 > 253 ? name : `${name}-`;
}

/**
 * The slices a controller may touch among those the wiring listed: carrying our managed-by and service-name
 * labels in the owner's namespace, with a name, and not already being deleted (those are dropped silently).
 * Anything else is reported and left alone.
 */
export function managedSlices(
  slices: readonly EndpointSlice[],
  owner: { namespace: string | undefined; name: string | undefined },
  managedBy: string,
): { usable: EndpointSlice[]; skipped: SkippedItem[] } {
  const usable: EndpointSlice[] = [];
  const skipped: SkippedItem[] = [];
  for (const slice of slices) {
    const meta = slice.metadata;
    if (meta?.deletionTimestamp) continue;
    const name = meta?.name ?? '';
    if (!name) {
      skipped.push({ kind: 'EndpointSlice', name: meta?.generateName ?? '', code: 'SliceUnnamed', reason: 'slice has no metadata.name' });
    } else if (meta?.namespace !== owner.namespace || meta?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] !== owner.name || meta?.labels?.[LABEL_MANAGED_BY] !== managedBy) {
      const reason = `slice is not labelled ${LABEL_ENDPOINTSLICE_SERVICE_NAME}=${owner.name}, ${LABEL_MANAGED_BY}=${managedBy} in namespace ${owner.namespace}`;
      skipped.push({ kind: 'EndpointSlice', name, code: 'SliceNotOurs', reason });
    } else {
      usable.push(slice);
    }
  }
  return { usable, skipped };
}
