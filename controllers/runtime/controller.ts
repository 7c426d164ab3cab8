// The controller loop: workers take keys from the work queue and reconcile them. A key is never
// reconciled by two workers at once (the queue guarantees it); failures retry with the queue's
// backoff up to maxRetries, after which the key is dropped until its next change.
import PQueue from 'p-queue';
import type { Logger } from './log.js';
import { telemetry, traced } from './telemetry.js';
import { WorkQueue } from './workqueue.js';
import { workQueueMetrics } from './workqueue-metrics.js';
import type { RateLimiter } from './rate-limiter.js';

export interface ReconcileResult {
  /** Reconcile the key again after this long even though it succeeded (e.g. a grace period). */
  requeueAfterMs?: number;
}

export type Reconciler = (key: string) => Promise<ReconcileResult | void>;

export interface ControllerOptions {
  name: string;
  reconcile: Reconciler;
  workers?: number;
  /** After this many failed retries the key is dropped (upstream EndpointSlice: 15). */
  maxRetries?: number;
  rateLimiter?: RateLimiter<string>;
  log: Logger;
}

export class Controller {
  readonly queue: WorkQueue<string>;
  private readonly pool: PQueue;
  private running: Promise<void> | undefined;
  private readonly reconcileCount;
  private readonly reconcileLatency;
  private readonly queueMetrics;

  constructor(private readonly options: ControllerOptions) {
    const meter = telemetry().meter;
    this.queueMetrics = workQueueMetrics(options.name);
    this.queue = new WorkQueue<string>({ rateLimiter: options.rateLimiter, metrics: this.queueMetrics });
    this.reconcileCount = meter.createCounter('switchboard_reconcile', { description: 'Reconciles by controller and result' });
    this.reconcileLatency = meter.createHistogram('switchboard_reconcile_duration_seconds', { description: 'Reconcile latency', unit: 's' });
    this.pool = new PQueue({ concurrency: options.workers ?? 1 });
  }

  get name(): string {
    return this.options.name;
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Starts the workers; resolves when the queue is shut down and drained. */
  start(): void {
    this.running ??= this.loop();
  }

  private async loop(): Promise<void> {
    for (;;) {
      // Take a key only when a worker is free, so keys wait in the queue (where adds dedupe).
      while (this.pool.pending + this.pool.size >= this.pool.concurrency) await new Promise((r) => this.pool.once('next', r));
      const key = await this.queue.get();
      if (key === undefined) break;
      void this.pool.add(() => this.process(key));
    }
    await this.pool.onIdle();
  }

  private async process(key: string): Promise<void> {
    const { name, log } = this.options;
    const started = process.hrtime.bigint();
    try {
      // A root span: p-queue starts this job from the continuation of the one before, whose span would be the parent.
      const result = await traced(`reconcile ${name}`, { controller: name, key }, () => this.options.reconcile(key), { root: true });
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      this.reconcileCount.add(1, { controller: name, result: 'success' });
    } catch (err) {
      const retries = this.queue.numRequeues(key);
      this.reconcileCount.add(1, { controller: name, result: 'error' });
      if (retries < (this.options.maxRetries ?? 15)) {
        log.warn('reconcile failed; will retry', { controller: name, key, retries, error: String(err) });
        this.queue.addRateLimited(key);
      } else {
        log.error('reconcile failed too often; dropping key until it changes', { controller: name, key, retries, error: String(err) });
        this.queue.forget(key);
      }
    } finally {
      this.reconcileLatency.record(Number(process.hrtime.bigint() - started) / 1e9, { controller: name });
      this.queue.done(key);
    }
  }

  /** Stops taking keys, waits for in-flight reconciles. */
  async stop(): Promise<void> {
    await this.queue.shutDownWithDrain();
    await this.running;
    this.queueMetrics.forget();
  }
}
