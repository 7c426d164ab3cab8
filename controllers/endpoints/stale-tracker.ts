// Stale-cache guard of the Endpoints controller (upstream staleEndpointsTracker, with the #127370 fix): after a
// PUT that changed the resourceVersion, the old resourceVersion must not be seen again in the cache; if it is,
// the cache is behind our own write and the sync is retried. In-memory only.
import type { Endpoints } from '../../api/wire.js';

function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}

export class StaleEndpointsTracker {
  private readonly replacedVersions = new Map<string, string>();

  /** The cached object is the version our last update replaced. */
  isStale(cached: Endpoints): boolean {
    const version = cached.metadata?.resourceVersion;
    return version !== undefined && this.replacedVersions.get(keyOf(cached.metadata?.namespace, cached.metadata?.name)) === version;
  }

  /** Record a successful update; a no-op update (same resourceVersion) records nothing (#127370). */
  recordUpdate(before: Endpoints, after: Endpoints): void {
    const old = before.metadata?.resourceVersion;
    if (old === undefined || old === after.metadata?.resourceVersion) return;
    this.replacedVersions.set(keyOf(before.metadata?.namespace, before.metadata?.name), old);
  }

  forget(namespace: string, name: string): void {
    this.replacedVersions.delete(keyOf(namespace, name));
  }
}
