// Metrics of the two slice-writing controllers under upstream's names (spec §1.13 and §3): per-sync histograms,
// write counters, and gauges summed over a per-owner cache (upstream's metrics cache), so that a deleted
// Service or Endpoints stops counting as soon as it is forgotten.
import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import { createUpstreamCounter, exponentialBuckets, telemetry } from '../runtime/telemetry.js';
import type { SliceOperation } from './api-writes.js';
import { timeToNanos } from '../endpointutil/trigger-time.js';

/** Upstream's buckets for per-sync endpoint counts: 2, 4, … 32768. */
export const PER_SYNC_BUCKETS = exponentialBuckets(2, 2, 15);

interface OwnerFigures {
  endpointsDesired: number;
  slices: number;
  desiredSlices: number;
}

export class SliceControllerMetrics {
  readonly meter: Meter;
  readonly endpointsAdded: Histogram;
  readonly endpointsRemoved: Histogram;
  private readonly changes: Counter;
  private readonly owners = new Map<string, OwnerFigures>();

  /** `prefix` is `endpoint_slice_controller` or `endpoint_slice_mirroring_controller`. */
  constructor(readonly prefix: string) {
    this.meter = telemetry().meter;
    this.endpointsAdded = this.histogram('endpoints_added_per_sync', 'Number of endpoints added on each sync', PER_SYNC_BUCKETS);
    this.endpointsRemoved = this.histogram('endpoints_removed_per_sync', 'Number of endpoints removed on each sync', PER_SYNC_BUCKETS);
    this.changes = createUpstreamCounter(`${prefix}_changes`, 'Number of EndpointSlice changes');
    this.gauge('endpoints_desired', 'Number of endpoints desired', (f) => f.endpointsDesired);
    this.gauge('num_endpoint_slices', 'Number of EndpointSlices', (f) => f.slices);
    this.gauge('desired_endpoint_slices', 'Number of EndpointSlices that would exist with perfect endpoint allocation', (f) => f.desiredSlices);
  }

  histogram(name: string, description: string, buckets: number[]): Histogram {
    return this.meter.createHistogram(`${this.prefix}_${name}`, { description, advice: { explicitBucketBoundaries: buckets } });
  }

  private gauge(name: string, description: string, pick: (figures: OwnerFigures) => number): void {
    this.meter.createObservableGauge(`${this.prefix}_${name}`, { description }).addCallback((result) => {
      let sum = 0;
      for (const figures of this.owners.values()) sum += pick(figures);
      result.observe(sum);
    });
  }

  recordChange(operation: SliceOperation, attributes: Attributes = {}): void {
    this.changes.add(1, { operation, ...attributes });
  }

  setOwner(key: string, figures: OwnerFigures): void {
    this.owners.set(key, figures);
  }

  forgetOwner(key: string): void {
    this.owners.delete(key);
  }
}

/** Buckets of switchboard_endpoint_write_latency_seconds: 5 ms … 5 min. */
const WRITE_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

let writeLatency: Histogram | undefined;

/**
 * Records how long after its trigger time a change reached the API: the `endpoints.kubernetes.io/last-change-trigger-time`
 * the object was just written with (the earliest pod Ready transition, or Service creation, this sync took in, as
 * kube-controller-manager sets it) to now. kube-proxy measures the same start up to its rules
 * (network_programming_duration_seconds); this is the control plane's part of it. Ready transitions carry whole
 * seconds, so a figure can be up to 1 s high. Nothing is recorded without a trigger time (a pod deleted outright).
 */
export function recordEndpointWriteLatency(object: 'EndpointSlice' | 'Endpoints', serviceType: string | undefined, triggerTime: string | undefined): void {
  const trigger = timeToNanos(triggerTime);
  if (trigger === undefined) return;
  writeLatency ??= telemetry().meter.createHistogram('switchboard_endpoint_write_latency_seconds', {
    description: 'From a change\'s last-change-trigger-time (pod Ready transition or Service creation) to the EndpointSlice or Endpoints written with it',
    unit: 's',
    advice: { explicitBucketBoundaries: WRITE_LATENCY_BUCKETS },
  });
  const seconds = Number(BigInt(Date.now()) * 1_000_000n - trigger) / 1e9;
  writeLatency.record(Math.max(0, seconds), { object, service_type: serviceType ?? 'ClusterIP' });
}
