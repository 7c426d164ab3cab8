// Sends the writes a pure reconciler computed, the way upstream does: creates, then updates, then deletes, stopping
// at the first error, and telling the slice tracker about each write so that echoes of our own writes are ignored.
import { ApiError, isNotFound, type KubeClient } from '../runtime/client.js';
import { EndpointSlices } from '../../api/resources.js';
import type { EndpointSlice } from '../../api/wire.js';
import type { SliceWrites } from '../endpointutil/report.js';
import type { EndpointSliceTracker } from '../endpointutil/tracker.js';

/** The API refused a create because the namespace is being deleted: nothing to do, and no reason to retry. */
export function isNamespaceTerminating(err: unknown): boolean {
  return err instanceof ApiError && err.code === 403 && (err.status.details?.causes ?? []).some((cause) => cause.reason === 'NamespaceTerminating');
}

/** The cache is behind the controller's own writes; the sync is retried (upstream StaleInformerCache). */
export class StaleCacheError extends Error {
  constructor(what: string) {
    super(`${what} informer cache is out of date`);
    this.name = 'StaleCacheError';
  }
}

export type SliceOperation = 'create' | 'update' | 'delete';

export interface AppliedSliceWrites {
  /** Slices as the API returned them (creates and updates). */
  written: EndpointSlice[];
  /** A create hit a terminating namespace; the remaining writes were not sent. */
  namespaceTerminating: boolean;
}

/**
 * Sends `writes` for the owner `ownerKey` (ns/name, for error messages). Deletes carry the slice's uid as a
 * precondition, so a newer slice of the same name is never removed; a slice already gone counts as deleted.
 */
export async function applySliceWrites(
  client: KubeClient,
  tracker: EndpointSliceTracker,
  writes: Pick<SliceWrites, 'toCreate' | 'toUpdate' | 'toDelete'>,
  ownerKey: string,
  onWrite: (operation: SliceOperation) => void = () => {},
): Promise<AppliedSliceWrites> {
  const written: EndpointSlice[] = [];
  const saves = [...writes.toCreate.map((slice) => ['create', slice] as const), ...writes.toUpdate.map((slice) => ['update', slice] as const)];
  for (const [operation, slice] of saves) {
    try {
      const stored = operation === 'create' ? await client.create(EndpointSlices, slice) : await client.replace(EndpointSlices, slice);
      tracker.update(stored);
      written.push(stored);
      onWrite(operation);
    } catch (err) {
      if (operation === 'create' && isNamespaceTerminating(err)) return { written, namespaceTerminating: true };
      const name = slice.metadata?.name ? `${slice.metadata.name} ` : '';
      throw new Error(`failed to ${operation} ${name}EndpointSlice for Service ${ownerKey}: ${message(err)}`);
    }
  }
  for (const slice of writes.toDelete) {
    const name = slice.metadata?.name ?? '';
    try {
      await client.delete(EndpointSlices, name, { namespace: slice.metadata?.namespace, uid: slice.metadata?.uid });
      onWrite('delete');
    } catch (err) {
      if (!isNotFound(err)) throw new Error(`failed to delete ${name} EndpointSlice for Service ${ownerKey}: ${message(err)}`);
    }
    tracker.expectDeletion(slice);
  }
  return { written, namespaceTerminating: false };
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
