// Adaptive batching of pod-triggered syncs (issue 13). kube-controller-manager with its default client limits writes
// few objects under load because its syncs wait for QPS tokens and take in many pod changes each, and it is stale
// for seconds after the load stops while its backlog drains; unthrottled, it writes once per change or two. Here:
// - a change for a Service whose sync will run after it anyway adds nothing: the sync is queued, or is in flight
//   and already re-added (WorkQueue.isQueued), so it reads the latest cache;
// - a quiet cluster syncs at once (a burst of tokens), so a single change or a flap is written without delay;
// - under sustained load, pod-triggered syncs start at most `ratePerSecond` a second, oldest first, so each one
//   takes in every change that arrived meanwhile (a Service whose sync is in flight and not yet re-added waits
//   here too, for one token, not one per pod event); a sync that wrote several objects is charged one token per
//   extra write (`charge`), so the budget is on writes, as kube-controller-manager's client QPS is: one large
//   Service synced back to back otherwise rewrote its slices as often as its syncs could run;
// - once pod events stop for `quietMs`, everything still waiting is released at once: the last changes are not
//   held back by the budget, so convergence after the last change stays short.
// Service and slice events do not come through here: they sync at once, as upstream.
//
// Measured with bench-compare (README, "Against kube-controller-manager"): `quietMs` was 200 and an in-flight
// Service took one token per pod event (the queue did not count it as queued), which both exhausted the budget
// and, once released late, ran a redundant third sync; on 1 Service × 5,000 pods a flap converged in 1.6 s. The
// queue now counts a re-added in-flight key as queued, 50 ms of silence is enough to call the load over (the
// bench's writers, 48 at a time, leave no such gap while they run), and extra writes are charged.

export interface PodSyncBatcherOptions {
  ratePerSecond: number;
  burst: number;
  quietMs: number;
  /** Injected for tests. */
  now?: () => number;
}

/** Chosen from bench-compare (make bench-compare): see the README's benchmark section. */
export const DEFAULT_POD_SYNC_BATCHING: PodSyncBatcherOptions = { ratePerSecond: 20, burst: 30, quietMs: 50 };

export class PodSyncBatcher {
  /** Keys waiting for a token, oldest first (a Set keeps insertion order). */
  private readonly pending = new Set<string>();
  private tokens: number;
  private refilledAt: number;
  private lastChangeAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    /** Hands a key to the work queue. */
    private readonly release: (key: string) => void,
    /** The key's sync is queued and not started: it will see this change anyway. */
    private readonly queued: (key: string) => boolean,
    private readonly options: PodSyncBatcherOptions = DEFAULT_POD_SYNC_BATCHING,
  ) {
    this.now = options.now ?? Date.now;
    this.tokens = options.burst;
    this.refilledAt = this.now();
  }

  /** A pod change concerns these Services. */
  changed(keys: Iterable<string>): void {
    this.lastChangeAt = this.now();
    for (const key of keys) if (!this.queued(key)) this.pending.add(key);
    this.pump();
  }

  /**
   * A sync released here wrote `writes` objects: the first was paid for by its token, each further one takes a token
   * too (the balance may go below zero, which holds back the next releases until it is repaid).
   */
  charge(writes: number): void {
    if (writes <= 1) return;
    this.refill(this.now());
    this.tokens -= writes - 1;
  }

  get waiting(): number {
    return this.pending.size;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.options.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.options.ratePerSecond);
    this.refilledAt = now;
  }

  /** Releases what the budget (or a quiet spell) allows, and arms a timer for the rest. */
  pump(): void {
    const now = this.now();
    this.refill(now);
    const quiet = now - this.lastChangeAt >= this.options.quietMs;
    for (const key of this.pending) {
      if (!quiet) {
        if (this.tokens < 1) break;
        this.tokens -= 1;
      }
      this.pending.delete(key);
      this.release(key);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const untilToken = ((1 - this.tokens) / this.options.ratePerSecond) * 1000;
    const untilQuiet = this.lastChangeAt + this.options.quietMs - now;
    this.timer = setTimeout(() => this.pump(), Math.max(1, Math.min(untilToken, untilQuiet)));
    this.timer.unref();
  }
}
