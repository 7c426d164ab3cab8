// The slice tracker (upstream EndpointSliceTracker): remembers the generation the controller itself wrote for each
// slice, so that the wiring can ignore echoes of its own writes and detect an informer cache that lags behind them.
// In-memory only; the wiring calls update()/expectDeletion() after each successful write.
import type { EndpointSlice, Service } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME } from './constants.js';

/** Tracked generation meaning "we deleted it and expect the cache to drop it". */
export const DELETION_EXPECTED = -1;

/** What the tracker reads of a slice: a write's answer carries only this (KubeClient.createForMetadata). */
type SliceMetadata = Pick<EndpointSlice, 'metadata'>;

/** Expected generation by slice uid. */
export type GenerationsBySlice = ReadonlyMap<string, number>;

function sliceUID(slice: SliceMetadata): string {
  return slice.metadata?.uid ?? '';
}

function sliceGeneration(slice: SliceMetadata): number {
  return slice.metadata?.generation ?? 0;
}

/**
 * Whether the cached slices are older than what the controller wrote: a cached slice we deleted, a cached slice
 * older than the generation we wrote, or a slice we wrote (and did not delete) missing from the cache.
 */
export function isSliceCacheStale(expected: GenerationsBySlice, cachedSlices: readonly EndpointSlice[]): boolean {
  const cachedUIDs = new Set<string>();
  for (const slice of cachedSlices) {
    cachedUIDs.add(sliceUID(slice));
    const generation = expected.get(sliceUID(slice));
    if (generation !== undefined && (generation === DELETION_EXPECTED || generation > sliceGeneration(slice))) return true;
  }
  for (const [uid, generation] of expected) {
    if (generation !== DELETION_EXPECTED && !cachedUIDs.has(uid)) return true;
  }
  return false;
}

/** Key of the owning Service (or Endpoints, for mirrored slices): namespace/service-name label. */
export function sliceOwnerKey(slice: SliceMetadata): string {
  return `${slice.metadata?.namespace ?? ''}/${slice.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] ?? ''}`;
}

export class EndpointSliceTracker {
  private readonly generationsByOwner = new Map<string, Map<string, number>>();
  private readonly ownerUIDs = new Map<string, string>();

  /** The tracker knows this slice. */
  has(slice: EndpointSlice): boolean {
    return this.generationsByOwner.get(sliceOwnerKey(slice))?.has(sliceUID(slice)) ?? false;
  }

  /** An informer event for this slice is news: unknown slice, or a generation newer than we wrote. */
  shouldSync(slice: EndpointSlice): boolean {
    const generation = this.generationsByOwner.get(sliceOwnerKey(slice))?.get(sliceUID(slice));
    return generation === undefined || sliceGeneration(slice) > generation;
  }

  /**
   * The cache lags behind our writes for this Service (or Endpoints). If the owner was recreated under the same
   * name (new uid), writes made for the old one are forgotten first so they cannot block the new one.
   */
  staleSlices(owner: Pick<Service, 'metadata'>, cachedSlices: readonly EndpointSlice[]): boolean {
    const key = `${owner.metadata?.namespace ?? ''}/${owner.metadata?.name ?? ''}`;
    const uid = owner.metadata?.uid ?? '';
    const trackedUID = this.ownerUIDs.get(key);
    if (trackedUID && uid && trackedUID !== uid) this.generationsByOwner.delete(key);
    this.ownerUIDs.set(key, uid);
    const expected = this.generationsByOwner.get(key);
    return expected !== undefined && isSliceCacheStale(expected, cachedSlices);
  }

  /** Record the slice as returned by a create or update. */
  update(slice: SliceMetadata): void {
    this.generationsFor(slice).set(sliceUID(slice), sliceGeneration(slice));
  }

  /** Record that we deleted the slice. */
  expectDeletion(slice: SliceMetadata): void {
    this.generationsFor(slice).set(sliceUID(slice), DELETION_EXPECTED);
  }

  /** Forget a deleted slice; false means we did not expect the deletion and the owner should be synced. */
  handleDeletion(slice: EndpointSlice): boolean {
    const generations = this.generationsByOwner.get(sliceOwnerKey(slice));
    if (!generations) return true;
    const generation = generations.get(sliceUID(slice));
    generations.delete(sliceUID(slice));
    return generation === undefined || generation === DELETION_EXPECTED;
  }

  /** Forget everything about a deleted owner. */
  deleteOwner(namespace: string, name: string): void {
    this.generationsByOwner.delete(`${namespace}/${name}`);
    this.ownerUIDs.delete(`${namespace}/${name}`);
  }

  private generationsFor(slice: SliceMetadata): Map<string, number> {
    const key = sliceOwnerKey(slice);
    let generations = this.generationsByOwner.get(key);
    if (!generations) {
      generations = new Map();
      this.generationsByOwner.set(key, generations);
    }
    return generations;
  }
}
