// Waiting for the informer to deliver the echo of the controller's own writes, instead of failing the sync.
//
// Why (issue 13): in Node.js the answer to a write and the watch event that carries the same write are read on one
// thread. A Service re-queued while its sync was writing (pods keep changing) is handed out again as soon as the
// write's promise resolves, before the watch socket is read, so that next sync always finds the cache one write
// behind. Upstream fails such a sync (StaleInformerCache) and retries it with exponential backoff: there its informer
// runs on its own goroutine and has nearly always caught up, so that is rare (6-26 retries on 1 Service × 5,000
// pods); here it was the rule (116-430, and a key whose backoff grew to minutes or was dropped). The echo arrives a
// few milliseconds later, so a sync now waits for the next cache event of its key and checks again; only a cache
// that stays behind for `timeoutMs` fails the sync (and is retried with backoff, as upstream).
import { telemetry } from '../runtime/telemetry.js';

export class CacheCatchUp {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly waits;

  /** `controller` labels the metric: endpoint_slice, endpoint, endpoint_slice_mirroring. */
  constructor(
    private readonly controller: string,
    private readonly timeoutMs = 5000,
  ) {
    this.waits = telemetry().meter.createCounter('switchboard_stale_cache_waits', {
      description: 'Syncs that found the cache behind their own writes and waited for it, by outcome',
    });
  }

  /** A cache event concerning `key` arrived (the informer has already applied it): wake the syncs waiting on it. */
  notify(key: string): void {
    const waiting = this.waiters.get(key);
    if (!waiting) return;
    this.waiters.delete(key);
    for (const wake of waiting) wake();
  }

  /**
   * Resolves true at once when `stale()` is false, else re-checks it after each event for `key` until it is; false
   * when it is still stale after the timeout.
   */
  async caughtUp(key: string, stale: () => boolean): Promise<boolean> {
    if (!stale()) return true;
    const deadline = Date.now() + this.timeoutMs;
    while (stale()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.waits.add(1, { controller: this.controller, result: 'timed-out' });
        return false;
      }
      await new Promise<void>((resolve) => {
        let waiting = this.waiters.get(key);
        if (!waiting) this.waiters.set(key, (waiting = new Set()));
        const wake = () => {
          clearTimeout(timer);
          waiting.delete(wake);
          if (waiting.size === 0 && this.waiters.get(key) === waiting) this.waiters.delete(key);
          resolve();
        };
        const timer = setTimeout(wake, left);
        waiting.add(wake);
      });
    }
    this.waits.add(1, { controller: this.controller, result: 'caught-up' });
    return true;
  }
}
