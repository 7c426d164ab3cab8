// The fence of a lease holder (the elected controller, a speaker's node Lease). The holder may act until `windowMs`
// after the START of its last successful renewal, on its own clock: peers time a lease from the moment they SAW its
// renewal, which is later, so with a window shorter than the lease duration the holder has stopped before any peer
// can take over, however long its requests hang.

export class RenewalFence {
  private lastRenewStart = Number.NEGATIVE_INFINITY;
  private openedAt = Number.POSITIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private wasLive = false;

  constructor(
    private windowMs: number,
    /** Called on every change: true once a renewal lands, false when the window passes (or is dropped). */
    private readonly onChange: (live: boolean) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get live(): boolean {
    return this.now() < this.lastRenewStart + this.windowMs;
  }

  /**
   * Whether the holder was in its window without a break from `at` until now: what it received at `at` may be acted
   * on. False for anything from before the current window opened, e.g. what queued while the process was frozen.
   */
  liveSince(at: number): boolean {
    return this.live && at >= this.openedAt;
  }

  /** When the last successful renewal started (ms since the epoch), or -Infinity. */
  get lastRenewal(): number {
    return this.lastRenewStart;
  }

  /**
   * A renewal that started at `startedAt` succeeded: the window runs from then, `windowMs` long when the renewal
   * wrote another lease duration (a speaker's two paces, node-lease.ts).
   */
  renewed(startedAt: number, windowMs = this.windowMs): void {
    if (!this.live) this.openedAt = startedAt;
    this.lastRenewStart = startedAt;
    this.windowMs = windowMs;
    this.update();
  }

  /** Ends the window no later than `until` (a renewal about to promise peers a shorter one). */
  limit(until: number): void {
    if (this.lastRenewStart + this.windowMs <= until) return;
    this.windowMs = until - this.lastRenewStart;
    this.update();
  }

  /** Closes the window at once (the holder gives the lease up). */
  drop(): void {
    this.lastRenewStart = Number.NEGATIVE_INFINITY;
    this.update();
  }

  /** Stops the timer; no more changes are reported. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private update(): void {
    const live = this.live;
    this.stop();
    if (live) this.timer = setTimeout(() => this.update(), this.lastRenewStart + this.windowMs - this.now());
    if (live === this.wasLive) return;
    this.wasLive = live;
    this.onChange(live);
  }
}
