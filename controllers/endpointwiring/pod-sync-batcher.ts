// Adaptive batching of pod-triggered syncs (issue 13). kube-controller-manager with its default client limits writes
// few objects under load because its syncs wait for QPS tokens and take in many pod changes each, and it is stale
// for seconds after the load stops while its backlog drains; unthrottled, it writes once per change or two. Here:
// - a change for a Service whose sync will run after it anyway adds nothing: the sync is queued, or is in flight
//   and already re-added (WorkQueue.isQueued), so it reads the latest cache;
// - a quiet cluster syncs at once (a burst of tokens), so a single change or a flap is written without delay;
// - under sustained load, pod-triggered syncs start at most `ratePerSecond` a second, oldest first, so each one
//   takes in every change that arrived meanwhile; a sync that wrote several objects is charged one token per extra
//   write (`charge`), so the budget is on writes, as kube-controller-manager's client QPS is. The rate is half of
//   KCM's default QPS: KCM default writes at its QPS for as long as the load lasts, and the load lasts longer when
//   the API server is busier, which our own writes make it;
// - a Service that keeps changing is synced at most once per its own interval, which doubles from `minIntervalMs`
//   to `maxIntervalMs` while each of its syncs follows the previous one closely, and starts again from zero once
//   it has been left alone: one busy Service (1 × 5,000 pods) is written a few times a second at first and every
//   `maxIntervalMs` under a long stream, whatever the global budget, while others are not held back by it;
// - once pod events stop for the quiet period, everything still waiting is released at once (interval and budget
//   aside), so convergence after the last change stays short. Those syncs are charged to the budget all the same
//   (it may go up to `MAX_DEBT_SECONDS` of its rate into debt): if the load resumes, a false end of it is paid back
//   by holding later releases instead of adding writes, and a real end leaves nothing to hold. The quiet period is
//   judged from the pod events as the informer hands them over (`sawPodEvent`, not after coalescing), and
//   confirmed after the event loop has read its sockets (setImmediate): a stalled loop (a full GC, a burst of
//   syncs) left events unread and looked quiet. It starts at `quietMs` and doubles, up to `maxQuietMs`, each time
//   pod events resume within `FALSE_END_MS` of a release (the API server stalled: the load had not ended); it
//   halves back for each `FALSE_END_MS` a release held, so a new burst after seconds of silence starts short. On a
//   busy machine the API server pauses for 200 ms and more every second or so; a cap of 200 ms let each pause
//   release everything (47 false ends in one minute at load 5).
// - the learned period is for bulk releases. One of `FEW_KEYS` Services or fewer that the tokens at hand cover (one
//   big Service under a stream of changes) waits a fixed `fewKeysQuietMs` and teaches nothing, since a learned
//   period adds its length to every end. Creating 5,000 pods, one stall taught 400 ms, kept to the end 9 s later:
//   convergence 0.57 s against KCM unthrottled's 0.21 s. A period that decayed for every release instead let each
//   false end release 100 Services: 1.5× KCM default's writes creating 10,000 pods. The fixed period is longer than
//   the bulk one's start because such a false end is not cheap: it is a sync of the whole big Service, which writes
//   every slice whose pods changed since its last one. Traced on 1 × 5,000 pods, the API server's pauses within a
//   stream lasted 40-280 ms; at 50 ms nearly every sync of the big Service was released by one, so its interval
//   never held: the flap wrote 1.25× KCM default's slices. At 150 ms (and with the writes of a sync sent together,
//   api-writes.ts, which took 0.1-0.7 s off the last sync) the same run wrote 0.38× (create), 0.64× (rolling
//   update) and 0.96× (flap) KCM default's slices, converging in 0.26-0.37 s against KCM unthrottled's 0.34-0.52 s.
// - both periods are what a pause must last when nothing else tells a stall from an end. The API server can: in a
//   pause of the base `quietMs` with keys waiting, the batcher asks a probe (api-server-probe.ts: a consistent read
//   of one pod), and again a base period after each busy answer; if the read comes back at the API server's idle
//   speed and no pod event arrived meanwhile, the pause is an end and everything is released then. Traced on the
//   10,000-pod flap: the pod stream's pauses came while the API server used both cores and the read took 190-1375
//   ms; after the last write it took 7-21 ms. The release came 160-220 ms after the last write instead of 420-500
//   ms (the learned 400 ms).
// - a Service whose own burst of pod events is over is released though other Services' events go on
//   (`releaseSettled`): quiet for four times its two latest gaps between events, and for at least `settleMs` and
//   the learned quiet period (a stall of the API server holds back a burst's last events as it holds the stream).
//   It keeps its interval and takes a token (into debt if need be). Gaps, not quiet alone: in a create across
//   many Services each one changes every second or so, and a quiet of `settleMs` between is no end; a burst's
//   events handed over together are 0 ms apart. Traced on the 10,000-pod flap (the harness turns each
//   Service's pods not-ready and back one Service after another): every Service still waited when the last pod
//   turned back, and the drain of 60-100 Services per controller took 1.0-1.6 s; with the settled release, 0-5
//   waited and the flap converged in 0.37-0.74 s instead of 0.87-1.29 s (six runs against eight, Switchboard
//   alone), writing each Service twice (down, then up: 202-211 slices against 93-207).
// Service and slice events do not come through here: they sync at once, as upstream.
//
// Measured with bench-compare, creating 10,000 pods (README, "Against kube-controller-manager"): with a 50 ms quiet
// period judged after coalescing, 20 tokens a second and no debt, Switchboard wrote 2712 + 2791 objects where KCM
// default wrote 673 + 673 (40 a second per controller at load 3.5, against its budget of 20); with the quiet
// period confirmed after I/O and learned up to 200 ms, 10 tokens a second, and echoes no longer taken for edits
// (slice-events.ts), 550-760 + 547-758 at load 2-3 (the phase lasted 26-38 s as the machine's other load varied).

