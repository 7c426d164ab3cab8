// An informer: keeps a local cache of one resource in step with the API server through list + watch.
// - The watch resumes from the last resourceVersion seen (bookmarks keep it fresh), so a dropped
//   stream or a restarted API server loses no event.
// - 410 Gone (the version was compacted away) triggers a relist; objects missing from the new list
//   are reported deleted, so handlers always end on the server's final state.
// - Reconnects back off exponentially, bounded, with jitter.
import { Backoff, sleep } from './backoff.js';
import { isGone, objectKey, WatchIdleError, type ApiStatus, type KubeClient, type ListOptions, type WatchEvent } from './client.js';
import type { Logger } from './log.js';
import type { ResourceType } from '../../api/resources.js';
import { Store, type IndexFunc } from './store.js';
import type { KubeObject } from '../../api/wire.js';

export interface EventHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions<T> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  indexers?: Record<string, IndexFunc<T>>;
  log?: Logger;
  /** Injected for tests; defaults to 800 ms .. 30 s. */
  backoff?: Backoff;
  /**
   * Reduces each object to what the informer's users read, before it is cached and handed to handlers (client-go's
   * TransformFunc). It may change the object in place, and must keep metadata.name, namespace and resourceVersion.
   * It replaces the default, stripManagedFields.
   */
  transform?: (obj: T) => T;
}

/**
 * Applied to every cached object unless an informer has a transform of its own: controllers do not read
 * managedFields, and on a Pod or EndpointSlice they are a third to a half of the JSON (kube-controller-manager drops
 * them from its informers too).
 */
export function stripManagedFields<T extends KubeObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

export class Informer<T extends KubeObject> {
  readonly store: Store<T>;
  private readonly handlers: EventHandlers<T>[] = [];
  private resourceVersion = '';
  private synced = false;
  private readonly syncWaiters: (() => void)[] = [];
  private abortController = new AbortController();
  private abortWatch: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private readonly transform: (obj: T) => T;
  /** How many full lists ran (the first one plus every relist): visible for tests and metrics. */
  listCount = 0;

  constructor(
    private readonly client: KubeClient,
    readonly resource: ResourceType,
    private readonly options: InformerOptions<T> = {},
  ) {
    this.store = new Store<T>(options.indexers);
    this.backoff = options.backoff ?? new Backoff();
    this.transform = options.transform ?? stripManagedFields;
  }

  /** The transform this informer was made with (the Manager refuses to share an informer under another one). */
  get transformFunc(): ((obj: T) => T) | undefined {
    return this.options.transform;
  }

  addEventHandler(handlers: EventHandlers<T>): void {
    this.handlers.push(handlers);
    // A handler added late still hears about every cached object, as with client-go.
    if (this.synced) for (const obj of this.store.list()) this.dispatch('add', undefined, obj);
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    if (this.loop) return;
    this.abortController = new AbortController();
    this.loop = this.run(this.abortController.signal);
  }

  async stop(): Promise<void> {
    this.abortController.abort();
    this.abortWatch?.();
    await this.loop;
    this.loop = undefined;
  }

  private get listOptions(): ListOptions {
    return { namespace: this.options.namespace, labelSelector: this.options.labelSelector, fieldSelector: this.options.fieldSelector };
  }

  private async run(signal: AbortSignal): Promise<void> {
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        needList = await this.watchOnce(signal);
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          needList = true;
          this.options.log?.info('watch expired; relisting', { resource: this.resource.plural, resourceVersion: this.resourceVersion });
          continue;
        }
        // A silent stream is routine on a type that does not change (see WatchIdleError): watch again at once from the
        // last version, on a new connection. A server that is really gone fails that request, which backs off below.
        if (err instanceof WatchIdleError) {
          this.options.log?.debug('watch silent for the idle timeout; watching again', { resource: this.resource.plural, resourceVersion: this.resourceVersion });
          continue;
        }
        const wait = this.backoff.next();
        this.options.log?.warn('list/watch failed; retrying', { resource: this.resource.plural, error: String(err), retryInMs: wait });
        await sleep(wait, signal);
      }
    }
  }

  /** Lists everything and reconciles the cache with it, reporting the differences to handlers. */
  private async relist(): Promise<void> {
    const list = await this.client.listAll<T>(this.resource, this.listOptions);
    this.listCount += 1;
    const seen = new Set<string>();
    for (const raw of list.items) {
      const obj = this.transform(raw);
      const key = objectKey(obj);
      seen.add(key);
      const old = this.store.get(key);
      if (old && old.metadata?.resourceVersion === obj.metadata?.resourceVersion) continue;
      this.store.upsert(obj);
      if (old) this.dispatch('update', old, obj);
      else this.dispatch('add', undefined, obj);
    }
    for (const key of this.store.keys()) {
      if (seen.has(key)) continue;
      const gone = this.store.remove(key)!;
      this.dispatch('delete', undefined, gone);
    }
    this.resourceVersion = list.metadata.resourceVersion ?? '';
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  /** Watches until the stream ends; returns true when a relist is needed (410 Gone). */
  private async watchOnce(signal: AbortSignal): Promise<boolean> {
    let gone = false;
    let failure: unknown;
    const handle = await this.client.watch<T>(
      this.resource,
      {
        ...this.listOptions,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        // Like client-go: a random 5-10 minute server-side timeout spreads reconnects out.
        timeoutSeconds: Math.floor(300 * (1 + Math.random())),
      },
      (event) => {
        try {
          if (this.apply(event)) return;
          gone = true;
        } catch (err) {
          failure = err;
        }
        handle.abort();
      },
    );
    // Connected: the server is back. Without this, a watch broken by each of several outages (never ending cleanly)
    // would wait out an ever longer backoff, up to 30 s, before its next reconnect.
    this.backoff.reset();
    this.abortWatch = handle.abort;
    if (signal.aborted) handle.abort();
    await handle.done;
    if (failure) throw failure;
    return gone;
  }

  /** Applies one watch event to the cache; false when the watch must restart with a relist. */
  private apply(event: WatchEvent<T>): boolean {
    if (event.type === 'ERROR') {
      const status = event.object as ApiStatus;
      if (status.code === 410) {
        this.options.log?.info('watch expired; relisting', { resource: this.resource.plural, message: status.message });
        return false;
      }
      throw new Error(`watch error: ${status.code} ${status.message}`);
    }
    const obj = this.transform(event.object as T);
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    switch (event.type) {
      case 'BOOKMARK':
        return true;
      case 'ADDED':
      case 'MODIFIED': {
        const old = this.store.upsert(obj);
        if (old) this.dispatch('update', old, obj);
        else this.dispatch('add', undefined, obj);
        return true;
      }
      case 'DELETED': {
        const old = this.store.remove(objectKey(obj));
        this.dispatch('delete', undefined, old ?? obj);
        return true;
      }
    }
    return true;
  }

  private dispatch(kind: 'add' | 'update' | 'delete', oldObj: T | undefined, obj: T): void {
    for (const h of this.handlers) {
      try {
        if (kind === 'add') h.onAdd?.(obj);
        else if (kind === 'update') h.onUpdate?.(oldObj!, obj);
        else h.onDelete?.(obj);
      } catch (err) {
        this.options.log?.error('event handler failed', { resource: this.resource.plural, error: String(err) });
      }
    }
  }
}
