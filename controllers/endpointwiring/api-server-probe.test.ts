// The idle probe of the API server: a read at its idle speed says idle; a slow one, a failed one, or one slower than
// MAX_IDLE_MS does not; reads in flight are shared by callers whose pause began before they were sent.
import { describe, expect, it } from '@jest/globals';
import { ApiServerProbe } from './api-server-probe.js';

/** A clock the test moves, and reads the test answers after a chosen time. */
function setUp() {
  let now = 0;
  const reads: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const probe = new ApiServerProbe(
    () => new Promise<void>((resolve, reject) => reads.push({ resolve, reject })),
    () => now,
  );
  const answerAfter = async (ms: number, fail = false) => {
    now += ms;
    const read = reads.shift()!;
    if (fail) read.reject(new Error('connection refused'));
    else read.resolve();
  };
  return { probe, reads, answerAfter, advance: (ms: number) => (now += ms), now: () => now };
}

describe('ApiServerProbe', () => {
  it('finds the API server idle when a read comes back near the fastest seen, busy when it is much slower', async () => {
    const { probe, answerAfter } = setUp();
    const first = probe.idleSince(0);
    await answerAfter(10);
    expect(await first).toBe(true);
    const near = probe.idleSince(0);
    await answerAfter(25); // within 2 × 10 + 10
    expect(await near).toBe(true);
    const slow = probe.idleSince(0);
    await answerAfter(40);
    expect(await slow).toBe(false);
  });

  it('never takes a read slower than 100 ms for idle, even the first one', async () => {
    const { probe, answerAfter } = setUp();
    const first = probe.idleSince(0);
    await answerAfter(150);
    expect(await first).toBe(false);
    const again = probe.idleSince(0);
    await answerAfter(150);
    expect(await again).toBe(false);
  });

  it('answers busy, never an error, when the read fails', async () => {
    const { probe, answerAfter } = setUp();
    const failed = probe.idleSince(0);
    await answerAfter(1, true);
    expect(await failed).toBe(false);
  });

  it('shares a read in flight with a caller whose pause began before it was sent, and sends a new one otherwise', async () => {
    const { probe, reads, advance, answerAfter } = setUp();
    advance(100);
    const a = probe.idleSince(50); // sent at 100
    const b = probe.idleSince(90); // the pause began at 90: the read sent at 100 speaks for it
    expect(reads).toHaveLength(1);
    const c = probe.idleSince(120); // began after the read was sent: it needs a read of its own
    expect(reads).toHaveLength(2);
    await answerAfter(5);
    await answerAfter(0);
    expect(await Promise.all([a, b, c])).toEqual([true, true, true]);
    advance(10);
    void probe.idleSince(0); // nothing in flight any more: a new read
    expect(reads).toHaveLength(1);
  });
});
