// A work queue with client-go's semantics:
// - a key waiting in the queue is held once (adds dedupe);
// - a key is handed to at most one worker at a time; re-added while processing, it is queued again
//   when `done()` is called, so the latest state is always processed after the current run;
// - delayed adds (`addAfter`) and rate-limited adds (per-item backoff + overall bucket);
// - `shutDown()` stops handing out work; `shutDownWithDrain()` also waits for in-flight items.
import { defaultControllerRateLimiter, type RateLimiter } from './rate-limiter.js';

/** client-go's queueMetrics hooks (util/workqueue/metrics.go): what the queue tells its metrics. */
export interface WorkQueueMetrics<T> {
  /** An add that was not a duplicate of an item already waiting. */
  add(item: T): void;
  /** The item was handed to a worker. */
  get(item: T): void;
  /** The worker finished it. */
  done(item: T): void;
  /** A rate-limited (retry) add. */
  retry(): void;
}

export interface WorkQueueOptions<T> {
  rateLimiter?: RateLimiter<T>;
  metrics?: WorkQueueMetrics<T>;
}

/** FIFO with O(1) shift (Array#shift is linear on large arrays). */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

export class WorkQueue<T = string> {
  private readonly queue = new Fifo<T>();
  private readonly dirty = new Set<T>();
  private readonly processing = new Set<T>();
  private readonly waiting = new Map<T, { at: number; timer: NodeJS.Timeout }>();
  private readonly getters: ((item: T | undefined) => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private shuttingDown = false;
  private readonly rateLimiter: RateLimiter<T>;

  constructor(private readonly options: WorkQueueOptions<T> = {}) {
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter<T>();
  }

  add(item: T): void {
    if (this.shuttingDown || this.dirty.has(item)) return;
    this.options.metrics?.add(item);
    this.dirty.add(item);
    if (this.processing.has(item)) return;
    this.enqueue(item);
  }

  /** Hands a dirty item to a waiting worker, or queues it. */
  private enqueue(item: T): void {
    const getter = this.getters.shift();
    if (getter) {
      this.dirty.delete(item);
      this.processing.add(item);
      this.options.metrics?.get(item);
      getter(item);
      return;
    }
    this.queue.push(item);
  }

  /** Adds the item after `delayMs`; an earlier pending delayed add of the same item wins. */
  addAfter(item: T, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(item);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.waiting.get(item);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.waiting.delete(item);
      this.add(item);
    }, delayMs);
    timer.unref();
    this.waiting.set(item, { at, timer });
  }

  addRateLimited(item: T): void {
    if (!this.shuttingDown) this.options.metrics?.retry();
    this.addAfter(item, this.rateLimiter.when(item));
  }

  /** Clears the item's failure history; call after a successful reconcile. */
  forget(item: T): void {
    this.rateLimiter.forget(item);
  }

  numRequeues(item: T): number {
    return this.rateLimiter.numRequeues(item);
  }

  /** Resolves with the next item, or undefined once the queue is shut down and empty. */
  get(): Promise<T | undefined> {
    const item = this.queue.shift();
    if (item !== undefined) {
      this.dirty.delete(item);
      this.processing.add(item);
      this.options.metrics?.get(item);
      return Promise.resolve(item);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Marks the item processed; if it was re-added meanwhile it goes back in the queue. */
  done(item: T): void {
    if (this.processing.delete(item)) this.options.metrics?.done(item);
    // Re-queued even during shutdown, as client-go does, so a drain still sees the latest state.
    if (this.dirty.has(item)) this.enqueue(item);
    if (this.processing.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  /**
   * A worker will take the item after now: it waits in the queue, or was re-added while a worker has it (it runs
   * again once that worker is done). A new add would change nothing.
   */
  isQueued(item: T): boolean {
    return this.dirty.has(item);
  }

  len(): number {
    return this.queue.length;
  }

  /** Nothing queued, handed out or waiting for a delayed or rate-limited add. */
  idle(): boolean {
    return this.queue.length === 0 && this.processing.size === 0 && this.waiting.size === 0;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    for (const resolve of this.getters.splice(0)) resolve(undefined);
  }

  /** Shuts down, then resolves once every item handed out has been marked done. */
  async shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }
}