import type { ApiServerProbe } from './api-server-probe.js';

export interface PodSyncBatcherOptions {
  ratePerSecond: number;
  burst: number;
  /** Quiet period of a bulk release at first; learned from its false ends up to `maxQuietMs`. */
  quietMs: number;
  maxQuietMs: number;
  /** Quiet period of a release of a few keys that the tokens at hand cover (see FEW_KEYS). */
  fewKeysQuietMs: number;
  /** The shortest quiet spell of its own after which a Service's burst of changes counts as over (see `settledAt`). */
  settleMs: number;
  minIntervalMs: number;
  maxIntervalMs: number;
  /** Injected for tests. */
  now?: () => number;
}

/** Chosen from bench-compare (make bench-compare): see the README's benchmark section. */
export const DEFAULT_POD_SYNC_BATCHING: PodSyncBatcherOptions = {
  ratePerSecond: 10,
  burst: 20,
  quietMs: 50,
  maxQuietMs: 1000,
  fewKeysQuietMs: 150,
  settleMs: 200,
  minIntervalMs: 250,
  maxIntervalMs: 2000,
};

/** Pod events that resume this soon after a quiet release mean the load had not ended. */
const FALSE_END_MS = 1000;
/** The budget a quiet release and extra writes may borrow ahead, in seconds of its rate. */
const MAX_DEBT_SECONDS = 5;
/**
 * A quiet release of at most this many keys waits `fewKeysQuietMs`, not the learned period. Up to the tokens at hand (as many keys as that) it let each pause
 * of a 10,000-pod flap release up to 20 Services: 1.23× KCM default's slice writes.
 */
const FEW_KEYS = 2;
/** A Service synced again within its interval plus this much is still under a stream of changes. */
const STREAK_GAP_MS = 1000;
/** A Service's burst is over once it has been quiet this many times its recent gaps between changes. */
const SETTLE_GAP_FACTOR = 4;
/**
 * A waiting Service quiet this long counts as settled whatever its gaps (unknown ones included). With 10,000
 * Services of 2 pods each, created in turn, a Service's gaps were tens of seconds (or unknown after its first pod),
 * so none settled: they waited for the budget or the end of the load, and the drain then took 84 s.
 */
const SETTLE_MAX_WAIT_MS = 5000;
/** Waiting keys are scanned for settled ones at most this often: a scan reads them all. */
const SETTLE_SCAN_MS = 50;
/** A Service's changes are remembered this long, for its gaps; after that its next change starts afresh. */
const ACTIVITY_TTL_MS = 10_000;

