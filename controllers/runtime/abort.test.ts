import { describe, expect, it } from '@jest/globals';
import { aborted } from './abort.js';

/** Whether `promise` has settled once the microtasks queued so far have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('aborted', () => {
  it('resolves when the signal aborts, not before', async () => {
    const stop = new AbortController();
    const waiting = aborted(stop.signal);
    expect(await settled(waiting)).toBe(false);
    stop.abort();
    expect(await settled(waiting)).toBe(true);
  });

  it('resolves at once for a signal that has already aborted', async () => {
    expect(await settled(aborted(AbortSignal.abort()))).toBe(true);
  });
});
