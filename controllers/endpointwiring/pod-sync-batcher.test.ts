// The adaptive batcher of pod-triggered syncs, on a fake clock (Date.now, timers and setImmediate). The fake
// setImmediate runs 1 ms after it is scheduled: a quiet release (confirmed in a setImmediate) lands 1 ms after the
// quiet period.
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { PodSyncBatcher, type PodSyncBatcherOptions } from './pod-sync-batcher.js';
import { prng } from '../../testing/prng.js';

const OPTIONS: PodSyncBatcherOptions = { ratePerSecond: 10, burst: 2, quietMs: 200, maxQuietMs: 800, fewKeysQuietMs: 300, settleMs: 200, minIntervalMs: 250, maxIntervalMs: 2000 };
const START = 1_000_000;

describe('PodSyncBatcher', () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: START });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  function setUp(queued: Set<string> = new Set(), options: PodSyncBatcherOptions = OPTIONS, probe?: FakeProbe) {
    const released: string[] = [];
    const releasedAt: [string, number][] = [];
    const batcher = new PodSyncBatcher(
      (key) => {
        released.push(key);
        releasedAt.push([key, Date.now() - START]);
      },
      (key) => queued.has(key),
      options,
      probe,
    );
    return { released, releasedAt, batcher };
  }

  /** A probe whose reads the test answers, the latest first: `answer(true)` says the API server was idle. */
  class FakeProbe {
    readonly asked: number[] = [];
    private readonly answers: ((idle: boolean) => void)[] = [];
    idleSince(): Promise<boolean> {
      this.asked.push(Date.now() - START);
      return new Promise((resolve) => this.answers.push(resolve));
    }
    async answer(idle: boolean): Promise<void> {
      this.answers.pop()!(idle);
      await jest.advanceTimersByTimeAsync(0);
    }
  }

  it('syncs a change on a quiet cluster at once', () => {
    const { released, batcher } = setUp();
    batcher.changed(['ns/a']);
    expect(released).toEqual(['ns/a']);
  });

  it('adds nothing for a Service whose sync is already queued', () => {
    const { released, batcher } = setUp(new Set(['ns/a']));
    batcher.changed(['ns/a', 'ns/b']);
    expect(released).toEqual(['ns/b']);
    expect(batcher.waiting).toBe(0);
  });

  it('under load starts syncs at the budgeted rate, oldest first, each key once however often it changes', () => {
    const { released, batcher } = setUp();
    batcher.changed(['ns/a', 'ns/b', 'ns/c', 'ns/d']);
    expect(released).toEqual(['ns/a', 'ns/b']); // the burst
    for (let t = 0; t < 5; t++) {
      jest.advanceTimersByTime(50); // changes keep coming, never quiet for 200 ms
      batcher.changed(['ns/c', 'ns/d', 'ns/a']);
    }
    // 250 ms at 10/s: two more tokens, for the oldest waiting keys; the rest (changed again since) wait.
    expect(released).toEqual(['ns/a', 'ns/b', 'ns/c', 'ns/d']);
    expect(batcher.waiting).toBe(3);
  });

  it('charges the writes of a sync beyond its first against the budget, still releasing everything when quiet', () => {
    const { released, batcher } = setUp();
    batcher.changed(['ns/a']); // one token left of the burst of 2
    batcher.charge(4); // three more: the balance is -2
    batcher.changed(['ns/b']);
    expect(released).toEqual(['ns/a']);
    jest.advanceTimersByTime(100); // 10/s: one token back, still -1 (changes keep coming)
    batcher.changed(['ns/c']);
    expect(released).toEqual(['ns/a']);
    jest.advanceTimersByTime(100);
    batcher.changed(['ns/c']);
    expect(released).toEqual(['ns/a']); // back to 0: not yet a whole token
    jest.advanceTimersByTime(100);
    batcher.changed(['ns/c']);
    expect(released).toEqual(['ns/a', 'ns/b']);
    batcher.charge(1); // a sync that wrote once paid with its token
    jest.advanceTimersByTime(200); // quiet
    expect(released).toEqual(['ns/a', 'ns/b', 'ns/c']);
  });

  it('releases everything once pod changes stop for the quiet period', () => {
    const { released, batcher } = setUp();
    batcher.changed(['ns/a', 'ns/b', 'ns/c', 'ns/d', 'ns/e', 'ns/f']);
    expect(released).toHaveLength(2);
    jest.advanceTimersByTime(199);
    expect(released.length).toBeLessThan(6);
    jest.advanceTimersByTime(2);
    expect(released).toEqual(['ns/a', 'ns/b', 'ns/c', 'ns/d', 'ns/e', 'ns/f']);
  });

  it('does not take a stalled event loop for quiet: events read after the timer fired hold the release back', () => {
    const { released, batcher } = setUp();
    const keys = Array.from({ length: 10 }, (_, i) => `ns/s${i}`);
    batcher.changed(keys);
    expect(released).toHaveLength(2);
    jest.advanceTimersByTime(100); // a token: one more; the batcher's timer is now set for the quiet period's end
    expect(released).toHaveLength(3);
    // Due at the same moment as the batcher's timer and scheduled after it, as a socket read after a stall is: it
    // runs after the timer and before the batcher's setImmediate.
    setTimeout(() => batcher.sawPodEvent(), 100);
    jest.advanceTimersByTime(101);
    expect(released).toHaveLength(4); // two tokens came back in 200 ms, nothing more: not quiet
    jest.advanceTimersByTime(201);
    expect(released).toHaveLength(10); // now quiet
  });

  it('lengthens the quiet period when pod events resume right after a release, and shortens it after one that held', () => {
    const { batcher } = setUp();
    const keys = Array.from({ length: 20 }, (_, i) => `ns/s${i}`); // more than the budget releases meanwhile
    expect(batcher.quietPeriodMs).toBe(200);
    batcher.changed(keys);
    jest.advanceTimersByTime(201); // released as quiet
    batcher.changed(keys); // right after: that was not the end of the load
    expect(batcher.quietPeriodMs).toBe(400);
    jest.advanceTimersByTime(401);
    batcher.changed(keys);
    expect(batcher.quietPeriodMs).toBe(800); // the cap
    jest.advanceTimersByTime(801);
    batcher.changed(keys);
    expect(batcher.quietPeriodMs).toBe(800);
    jest.advanceTimersByTime(801); // released
    jest.advanceTimersByTime(1000); // nothing resumed within a second: that release held
    batcher.changed(['ns/a']);
    expect(batcher.quietPeriodMs).toBe(400);
  });

  it('starts a burst after seconds of silence from a short quiet period (halved per second the last release held)', () => {
    const { batcher } = setUp();
    const keys = Array.from({ length: 20 }, (_, i) => `ns/s${i}`);
    batcher.changed(keys);
    jest.advanceTimersByTime(201);
    batcher.changed(keys);
    jest.advanceTimersByTime(401);
    batcher.changed(keys);
    expect(batcher.quietPeriodMs).toBe(800);
    jest.advanceTimersByTime(801); // released; then silence, as between a rolling update and a flap
    jest.advanceTimersByTime(3000);
    batcher.changed(['ns/a']);
    expect(batcher.quietPeriodMs).toBe(200); // 800 / 2³ = 100, floored at quietMs
  });

  it('a release that fits in the tokens at hand waits its own fixed quiet period, and its false ends teach nothing', () => {
    const { batcher, releasedAt } = setUp(new Set(), { ...OPTIONS, burst: 5 });
    const stream = (ms: number) => {
      for (let t = 0; t < ms; t += 50) {
        jest.advanceTimersByTime(50);
        batcher.changed(['ns/big']);
      }
    };
    // One big Service under a stream of changes: its sync waits for its interval. A stall of the stream as long as
    // the bulk period does not release it (each such release would be a sync of the whole Service)...
    stream(3000);
    let before = releasedAt.length;
    jest.advanceTimersByTime(250);
    expect(releasedAt.length).toBe(before);
    // ... one as long as the few-keys period does, and the stream resuming (a false end) changes nothing.
    for (let stall = 0; stall < 3; stall++) {
      stream(1000);
      before = releasedAt.length;
      jest.advanceTimersByTime(301);
      expect(releasedAt.slice(before).map(([key]) => key)).toEqual(['ns/big']);
    }
    stream(1000);
    expect(batcher.quietPeriodMs).toBe(200); // three false ends would have taught 800
    const end = Date.now() - START;
    before = releasedAt.length;
    jest.advanceTimersByTime(801);
    expect(releasedAt.slice(before).map(([key, at]) => [key, at - end])).toEqual([['ns/big', 301]]);
  });

  it('a bulk release keeps the quiet period it learned while the load goes on', () => {
    const { batcher } = setUp();
    const keys = Array.from({ length: 20 }, (_, i) => `ns/s${i}`); // more than the tokens at hand
    batcher.changed(keys);
    jest.advanceTimersByTime(201); // released as quiet
    batcher.changed(keys); // a false end: 400
    for (let i = 0; i < 50; i++) {
      jest.advanceTimersByTime(100);
      batcher.changed(keys);
    }
    expect(batcher.quietPeriodMs).toBe(400);
  });

  it('charges a quiet release to the budget, so a false end of the load is paid back rather than added', () => {
    const { released, batcher } = setUp();
    const keys = Array.from({ length: 30 }, (_, i) => `ns/s${i}`);
    batcher.changed(keys);
    jest.advanceTimersByTime(201); // quiet: all 30 released, 28 of them borrowed ahead (the burst was 2)
    expect(released).toHaveLength(30);
    // The load resumes: 2.5 s at 10/s repays 25 of the 28; nothing is released on the budget meanwhile.
    for (let t = 0; t < 2500; t += 20) {
      batcher.changed(keys);
      jest.advanceTimersByTime(20);
    }
    expect(released).toHaveLength(30);
    jest.advanceTimersByTime(1000); // the load has stopped: everything again
    expect(released).toHaveLength(60);
  });

  it('syncs a Service under a stream of changes at most once per its growing interval, and its last change always', () => {
    const { releasedAt, batcher } = setUp(new Set(), { ...OPTIONS, ratePerSecond: 1000, burst: 1000 });
    for (let t = 0; t <= 10_000; t += 10) {
      batcher.changed(['ns/busy']);
      jest.advanceTimersByTime(10);
    }
    jest.advanceTimersByTime(1000);
    const times = releasedAt.map(([, at]) => at);
    // 0 and 10 (a fresh Service syncs at once), then 250 ms, 500 ms, 1 s and 2 s (the cap) between syncs.
    expect(times.slice(0, 6)).toEqual([0, 10, 260, 760, 1760, 3760]);
    for (let i = 5; i < times.length - 1; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(2000);
    expect(times.length).toBeLessThanOrEqual(10);
    // The last change (at 10 s) is synced once the stream has stopped for the quiet period.
    expect(times.at(-1)).toBeGreaterThanOrEqual(10_000);
    expect(times.at(-1)).toBeLessThanOrEqual(10_000 + 10 + 300 + 1);
  });

  it('starts a Service left alone for a while from a zero interval again', () => {
    const { releasedAt, batcher } = setUp(new Set(), { ...OPTIONS, ratePerSecond: 1000, burst: 1000 });
    for (let t = 0; t < 2000; t += 10) {
      batcher.changed(['ns/a']);
      jest.advanceTimersByTime(10);
    }
    jest.advanceTimersByTime(5000);
    const before = releasedAt.length;
    batcher.changed(['ns/a']);
    expect(releasedAt.length).toBe(before + 1);
  });

  it('converges a flap of many Services within 1 s of the last change, with the budget exhausted', () => {
    const { releasedAt, batcher } = setUp();
    const services = Array.from({ length: 200 }, (_, i) => `ns/s${i}`);
    const lastChange = new Map<string, number>();
    // Down, then up: each Service's pods change one by one, 2 ms apart, for 800 ms.
    for (let t = 0; t < 800; t += 2) {
      const key = services[(t / 2) % services.length];
      batcher.changed([key]);
      lastChange.set(key, t);
      jest.advanceTimersByTime(2);
    }
    jest.advanceTimersByTime(1000);
    for (const [key, changedAt] of lastChange) {
      const synced = releasedAt.filter(([k, at]) => k === key && at >= changedAt).map(([, at]) => at);
      expect(synced.length).toBeGreaterThan(0);
      expect(synced[0] - 800).toBeLessThan(1000);
    }
  });

  describe('a Service whose own burst of changes is over', () => {
    // Hardly any budget: what is released during the stream is released as settled.
    const SLOW = { ...OPTIONS, ratePerSecond: 0.01, burst: 1 };
    /** `ns/busy` changes every 20 ms until `until`, and `more(t)` is called each tick; returns when each key was released. */
    function stream(until: number, more: (t: number, changed: (keys: string[]) => void) => void) {
      const { releasedAt, batcher } = setUp(new Set(), SLOW);
      batcher.changed(['ns/first']); // takes the one token
      for (let t = 0; t < until; t += 5) {
        if (t % 20 === 0) batcher.changed(['ns/busy']);
        more(t, (keys) => batcher.changed(keys));
        jest.advanceTimersByTime(5);
      }
      return (key: string) => releasedAt.filter(([k]) => k === key).map(([, at]) => at);
    }

    /** Released once, within a settle scan's 50 ms of `settled`. */
    function expectReleasedOnceAt(at: number[], settled: number) {
      expect(at).toHaveLength(1);
      expect(at[0] - settled).toBeGreaterThanOrEqual(0);
      expect(at[0] - settled).toBeLessThan(50);
    }

    it('is released once quiet for four times its recent gaps (at least settleMs) while other Services go on changing', () => {
      const releases = stream(1000, (t, changed) => {
        if (t === 100 || t === 120 || t === 140) changed(['ns/a']); // gaps of 20 ms: settled at 140 + 200
        if (t === 100) changed(['ns/once']); // one change: its gaps are unknown
        if (t === 100) changed(['ns/together', 'ns/together', 'ns/together']); // three pod events handed over at once
        if (t === 200 || t === 300 || t === 400) changed(['ns/slow']); // gaps of 100 ms: settled at 400 + 400
      });
      // Within a scan's 50 ms of when they settled.
      expectReleasedOnceAt(releases('ns/a'), 340);
      expectReleasedOnceAt(releases('ns/slow'), 800);
      expectReleasedOnceAt(releases('ns/together'), 300);
      expect(releases('ns/once')).toEqual([]); // not quiet for 5 s yet: left to the budget or the end of the load
      expect(releases('ns/busy')).toEqual([]); // never quiet for 200 ms
      jest.advanceTimersByTime(400); // the load ends: the rest goes in a quiet release
      expect(releases('ns/once')).toHaveLength(1);
      expect(releases('ns/busy')).toHaveLength(1);
    });

    it("waits for the learned quiet period too: the API server's stalls hold back a burst's last events", () => {
      const { releasedAt, batcher } = setUp(new Set(), SLOW);
      const keys = Array.from({ length: 20 }, (_, i) => `ns/s${i}`);
      batcher.changed(keys);
      jest.advanceTimersByTime(201); // released as quiet
      batcher.changed(keys); // right after: a false end
      expect(batcher.quietPeriodMs).toBe(400);
      const start = Date.now() - START;
      batcher.changed(['ns/burst', 'ns/burst', 'ns/burst']);
      for (let t = 0; t < 600; t += 20) {
        batcher.changed(['ns/busy']);
        jest.advanceTimersByTime(20);
      }
      const at = releasedAt.filter(([key]) => key === 'ns/burst').map(([, t]) => t - start);
      expect(at).toHaveLength(1);
      expect(at[0]).toBeGreaterThanOrEqual(400);
      expect(at[0]).toBeLessThan(450);
    });

    it("is not mistaken in a create's pairs of changes (a pod, then its status), far apart in a long stream", () => {
      const releases = stream(3000, (t, changed) => {
        if (t % 500 === 0 || t % 500 === 5) changed(['ns/a']); // gaps of 5 and 495 ms: settled only after ~2 s
      });
      expect(releases('ns/a')).toEqual([]);
    });

    it('is released once quiet for 5 s whatever its gaps: many Services changing seconds apart do not all wait for the end', () => {
      const releases = stream(9000, (t, changed) => {
        if (t === 100) changed(['ns/once']); // its gaps are unknown
        if (t === 100 || t === 105 || t === 3000 || t === 3005) changed(['ns/far']); // gaps of 5 and 2895 ms
      });
      expectReleasedOnceAt(releases('ns/once'), 5100);
      expectReleasedOnceAt(releases('ns/far'), 8005);
      expect(releases('ns/busy')).toEqual([]);
    });

    it('keeps its interval: one that turns out not settled is synced again no sooner than that', () => {
      const releases = stream(3000, (t, changed) => {
        // Bursts of three changes 20 ms apart, every 300 ms: each burst looks over 200 ms after its last change.
        if (t % 300 === 0 || t % 300 === 20 || t % 300 === 40) changed(['ns/a']);
      });
      const at = releases('ns/a');
      expect(at.length).toBeGreaterThanOrEqual(4);
      expect(at[0] - 240).toBeGreaterThanOrEqual(0);
      expect(at[0] - 240).toBeLessThan(50);
      // A fresh Service first, then a streak: 250, 500, 1000 ms, ... between its syncs.
      for (let i = 2; i < at.length; i++) expect(at[i] - at[i - 1]).toBeGreaterThanOrEqual(250 * 2 ** (i - 2));
    });
  });

  it('never drops a key: every change is followed by a sync that starts after it (pinned random load)', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = prng(seed);
      const queued = new Set<string>();
      const started = new Map<string, number[]>();
      const batcher = new PodSyncBatcher(
        (key) => {
          queued.add(key);
          // A worker picks the key up 0-300 ms later, and then it reads the cache.
          setTimeout(() => {
            queued.delete(key);
            started.set(key, [...(started.get(key) ?? []), Date.now()]);
            batcher.charge(1 + Math.floor(random() * 4));
          }, Math.floor(random() * 300));
        },
        (key) => queued.has(key),
        OPTIONS,
      );
      const keys = Array.from({ length: 30 }, (_, i) => `ns/s${i}`);
      const lastChange = new Map<string, number>();
      for (let step = 0; step < 3000; step++) {
        const burst = keys.filter(() => random() < 0.1);
        batcher.changed(burst);
        for (const key of burst) lastChange.set(key, Date.now());
        // Mostly a steady stream, now and then a pause longer than any quiet period.
        jest.advanceTimersByTime(random() < 0.01 ? 1500 : Math.floor(random() * 20));
      }
      jest.advanceTimersByTime(5000);
      expect(batcher.waiting).toBe(0);
      for (const [key, at] of lastChange) expect(Math.max(...(started.get(key) ?? [-1]))).toBeGreaterThanOrEqual(at);
    }
  });

  describe('with a probe of the API server', () => {
    const keys = Array.from({ length: 20 }, (_, i) => `ns/s${i}`); // more than the tokens at hand: a bulk release
    /** A batcher whose learned quiet period is 400 ms (two false ends from 100 ms), with 20 keys waiting. */
    async function learned(probe: FakeProbe) {
      const setup = setUp(new Set(), { ...OPTIONS, quietMs: 100 }, probe);
      for (const period of [100, 200]) {
        setup.batcher.changed(keys);
        await jest.advanceTimersByTimeAsync(period + 1); // released as quiet; a probe asked at 100 ms is left unanswered
        setup.batcher.changed(keys); // right after: a false end
      }
      expect(setup.batcher.quietPeriodMs).toBe(400);
      probe.asked.length = 0;
      return setup;
    }

    it('ends a pause at once when the probe finds the API server idle', async () => {
      const probe = new FakeProbe();
      const { batcher } = await learned(probe);
      const start = Date.now() - START;
      await jest.advanceTimersByTimeAsync(100); // a pause of the base quiet period: the probe is asked
      expect(probe.asked.map((at) => at - start)).toEqual([100]);
      await jest.advanceTimersByTimeAsync(10);
      expect(batcher.waiting).toBeGreaterThan(0);
      await probe.answer(true);
      await jest.advanceTimersByTimeAsync(1); // confirmed after I/O
      expect(batcher.waiting).toBe(0); // at 111 ms, not at the learned 400
    });

    it('asks again a base period after each busy answer, and waits for the learned period while the API server stays busy', async () => {
      const probe = new FakeProbe();
      const { batcher } = await learned(probe);
      const start = Date.now() - START;
      for (const at of [100, 200, 300]) {
        await jest.advanceTimersByTimeAsync(100);
        expect(probe.asked.at(-1)! - start).toBe(at);
        await probe.answer(false);
      }
      expect(batcher.waiting).toBeGreaterThan(0);
      await jest.advanceTimersByTimeAsync(101); // the learned 400 ms
      expect(batcher.waiting).toBe(0);
      expect(probe.asked).toHaveLength(3);
    });

    it('ends the pause when a later probe finds the API server idle', async () => {
      const probe = new FakeProbe();
      const { batcher } = await learned(probe);
      const start = Date.now() - START;
      await jest.advanceTimersByTimeAsync(100);
      await jest.advanceTimersByTimeAsync(30); // a slow answer under load
      await probe.answer(false);
      await jest.advanceTimersByTimeAsync(100); // a base period after that answer
      expect(probe.asked.map((at) => at - start)).toEqual([100, 230]);
      await probe.answer(true);
      await jest.advanceTimersByTimeAsync(1);
      expect(batcher.waiting).toBe(0); // at 231 ms, not at the learned 400
    });

    it('does not let a probe still out from an earlier pause hold back the next pause', async () => {
      const probe = new FakeProbe();
      const { batcher } = await learned(probe);
      const start = Date.now() - START;
      await jest.advanceTimersByTimeAsync(100); // asked at 100, and left unanswered
      await jest.advanceTimersByTimeAsync(20);
      batcher.changed(['ns/s0']);
      await jest.advanceTimersByTimeAsync(100);
      expect(probe.asked.map((at) => at - start)).toEqual([100, 220]);
      await probe.answer(true);
      await jest.advanceTimersByTimeAsync(1);
      expect(batcher.waiting).toBe(0);
    });

    it('does not end a pause when a pod event came while the probe was out, and asks again in the next pause', async () => {
      const probe = new FakeProbe();
      const { batcher } = await learned(probe);
      const start = Date.now() - START;
      await jest.advanceTimersByTimeAsync(100);
      await jest.advanceTimersByTimeAsync(20);
      batcher.changed(['ns/s0']); // the load goes on
      await probe.answer(true);
      await jest.advanceTimersByTimeAsync(1);
      expect(batcher.waiting).toBeGreaterThan(0);
      await jest.advanceTimersByTimeAsync(99); // 100 ms after that event: a new pause, a new probe
      expect(probe.asked.map((at) => at - start)).toEqual([100, 220]);
      await probe.answer(true);
      await jest.advanceTimersByTimeAsync(1);
      expect(batcher.waiting).toBe(0);
    });

    it('asks nothing when no key waits', async () => {
      const probe = new FakeProbe();
      const { batcher } = setUp(new Set(), OPTIONS, probe);
      batcher.changed(['ns/a']); // synced at once
      await jest.advanceTimersByTimeAsync(1000);
      expect(probe.asked).toEqual([]);
    });
  });
});
