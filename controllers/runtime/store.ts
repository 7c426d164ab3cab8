// The informer's cache: objects by key plus secondary indexes (e.g. pods by namespace, slices by
// Service), kept in step on every add, update and delete.
import { objectKey } from './client.js';
import type { KubeObject } from '../../api/wire.js';

/** Index function: the index values an object is filed under. */
export type IndexFunc<T> = (obj: T) => string[];

export const byNamespace = <T extends KubeObject>(obj: T): string[] => [obj.metadata?.namespace ?? ''];

/** Files an object under `namespace/<label value>` of the given label, if set. */
export const byLabel =
  <T extends KubeObject>(label: string): IndexFunc<T> =>
  (obj) => {
    const v = obj.metadata?.labels?.[label];
    return v === undefined ? [] : [`${obj.metadata?.namespace ?? ''}/${v}`];
  };

export class Store<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();

  private readonly indexers: Record<string, IndexFunc<T>>;

  constructor(indexers: Record<string, IndexFunc<T>> = {}) {
    this.indexers = { ...indexers };
    for (const name of Object.keys(indexers)) this.indices.set(name, new Map());
  }

  /**
   * Adds an index after construction (jobs register in any order and may share an informer). A name already
   * indexed is kept: an index name must mean the same thing to every user of the informer.
   */
  addIndexer(name: string, fn: IndexFunc<T>): void {
    if (this.indices.has(name)) return;
    this.indexers[name] = fn;
    const index = new Map<string, Set<string>>();
    this.indices.set(name, index);
    for (const [key, obj] of this.items) fileUnder(index, key, fn(obj));
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  get size(): number {
    return this.items.size;
  }

  /** Objects filed under `value` in index `indexName`. */
  byIndex(indexName: string, value: string): T[] {
    const index = this.indices.get(indexName);
    if (!index) throw new Error(`no index named ${indexName}`);
    return [...(index.get(value) ?? [])].map((k) => this.items.get(k)!).filter(Boolean);
  }

  /** How many objects are filed under `value` in index `indexName`, without listing them. */
  countByIndex(indexName: string, value: string): number {
    const index = this.indices.get(indexName);
    if (!index) throw new Error(`no index named ${indexName}`);
    return index.get(value)?.size ?? 0;
  }

  /** Inserts or replaces; returns the previous object. */
  upsert(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.items.get(key);
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    this.index(key, obj);
    return old;
  }

  /** Removes by key; returns the removed object. */
  remove(key: string): T | undefined {
    const old = this.items.get(key);
    if (!old) return undefined;
    this.unindex(key, old);
    this.items.delete(key);
    return old;
  }

  private index(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.indexers)) fileUnder(this.indices.get(name)!, key, fn(obj));
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.indexers)) {
      const index = this.indices.get(name)!;
      for (const v of fn(obj)) {
        const set = index.get(v);
        set?.delete(key);
        if (set?.size === 0) index.delete(v);
      }
    }
  }
}

function fileUnder(index: Map<string, Set<string>>, key: string, values: string[]): void {
  for (const v of values) {
    let set = index.get(v);
    if (!set) index.set(v, (set = new Set()));
    set.add(key);
  }
}
