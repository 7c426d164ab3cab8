import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { aborted, sleep } from './abort.js';

/** Whether `promise` has settled once pending callbacks and microtasks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await jest.advanceTimersByTimeAsync(0);
  return done;
}

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

describe('aborted', () => {
  it('resolves when the signal aborts, not before', async () => {
    const stop = new AbortController();
    const waiting = aborted(stop.signal);
    expect(await settled(waiting)).toBe(false);
    stop.abort();
    await expect(waiting).resolves.toBeUndefined();
  });

  it('resolves at once for a signal that has already aborted', async () => {
    await expect(aborted(AbortSignal.abort())).resolves.toBeUndefined();
  });
});

describe('sleep', () => {
  it('resolves after its time', async () => {
    const sleeping = sleep(1000);
    await jest.advanceTimersByTimeAsync(999);
    expect(await settled(sleeping)).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(await settled(sleeping)).toBe(true);
  });

  it('ends early when the signal aborts, and leaves no timer behind', async () => {
    const stop = new AbortController();
    const sleeping = sleep(60_000, stop.signal);
    stop.abort();
    expect(await settled(sleeping)).toBe(true);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('does not wait at all on a signal that has already aborted', async () => {
    expect(await settled(sleep(60_000, AbortSignal.abort()))).toBe(true);
    expect(jest.getTimerCount()).toBe(0);
  });
});