interface ServicePace {
  releasedAt: number;
  intervalMs: number;
}

/** When a Service last changed, and its two latest gaps between changes (Infinity when unknown). */
interface ServiceActivity {
  changedAt: number;
  gapMs: number;
  previousGapMs: number;
}

export class PodSyncBatcher {
  /** Keys waiting for a token, oldest first (a Set keeps insertion order). */
  private readonly pending = new Set<string>();
  /** Services released recently, for their interval; forgotten once their streak is over. */
  private readonly paces = new Map<string, ServicePace>();
  /** Services changed within ACTIVITY_TTL_MS, for their gaps. */
  private readonly activity = new Map<string, ServiceActivity>();
  /** When a waiting key may have settled (a lower bound), and when the waiting keys were last scanned. */
  private settleScanAt = Infinity;
  private settleScannedAt = -Infinity;
  private forgottenAt = -Infinity;
  private tokens: number;
  private refilledAt: number;
  private lastEventAt = -Infinity;
  private quietMs: number;
  /** When the latest quiet release happened; undefined once it is known to have held or not. */
  private quietReleaseAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private confirming = false;
  /** Pod events seen so far: a probe speaks for the pause after the event it was sent in. */
  private events = 0;
  /** When the latest probe was sent, and answered (undefined while it is out). */
  private probeSentAt = -Infinity;
  private probeAnsweredAt: number | undefined = -Infinity;
  /** The pause (by `events`) a probe found the API server idle in. */
  private idlePause: number | undefined;
  private readonly now: () => number;
  private readonly maxDebt: number;

  constructor(
    /** Hands a key to the work queue. */
    private readonly release: (key: string) => void,
    /** The key's sync is queued and not started: it will see this change anyway. */
    private readonly queued: (key: string) => boolean,
    private readonly options: PodSyncBatcherOptions = DEFAULT_POD_SYNC_BATCHING,
    /** Asked in a pause of `quietMs` while keys wait, again after a busy answer; finding the API server idle ends it. */
    private readonly probe?: Pick<ApiServerProbe, 'idleSince'>,
  ) {
    this.now = options.now ?? Date.now;
    this.tokens = options.burst;
    this.refilledAt = this.now();
    this.quietMs = options.quietMs;
    this.maxDebt = -options.ratePerSecond * MAX_DEBT_SECONDS;
  }

  /** A pod event arrived (its Services are handed over by `changed`, possibly a little later). */
  sawPodEvent(): void {
    const now = this.now();
    this.lastEventAt = now;
    this.events++;
    if (this.quietReleaseAt !== undefined && now - this.quietReleaseAt < FALSE_END_MS) {
      this.quietMs = Math.min(this.options.maxQuietMs, this.quietMs * 2);
      this.quietReleaseAt = undefined;
    }
  }

  /** Pod changes concern these Services: a key once per pod event, so that a burst of events shows in its gaps. */
  changed(keys: Iterable<string>): void {
    this.sawPodEvent();
    const now = this.now();
    for (const key of keys) {
      const activity = this.recordChange(key, now);
      if (this.queued(key)) continue;
      this.pending.add(key);
      this.settleScanAt = Math.min(this.settleScanAt, settledAt(activity, this.settleFloorMs));
    }
    this.pump(false);
  }

  private recordChange(key: string, now: number): ServiceActivity {
    const last = this.activity.get(key);
    const activity = { changedAt: now, gapMs: last ? now - last.changedAt : Infinity, previousGapMs: last?.gapMs ?? Infinity };
    this.activity.set(key, activity);
    return activity;
  }

  /**
   * A sync released here wrote `writes` objects: the first was paid for by its token, each further one takes a token
   * too (the balance may go below zero, which holds back the next releases until it is repaid).
   */
  charge(writes: number): void {
    if (writes <= 1) return;
    this.refill(this.now());
    this.tokens = Math.max(this.tokens - (writes - 1), this.maxDebt);
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** The learned quiet period (ms) of a bulk release. */
  get quietPeriodMs(): number {
    return this.quietMs;
  }

  /**
   * More keys wait than FEW_KEYS or the tokens at hand cover: a quiet release waits the learned period, not the base
   * one.
   */
  private bulk(): boolean {
    return this.pending.size > Math.min(FEW_KEYS, this.tokens);
  }

  /** How long pod events must stop before what waits is released: learned for a bulk release, fixed for a few keys. */
  private quietPeriod(bulk: boolean): number {
    return bulk ? this.quietMs : this.options.fewKeysQuietMs;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.options.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.options.ratePerSecond);
    this.refilledAt = now;
  }

