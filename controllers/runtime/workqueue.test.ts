import { describe, it, expect, jest } from '@jest/globals';
import { WorkQueue } from './workqueue.js';
import {
  BucketRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  defaultControllerRateLimiter,
} from './rate-limiter.js';

const noLimit = { when: () => 0, forget: () => {}, numRequeues: () => 0 };

describe('WorkQueue', () => {
  it('dedupes keys that are waiting', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.len()).toBe(0);
  });

  it('never hands one key to two workers at once', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    const first = await q.get();
    q.add('a'); // re-added while processing: must wait for done()
    expect(q.len()).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(first!);
    await new Promise((r) => setImmediate(r));
    expect(second).toBe('a');
  });

  it('processes a key re-added while processing exactly once more after done', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    const k = (await q.get())!;
    q.add('a');
    q.add('a');
    q.done(k);
    expect(q.len()).toBe(1);
    const again = (await q.get())!;
    q.done(again);
    expect(q.len()).toBe(0);
  });

  it('counts a key as queued while it waits, and while a worker has it only once it was re-added', async () => {
    const q = new WorkQueue<string>();
    expect(q.isQueued('a')).toBe(false);
    q.add('a');
    expect(q.isQueued('a')).toBe(true);
    const k = (await q.get())!;
    expect(q.isQueued('a')).toBe(false); // handed out: a change now needs another run
    q.add('a');
    expect(q.isQueued('a')).toBe(true); // that run will happen after done
    q.done(k);
    expect(q.isQueued('a')).toBe(true);
    q.done((await q.get())!);
    expect(q.isQueued('a')).toBe(false);
  });

  it('wakes a waiting getter on add', async () => {
    const q = new WorkQueue<string>();
    const pending = q.get();
    q.add('x');
    expect(await pending).toBe('x');
  });

  it('delays adds and keeps the earliest of two delayed adds', async () => {
    jest.useFakeTimers();
    try {
      const q = new WorkQueue<string>();
      q.addAfter('a', 1000);
      q.addAfter('a', 5000);
      q.addAfter('b', 0);
      expect(q.len()).toBe(1);
      jest.advanceTimersByTime(999);
      expect(q.len()).toBe(1);
      jest.advanceTimersByTime(1);
      expect(q.len()).toBe(2);
      jest.advanceTimersByTime(10_000);
      expect(q.len()).toBe(2);
      q.shutDown();
    } finally {
      jest.useRealTimers();
    }
  });

  it('is idle only with nothing queued, handed out or waiting to be added', async () => {
    jest.useFakeTimers();
    try {
      const q = new WorkQueue<string>();
      expect(q.idle()).toBe(true);
      q.addAfter('a', 1000);
      expect(q.idle()).toBe(false); // waiting
      jest.advanceTimersByTime(1000);
      expect(q.idle()).toBe(false); // queued
      const key = await q.get();
      expect(q.idle()).toBe(false); // handed out
      q.done(key!);
      expect(q.idle()).toBe(true);
      q.shutDown();
    } finally {
      jest.useRealTimers();
    }
  });

  it('a shorter delayed add replaces a longer one', () => {
    jest.useFakeTimers();
    try {
      const q = new WorkQueue<string>();
      q.addAfter('a', 5000);
      q.addAfter('a', 100);
      jest.advanceTimersByTime(100);
      expect(q.len()).toBe(1);
      q.shutDown();
    } finally {
      jest.useRealTimers();
    }
  });

  it('rate-limited adds back off per item and forget resets', () => {
    jest.useFakeTimers();
    try {
      const q = new WorkQueue<string>({ rateLimiter: new ItemExponentialFailureRateLimiter(10, 1000) });
      q.addRateLimited('a'); // 10ms
      expect(q.numRequeues('a')).toBe(1);
      jest.advanceTimersByTime(9);
      expect(q.len()).toBe(0);
      jest.advanceTimersByTime(1);
      expect(q.len()).toBe(1);
      q.forget('a');
      expect(q.numRequeues('a')).toBe(0);
      q.shutDown();
    } finally {
      jest.useRealTimers();
    }
  });

  it('shutdown hands out what is queued, then undefined, and ignores new adds', async () => {
    const q = new WorkQueue<string>({ rateLimiter: noLimit });
    q.add('a');
    const waiting = new WorkQueue<string>();
    const blocked = waiting.get();
    waiting.shutDown();
    expect(await blocked).toBeUndefined();
    q.shutDown();
    q.add('b');
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBeUndefined();
  });

  it('shutDownWithDrain waits for in-flight items', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    const k = (await q.get())!;
    let drained = false;
    const drain = q.shutDownWithDrain().then(() => (drained = true));
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    q.done(k);
    await drain;
    expect(drained).toBe(true);
  });

  it('tells its metrics what client-go tells them: deduplicated adds, hand-outs, completions, retries', async () => {
    const calls: string[] = [];
    const q = new WorkQueue<string>({
      rateLimiter: new ItemExponentialFailureRateLimiter(1, 1),
      metrics: { add: (i) => calls.push(`add ${i}`), get: (i) => calls.push(`get ${i}`), done: (i) => calls.push(`done ${i}`), retry: () => calls.push('retry') },
    });
    q.add('a');
    q.add('a'); // waiting already: not an add
    q.add('b');
    expect(await q.get()).toBe('a');
    q.add('a'); // while processing: an add, queued again at done()
    q.done('a');
    expect(await q.get()).toBe('b');
    q.addRateLimited('b');
    q.done('b');
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(calls).toEqual(['add a', 'add b', 'get a', 'add a', 'done a', 'get b', 'retry', 'done b', 'get a', 'add b', 'get b']);
  });
});

