import { describe, it, expect } from '@jest/globals';
import { Controller } from './controller.js';
import { ItemExponentialFailureRateLimiter } from './rate-limiter.js';
import { silentLogger } from './log.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

/** Waits until `done()` holds: a fixed wait fails on a loaded machine, where workers and timers run late. */
async function until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await tick();
  }
}

describe('Controller', () => {
  it('never runs one key on two workers at once, and reruns a key changed mid-reconcile', async () => {
    const active = new Set<string>();
    let overlaps = 0;
    const runs: string[] = [];
    const c = new Controller({
      name: 't',
      workers: 4,
      log: silentLogger,
      reconcile: async (key) => {
        if (active.has(key)) overlaps++;
        active.add(key);
        runs.push(key);
        await tick(10);
        active.delete(key);
      },
    });
    c.start();
    c.enqueue('a');
    await until(() => active.has('a'));
    c.enqueue('a'); // while 'a' runs
    c.enqueue('a');
    c.enqueue('b');
    await until(() => runs.length === 3 && active.size === 0);
    await tick(30); // room for a wrong extra run
    await c.stop();
    expect(overlaps).toBe(0);
    expect(runs.filter((k) => k === 'a')).toHaveLength(2);
    expect(runs.filter((k) => k === 'b')).toHaveLength(1);
  });

  it('runs different keys in parallel up to the worker count', async () => {
    let concurrent = 0;
    let peak = 0;
    let done = 0;
    const c = new Controller({
      name: 't2',
      workers: 3,
      log: silentLogger,
      reconcile: async () => {
        peak = Math.max(peak, ++concurrent);
        await tick(20);
        concurrent--;
        done++;
      },
    });
    c.start();
    for (let i = 0; i < 10; i++) c.enqueue(`k${i}`);
    await until(() => done === 10);
    await c.stop();
    expect(peak).toBe(3);
  });

  it('retries failures with backoff and drops the key after maxRetries', async () => {
    let calls = 0;
    const c = new Controller({
      name: 't3',
      log: silentLogger,
      maxRetries: 3,
      rateLimiter: new ItemExponentialFailureRateLimiter(1, 10),
      reconcile: async () => {
        calls++;
        throw new Error('nope');
      },
    });
    c.start();
    c.enqueue('x');
    await until(() => calls === 4);
    await tick(30); // room for a wrong fifth try (the backoff would be 8 ms)
    expect(calls).toBe(4); // first try + 3 retries
    expect(c.queue.numRequeues('x')).toBe(0); // forgotten after giving up
    await c.stop();
  });

  it('forgets the failure history after a success', async () => {
    let calls = 0;
    const c = new Controller({
      name: 't4',
      log: silentLogger,
      rateLimiter: new ItemExponentialFailureRateLimiter(1, 10),
      reconcile: async () => {
        if (++calls < 3) throw new Error('not yet');
      },
    });
    c.start();
    c.enqueue('x');
    await until(() => calls === 3);
    await tick(30); // room for a wrong fourth call
    expect(calls).toBe(3);
    expect(c.queue.numRequeues('x')).toBe(0);
    await c.stop();
  });

  it('requeues after the requested delay on success', async () => {
    const calledAt: number[] = [];
    const c = new Controller({
      name: 't5',
      log: silentLogger,
      reconcile: async () => (calledAt.push(Date.now()) === 1 ? { requeueAfterMs: 20 } : undefined),
    });
    c.start();
    c.enqueue('x');
    await until(() => calledAt.length === 2);
    await tick(30); // room for a wrong third call
    expect(calledAt).toHaveLength(2);
    expect(calledAt[1] - calledAt[0]).toBeGreaterThanOrEqual(19); // a timer may fire within a millisecond of Date.now's tick
    await c.stop();
  });

  it('stop waits for in-flight reconciles', async () => {
    let started = false;
    let finished = false;
    const c = new Controller({
      name: 't6',
      log: silentLogger,
      reconcile: async () => {
        started = true;
        await tick(30);
        finished = true;
      },
    });
    c.start();
    c.enqueue('x');
    await until(() => started);
    await c.stop();
    expect(finished).toBe(true);
  });
});