  /** Hands `key` over for a token (into debt if need be) and records the release for its interval. */
  private releaseNow(key: string, now: number): void {
    this.tokens = Math.max(this.tokens - 1, this.maxDebt);
    this.pending.delete(key);
    this.paced(key, now);
    this.release(key);
  }

  /** When `key`'s interval since its last release ends (`now` if it has none). */
  private eligibleAt(key: string, now: number): number {
    const pace = this.paces.get(key);
    return pace ? pace.releasedAt + pace.intervalMs : now;
  }

  /** Records a release of `key`: its interval grows while its syncs follow each other closely. */
  private paced(key: string, now: number): void {
    const pace = this.paces.get(key);
    const streak = pace !== undefined && now - pace.releasedAt <= pace.intervalMs + STREAK_GAP_MS;
    const intervalMs = streak ? Math.min(this.options.maxIntervalMs, Math.max(this.options.minIntervalMs, pace.intervalMs * 2)) : 0;
    this.paces.set(key, { releasedAt: now, intervalMs });
  }

  private forgetOld(now: number): void {
    this.forgottenAt = now;
    for (const [key, pace] of this.paces) if (now - pace.releasedAt > pace.intervalMs + STREAK_GAP_MS) this.paces.delete(key);
    for (const [key, activity] of this.activity) if (now - activity.changedAt > ACTIVITY_TTL_MS && !this.pending.has(key)) this.activity.delete(key);
  }

  /**
   * Releases what the budget and the intervals (or a quiet spell) allow, and arms a timer for the rest. From the
   * timer, a quiet spell is confirmed after the event loop has read its sockets: events that arrived while it was
   * blocked are seen first.
   */
  private pump(afterIo: boolean): void {
    const now = this.now();
    this.refill(now);
    if (this.quietReleaseAt !== undefined && now - this.quietReleaseAt >= FALSE_END_MS) {
      // Halved once per FALSE_END_MS the release held: after seconds of silence, a flap starts from a short period.
      const held = Math.floor((now - this.quietReleaseAt) / FALSE_END_MS);
      this.quietMs = Math.max(this.options.quietMs, this.quietMs / 2 ** held);
      this.settleScanAt = now; // keys may settle sooner now
      this.quietReleaseAt = undefined;
    }
    const bulk = this.bulk();
    const quiet = now - this.lastEventAt >= this.quietPeriod(bulk) || this.idlePause === this.events;
    if (!quiet) this.probeThePause(now);
    if (quiet && !afterIo && this.pending.size > 0) {
      this.confirm();
      return;
    }
    let released = quiet ? 0 : this.releaseSettled(now);
    let nextEligible = Infinity;
    let outOfTokens = false;
    for (const key of this.pending) {
      if (!quiet) {
        const eligibleAt = this.eligibleAt(key, now);
        if (eligibleAt > now) {
          nextEligible = Math.min(nextEligible, eligibleAt);
          continue;
        }
        if (this.tokens < 1) {
          outOfTokens = true;
          break;
        }
      }
      this.releaseNow(key, now);
      released++;
    }
    if (quiet && released > 0) {
      if (bulk) this.quietReleaseAt = now; // only a bulk release's false end teaches
      this.forgetOld(now);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    // The next release: a token for a key that is eligible now, else the first interval to end (and a token then).
    const untilToken = this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.options.ratePerSecond) * 1000;
    const untilRelease = outOfTokens ? untilToken : Math.max(untilToken, nextEligible - now);
    const untilQuiet = this.lastEventAt + this.quietPeriod(this.bulk()) - now;
    const untilProbe = this.probe ? this.nextProbeAt() - now : Infinity;
    const untilSettleScan = Math.max(this.settleScanAt, this.settleScannedAt + SETTLE_SCAN_MS) - now;
    this.timer = setTimeout(() => this.pump(false), Math.max(1, Math.ceil(Math.min(untilRelease, untilQuiet, untilProbe, untilSettleScan))));
    this.timer.unref();
  }

