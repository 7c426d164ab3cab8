// Whether the API server is idle: the pod-sync batcher asks when pod events pause, to tell the end of a load from a
// stall of the API server (pod-sync-batcher.ts). The probe is a consistent read of one pod: the API server serves it
// once its watch cache holds every revision etcd has (or from etcd), so every pod write committed before it is on
// its way to the informer; and its latency says whether the API server is busy. Measured on bench-compare's
// 10,000-pod flap: while the pod stream paused for 40-300 ms in the middle of the load the read took 190-1375 ms;
// after the last write it took 7-21 ms.

/** A read slower than this is never taken for idle, whatever the fastest seen (a first probe under load, say). */
const MAX_IDLE_MS = 100;
/** Idle: within this factor of the fastest read seen, plus IDLE_SLACK_MS for the jitter of a small one. */
const IDLE_FACTOR = 2;
const IDLE_SLACK_MS = 10;

export class ApiServerProbe {
  private fastestMs = Infinity;
  private inFlight: { startedAt: number; idle: Promise<boolean> } | undefined;

  constructor(
    /** The read; its answer is ignored, a failure means "not idle". */
    private readonly read: () => Promise<unknown>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Sends the read (or shares one in flight that was sent at or after `since`) and answers whether it came back at
   * the API server's idle speed. Never rejects.
   */
  idleSince(since: number): Promise<boolean> {
    if (this.inFlight && this.inFlight.startedAt >= since) return this.inFlight.idle;
    const startedAt = this.now();
    const idle = this.read().then(
      () => {
        const ms = this.now() - startedAt;
        this.fastestMs = Math.min(this.fastestMs, ms);
        return ms <= MAX_IDLE_MS && ms <= this.fastestMs * IDLE_FACTOR + IDLE_SLACK_MS;
      },
      () => false,
    );
    const entry = { startedAt, idle };
    this.inFlight = entry;
    void idle.then(() => {
      if (this.inFlight === entry) this.inFlight = undefined;
    });
    return idle;
  }
}
