// The adaptive batcher of pod-triggered syncs, on a fake clock.
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { PodSyncBatcher } from './pod-sync-batcher.js';

describe('PodSyncBatcher', () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  function setUp(queued: Set<string> = new Set()) {
    const released: string[] = [];
    const batcher = new PodSyncBatcher((key) => released.push(key), (key) => queued.has(key), { ratePerSecond: 10, burst: 2, quietMs: 200 });
    return { released, batcher };
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
    jest.advanceTimersByTime(1);
    expect(released).toEqual(['ns/a', 'ns/b', 'ns/c', 'ns/d', 'ns/e', 'ns/f']);
  });
});
