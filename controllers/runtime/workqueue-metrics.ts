// client-go's work-queue metrics under the names, labels and buckets kube-controller-manager exposes
// (k8s.io/component-base/metrics/prometheus/workqueue/metrics.go, client-go util/workqueue/metrics.go):
// workqueue_depth, workqueue_adds_total, workqueue_queue_duration_seconds, workqueue_work_duration_seconds,
// workqueue_unfinished_work_seconds, workqueue_longest_running_processor_seconds, workqueue_retries_total, each
// labelled `name`. The two in-flight gauges are computed when scraped instead of by client-go's 500 ms loop.
import type { Counter, Histogram } from '@opentelemetry/api';
import { exponentialBuckets, telemetry } from './telemetry.js';
import type { WorkQueueMetrics } from './workqueue.js';

/** ExponentialBuckets(10e-9, 10, 10): 10 ns … 10 s. */
const DURATION_BUCKETS = exponentialBuckets(10e-9, 10, 10);

interface QueueInstruments {
  adds: Counter;
  retries: Counter;
  queueDuration: Histogram;
  workDuration: Histogram;
  live: Set<QueueFigures>;
}

let instruments: QueueInstruments | undefined;

/** One set of instruments per process, fed by every queue (the gauges read the live queues when scraped). */
function queueInstruments(): QueueInstruments {
  if (instruments) return instruments;
  const meter = telemetry().meter;
  const live = new Set<QueueFigures>();
  const gauge = (name: string, description: string, read: (q: QueueFigures, now: number) => number) =>
    meter.createObservableGauge(name, { description }).addCallback((result) => {
      const now = performance.now();
      for (const q of live) result.observe(read(q, now), { name: q.name });
    });
  gauge('workqueue_depth', 'Current depth of workqueue', (q) => q.added.size);
  gauge('workqueue_unfinished_work_seconds', 'How many seconds of work has done that is in progress and hasn\'t been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.', (q, now) => {
    let sum = 0;
    for (const started of q.processing.values()) sum += now - started;
    return sum / 1000;
  });
  gauge('workqueue_longest_running_processor_seconds', 'How many seconds has the longest running processor for workqueue been running.', (q, now) => {
    let longest = 0;
    for (const started of q.processing.values()) longest = Math.max(longest, now - started);
    return longest / 1000;
  });
  instruments = {
    adds: meter.createCounter('workqueue_adds', { description: 'Total number of adds handled by workqueue' }),
    retries: meter.createCounter('workqueue_retries', { description: 'Total number of retries handled by workqueue' }),
    queueDuration: meter.createHistogram('workqueue_queue_duration_seconds', {
      description: 'How long in seconds an item stays in workqueue before being requested.',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    workDuration: meter.createHistogram('workqueue_work_duration_seconds', {
      description: 'How long in seconds processing an item from workqueue takes.',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    live,
  };
  return instruments;
}

interface QueueFigures {
  readonly name: string;
  /** Items added and not yet handed out, with when they were first added (client-go's addTimes). */
  readonly added: Map<string, number>;
  /** Items being processed, with when they were handed out (processingStartTimes). */
  readonly processing: Map<string, number>;
}

/** The metrics of the work queue `name`; `forget()` stops reporting its gauges (after the queue shuts down). */
export function workQueueMetrics(name: string): WorkQueueMetrics<string> & { forget(): void } {
  const { adds, retries, queueDuration, workDuration, live } = queueInstruments();
  const figures: QueueFigures = { name, added: new Map(), processing: new Map() };
  live.add(figures);
  const attributes = { name };
  return {
    add(item) {
      adds.add(1, attributes);
      if (!figures.added.has(item)) figures.added.set(item, performance.now());
    },
    get(item) {
      const now = performance.now();
      const addedAt = figures.added.get(item);
      if (addedAt !== undefined) queueDuration.record((now - addedAt) / 1000, attributes);
      figures.added.delete(item);
      figures.processing.set(item, now);
    },
    done(item) {
      const started = figures.processing.get(item);
      if (started !== undefined) workDuration.record((performance.now() - started) / 1000, attributes);
      figures.processing.delete(item);
    },
    retry() {
      retries.add(1, attributes);
    },
    forget() {
      live.delete(figures);
    },
  };
}
