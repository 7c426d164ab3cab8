// What each of the three endpoint controllers is built from besides its sync: a logger, an Event recorder that
// signs Events with upstream's source component, a skip reporter, and a work loop with upstream's retry budget.
import { hostname } from 'node:os';
import { Controller, type Reconciler } from '../runtime/controller.js';
import { EventRecorder } from '../runtime/events.js';
import type { Logger } from '../runtime/log.js';
import type { Manager } from '../runtime/manager.js';
import { BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, type RateLimiter } from '../runtime/rate-limiter.js';
import { SkipReporter } from './skip-reporter.js';

export interface Reporting {
  log: Logger;
  events: EventRecorder;
  skips: SkipReporter;
}

/** `component` is upstream's event source: endpoint-slice-controller, endpoint-controller, … */
export function controllerReporting(manager: Manager, logName: string, component: string): Reporting {
  const log = manager.log.child(logName);
  const events = new EventRecorder(manager.client, component, hostname(), log.child('events'));
  return { log, events, skips: new SkipReporter(log, events) };
}

/**
 * Longest wait between two retries of one key. Upstream waits up to 1000 s (100 s when mirroring) and drops the key
 * after 15 retries; these controllers never drop a key (its output would stay wrong until the next change, with no
 * resync to repair it) and retry it at least this often.
 */
export const MAX_RETRY_DELAY_MS = 60_000;

/** Per key from `baseMs` doubling to MAX_RETRY_DELAY_MS, and 10 qps / burst 100 overall (upstream's shape). */
export function retryLimiter(baseMs: number): RateLimiter<string> {
  return new MaxOfRateLimiter(new ItemExponentialFailureRateLimiter<string>(baseMs, MAX_RETRY_DELAY_MS), new BucketRateLimiter<string>(10, 100));
}

/** A work loop named like upstream's queue that retries a failing key for as long as it fails (see above). */
export function workLoop(name: string, reconcile: Reconciler, workers: number, rateLimiter: RateLimiter<string>, log: Logger): Controller {
  return new Controller({ name, reconcile, workers, maxRetries: Infinity, rateLimiter, log });
}