describe('rate limiters', () => {
  it('item exponential: base*2^n capped at max', () => {
    const rl = new ItemExponentialFailureRateLimiter<string>(5, 1000);
    const delays = Array.from({ length: 10 }, () => rl.when('k'));
    expect(delays).toEqual([5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    expect(rl.when('other')).toBe(5);
    expect(rl.numRequeues('k')).toBe(10);
    rl.forget('k');
    expect(rl.when('k')).toBe(5);
  });

  it('endpointslice figures: 1s doubling to 1000s', () => {
    const rl = new ItemExponentialFailureRateLimiter<string>(1000, 1_000_000);
    const delays = Array.from({ length: 12 }, () => rl.when('svc'));
    expect(delays.slice(0, 4)).toEqual([1000, 2000, 4000, 8000]);
    expect(delays[9]).toBe(512_000);
    expect(delays[10]).toBe(1_000_000);
    expect(delays[11]).toBe(1_000_000);
  });

  it('bucket: burst is free, then 1/qps apart, refilled over time', () => {
    let now = 0;
    const rl = new BucketRateLimiter<string>(10, 3, () => now);
    expect([rl.when('a'), rl.when('b'), rl.when('c')]).toEqual([0, 0, 0]);
    expect(rl.when('d')).toBeCloseTo(100);
    expect(rl.when('e')).toBeCloseTo(200);
    now = 1000; // +10 tokens, capped at burst 3 after paying the 2 owed
    expect(rl.when('f')).toBe(0);
  });

  it('max-of takes the longest wait', () => {
    let now = 0;
    const rl = new MaxOfRateLimiter<string>(
      new ItemExponentialFailureRateLimiter(5, 1000),
      new BucketRateLimiter(1, 1, () => now),
    );
    expect(rl.when('a')).toBe(5);
    expect(rl.when('b')).toBeCloseTo(1000);
    expect(rl.numRequeues('a')).toBe(1);
  });

  it('default controller limiter starts at 5ms', () => {
    expect(defaultControllerRateLimiter<string>().when('x')).toBe(5);
  });
});