  /** A Service's quiet spell must outlast the stream's stalls as well (the learned quiet period) to count as an end. */
  private get settleFloorMs(): number {
    return Math.max(this.options.settleMs, this.quietMs);
  }

  /**
   * Releases the waiting keys whose own burst of changes is over, though other Services' changes go on: a sync now
   * takes in the last of them, and one at the end of the load would only add to the drain then. They keep their
   * intervals and are charged a token each (into debt if need be), so a key taken for settled by mistake costs a
   * write at most once per its interval, and holds back the budget's other releases.
   */
  private releaseSettled(now: number): number {
    if (now < this.settleScanAt || now < this.settleScannedAt + SETTLE_SCAN_MS) return 0;
    this.settleScannedAt = now;
    this.settleScanAt = Infinity;
    let released = 0;
    for (const key of this.pending) {
      const activity = this.activity.get(key);
      if (!activity) continue;
      const at = Math.max(settledAt(activity, this.settleFloorMs), this.eligibleAt(key, now));
      if (at > now) {
        this.settleScanAt = Math.min(this.settleScanAt, at);
        continue;
      }
      this.releaseNow(key, now);
      released++;
    }
    if (now - this.forgottenAt >= ACTIVITY_TTL_MS) this.forgetOld(now); // a stream that never pauses
    return released;
  }

  /**
   * A probe goes out once pod events and the latest probe's answer are `quietMs` old; while one is out, only for a
   * pause that began after it was sent.
   */
  private nextProbeAt(): number {
    if (this.probeAnsweredAt === undefined) return this.probeSentAt < this.lastEventAt ? this.lastEventAt + this.options.quietMs : Infinity;
    return Math.max(this.lastEventAt, this.probeAnsweredAt) + this.options.quietMs;
  }

  /**
   * While keys wait through a pause of pod events, asks the probe whether the API server is idle: after the base
   * quiet period, and again a base period after each busy answer. If it is idle and no pod event came meanwhile, the
   * pause is an end (released without waiting for the quiet period). Asking again matters when the API server is
   * still busy as the load ends, with a drain of syncs released by an earlier false end, say: traced on the
   * 10,000-pod flap, the only probe of the last pause found it busy, and the release waited for the learned 800 ms.
   */
  private probeThePause(now: number): void {
    if (!this.probe || this.pending.size === 0 || now < this.nextProbeAt()) return;
    const pause = this.events;
    this.probeSentAt = now;
    this.probeAnsweredAt = undefined;
    void this.probe.idleSince(this.lastEventAt).then((idle) => {
      if (this.probeSentAt === now) this.probeAnsweredAt = this.now();
      if (idle && this.events === pause) this.idlePause = pause;
      if (this.pending.size > 0) this.pump(false);
    });
  }

  private confirm(): void {
    if (this.confirming) return;
    this.confirming = true;
    // Not unref'd: an unref'd immediate does not stop the event loop from blocking in its poll for I/O, so it ran
    // only when some other I/O or timer woke the loop (a flap's release came 1.4 s after the quiet period).
    setImmediate(() => {
      this.confirming = false;
      this.pump(true);
    });
  }
}

/**
 * When a Service's burst of changes counts as over: it has been quiet `SETTLE_GAP_FACTOR` times the longer of its two
 * latest gaps between pod events, and at least `floorMs` (`settleFloorMs`); events handed over together are 0 ms
 * apart. Both gaps, since a pod's creation and its status come as a pair a few ms apart while the pairs of a create
 * across many Services come seconds apart; with one gap known or none, after `SETTLE_MAX_WAIT_MS`, which also caps
 * the wait for long gaps. A flap that turns a Service's pods
 * not-ready together is one burst of events: settled `floorMs` after it.
 */
function settledAt(activity: ServiceActivity, floorMs: number): number {
  const wait = Math.min(SETTLE_MAX_WAIT_MS, SETTLE_GAP_FACTOR * Math.max(activity.gapMs, activity.previousGapMs));
  return activity.changedAt + Math.max(floorMs, wait);
}
