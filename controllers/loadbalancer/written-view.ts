// A controller's cache as seen through its own writes.
import { objectKey } from '../runtime/client.js';
import type { Store } from '../runtime/store.js';
import type { KubeObject } from '../../api/wire.js';

/** A write the watch has not delivered within this long is forgotten (the object may be gone). */
const TRUST_MS = 10_000;

interface Written<T> {
  object: T;
  /** Versions older than `object`: the one our first write replaced ('' for none) and those we wrote since. */
  older: Set<string>;
  at: number;
}

/**
 * The cache as seen through our own writes: until the watch delivers the object we wrote last, the cache holds a
 * version our writes replaced (or nothing, after a create), and writing from it again would only conflict. A
 * version we did not write means someone else wrote after us: the cache wins.
 */
export class WrittenView<T extends KubeObject> {
  private readonly written = new Map<string, Written<T>>();

  constructor(
    private readonly store: Store<T>,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): T | undefined {
    const cached = this.store.get(key);
    const w = this.written.get(key);
    if (w && w.older.has(cached?.metadata?.resourceVersion ?? '') && this.now() - w.at < TRUST_MS) return w.object;
    this.written.delete(key);
    return cached;
  }

  keys(): string[] {
    return [...new Set([...this.store.keys(), ...this.written.keys()])].filter((k) => this.get(k) !== undefined);
  }

  list(): T[] {
    return this.store.list().map((o) => this.get(objectKey(o)) ?? o);
  }

  /** Records `object` as the server's answer to a write made on top of `base` (undefined for a create). */
  wrote(key: string, base: T | undefined, object: T): void {
    const previous = this.written.get(key);
    const older = new Set(previous?.older ?? []);
    older.add(base?.metadata?.resourceVersion ?? '');
    if (previous?.object.metadata?.resourceVersion) older.add(previous.object.metadata.resourceVersion);
    this.written.set(key, { object, older, at: this.now() });
  }
}
