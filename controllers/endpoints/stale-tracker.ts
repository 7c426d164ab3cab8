// Stale-cache guard of the Endpoints controller (upstream staleEndpointsTracker, with the #127370 fix): after a
// PUT that changed the resourceVersion, the old resourceVersion must not be seen again in the cache; if it is,
// the cache is behind our own write and the sync waits (or is retried). Unlike upstream it also remembers creates
// and deletes until their echo arrives: a sync that ran before the echo of its own create saw no object and created
// it again (409 AlreadyExists, retried with backoff), one before the echo of a delete deleted it again. In-memory only.
import type { Endpoints } from '../../api/wire.js';

function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}

export class StaleEndpointsTracker {
  private readonly replacedVersions = new Map<string, string>();
  /** Objects we created whose ADDED event has not arrived yet. */
  private readonly created = new Set<string>();
  /** resourceVersion of objects we deleted whose DELETED event has not arrived yet. */
  private readonly deletedVersions = new Map<string, string>();

  /** `cached` (the cache's object for `key`, if any) is older than our last write to it. */
  isStale(key: string, cached: Endpoints | undefined): boolean {
    if (!cached) return this.created.has(key);
    const version = cached.metadata?.resourceVersion;
    return version !== undefined && (this.replacedVersions.get(key) === version || this.deletedVersions.get(key) === version);
  }

  /** Record a successful update; a no-op update (same resourceVersion) records nothing (#127370). */
  recordUpdate(before: Endpoints, after: Endpoints): void {
    const old = before.metadata?.resourceVersion;
    if (old === undefined || old === after.metadata?.resourceVersion) return;
    this.replacedVersions.set(keyOf(before.metadata?.namespace, before.metadata?.name), old);
  }

  recordCreate(created: Endpoints): void {
    this.created.add(keyOf(created.metadata?.namespace, created.metadata?.name));
  }

  /** Record that we deleted `deleted` (the cached object the delete was based on). */
  recordDelete(deleted: Endpoints): void {
    const version = deleted.metadata?.resourceVersion;
    if (version !== undefined) this.deletedVersions.set(keyOf(deleted.metadata?.namespace, deleted.metadata?.name), version);
  }

  /** The informer delivered an event for this object: what it awaited has arrived (or been overtaken). */
  observed(endpoints: Endpoints, deleted: boolean): void {
    const key = keyOf(endpoints.metadata?.namespace, endpoints.metadata?.name);
    this.created.delete(key);
    if (deleted) this.deletedVersions.delete(key);
  }

  forget(namespace: string, name: string): void {
    const key = keyOf(namespace, name);
    this.replacedVersions.delete(key);
    this.created.delete(key);
    this.deletedVersions.delete(key);
  }
}
