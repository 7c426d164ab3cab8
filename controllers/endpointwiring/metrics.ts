// Metrics of the two slice-writing controllers under upstream's names (spec §1.13 and §3): per-sync histograms,
// write counters, and gauges summed over a per-owner cache (upstream's metrics cache), so that a deleted
// Service or Endpoints stops counting as soon as it is forgotten.
import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import { telemetry } from '../runtime/telemetry.js';
import type { SliceOperation } from './api-writes.js';

/** Prometheus ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

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
    this.changes = this.meter.createCounter(`${prefix}_changes`, { description: 'Number of EndpointSlice changes' });
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
