// Wiring of the EndpointSlice mirroring controller (upstream pkg/controller/endpointslicemirroring): Endpoints of
// selector-less Services are mirrored into slices. Informer events → the `endpoint_slice_mirroring` queue →
// reconcileMirroredSlices → API writes. Behaviour lives in reconciler.ts.
import { objectKey, splitKey } from '../runtime/client.js';
import { Controller } from '../runtime/controller.js';
import { involvedObjectOf } from '../runtime/events.js';
import type { Manager } from '../runtime/manager.js';
import type { Endpoints, Service } from '../../api/wire.js';
import { StaleCacheError, applySliceWrites } from '../endpointwiring/api-writes.js';
import type { EndpointCaches } from '../endpointwiring/informers.js';
import { PER_SYNC_BUCKETS, SliceControllerMetrics } from '../endpointwiring/metrics.js';
import { exponentialBuckets } from '../runtime/telemetry.js';
import { CacheCatchUp } from '../endpointwiring/cache-catch-up.js';
import { type Reporting, controllerReporting, retryLimiter, workLoop } from '../endpointwiring/controller-parts.js';
import { notifyOwners, sliceEventHandlers } from '../endpointwiring/slice-events.js';
import { EndpointSliceTracker } from '../endpointutil/tracker.js';
import { reconcileMirroredSlices, shouldMirror } from './reconciler.js';

export interface MirroringControllerOptions {
  managedBy: string;
  /** --mirroring-max-endpoints-per-subset */
  maxEndpointsPerSubset: number;
  /** --mirroring-concurrent-service-endpoint-syncs */
  workers: number;
  /** --mirroring-endpointslice-updates-batch-period: delay of slice-triggered syncs. */
  batchPeriodMs: number;
}

const ENDPOINTS = { apiVersion: 'v1', kind: 'Endpoints' };

export class MirroringController {
  readonly controller: Controller;
  private readonly tracker = new EndpointSliceTracker();
  private readonly catchUp = new CacheCatchUp('endpoint_slice_mirroring');
  private readonly reporting: Reporting;
  private readonly metrics = new SliceControllerMetrics('endpoint_slice_mirroring_controller');
  private readonly endpointsUpdated;
  private readonly addressesSkipped;
  private readonly syncDuration;

  constructor(
    private readonly manager: Manager,
    private readonly caches: EndpointCaches,
    private readonly options: MirroringControllerOptions,
  ) {
    this.reporting = controllerReporting(manager, 'endpointslice-mirroring', 'endpoint-slice-mirroring-controller');
    this.endpointsUpdated = this.metrics.histogram('endpoints_updated_per_sync', 'Number of endpoints updated on each Endpoints sync', PER_SYNC_BUCKETS);
    this.addressesSkipped = this.metrics.histogram('addresses_skipped_per_sync', 'Number of addresses skipped on each Endpoints sync', PER_SYNC_BUCKETS);
    this.syncDuration = this.metrics.histogram('endpoints_sync_duration', 'Duration of syncEndpoints() in seconds', exponentialBuckets(0.001, 2, 15));
    this.controller = workLoop('endpoint_slice_mirroring', (key) => this.timed(key), options.workers, retryLimiter(1000), this.reporting.log);
    manager.addController(this.controller);
    this.watch();
  }

  private watch(): void {
    const enqueue = (obj: Endpoints | Service) => this.controller.enqueue(objectKey(obj));
    this.caches.endpoints.addEventHandler({
      onAdd: (endpoints) => shouldMirror(endpoints) && enqueue(endpoints),
      onUpdate: (old, endpoints) => (shouldMirror(old) || shouldMirror(endpoints)) && enqueue(endpoints),
      onDelete: (endpoints) => shouldMirror(endpoints) && enqueue(endpoints),
    });

    const selectorless = (service: Service) => service.spec?.selector == null;
    this.caches.services.addEventHandler({
      onAdd: (service) => selectorless(service) && enqueue(service),
      onUpdate: (old, service) => selectorless(old) !== selectorless(service) && enqueue(service),
      onDelete: (service) => selectorless(service) && enqueue(service),
    });

    const sync = (key: string) => this.controller.queue.addAfter(key, this.options.batchPeriodMs);
    this.caches.slices.addEventHandler(sliceEventHandlers(this.tracker, this.options.managedBy, sync, this.reporting.log));
    this.caches.slices.addEventHandler(notifyOwners(this.catchUp));
  }

  private async timed(key: string): Promise<void> {
    const started = process.hrtime.bigint();
    try {
      await this.sync(key);
    } finally {
      this.syncDuration.record(Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  private async sync(key: string): Promise<void> {
    const { namespace = '', name } = splitKey(key);
    const cachedSlices = () => this.caches.slicesOf(namespace, name, this.options.managedBy).filter((slice) => !slice.metadata?.deletionTimestamp);
    const mirroredService = () => {
      const service = this.caches.services.store.get(key);
      return shouldMirror(this.caches.endpoints.store.get(key)) && service !== undefined && service.spec?.selector == null ? service : undefined;
    };
    const owner = mirroredService();
    if (owner && !(await this.catchUp.caughtUp(key, () => this.tracker.staleSlices(owner, cachedSlices())))) throw new StaleCacheError('EndpointSlice');
    const endpoints = this.caches.endpoints.store.get(key);
    const service = this.caches.services.store.get(key);
    const slices = cachedSlices();
    const mirrored = mirroredService() !== undefined;
    if (!mirrored) {
      // Every mirrored slice goes; the tracker starts afresh if mirroring resumes.
      this.tracker.deleteOwner(namespace, name);
      this.metrics.forgetOwner(key);
      this.reporting.skips.forget(key);
    }
    const result = reconcileMirroredSlices({
      endpoints,
      service,
      existingSlices: slices,
      options: { managedBy: this.options.managedBy, maxEndpointsPerSubset: this.options.maxEndpointsPerSubset },
    });
    if (endpoints) {
      const involved = involvedObjectOf(endpoints, ENDPOINTS);
      this.reporting.skips.report(key, involved, result.skipped);
      for (const event of result.events) this.reporting.events.event(involved, event.type, event.reason, event.message);
    }
    await applySliceWrites(this.manager.client, this.tracker, result, key, (operation) => this.metrics.recordChange(operation));
    if (!mirrored) return;
    const { stats } = result;
    this.metrics.endpointsAdded.record(stats.endpointsAdded);
    this.endpointsUpdated.record(stats.endpointsUpdated);
    this.metrics.endpointsRemoved.record(stats.endpointsRemoved);
    this.addressesSkipped.record(stats.addressesSkipped);
    // The slices as they are now: untouched ones plus what was written.
    const written = new Set([...result.toUpdate, ...result.toDelete].map((slice) => slice.metadata?.name));
    const now = [...slices.filter((slice) => !written.has(slice.metadata?.name)), ...result.toCreate, ...result.toUpdate];
    const desired = now.reduce((sum, slice) => sum + (slice.endpoints ?? []).length, 0);
    this.metrics.setOwner(key, { endpointsDesired: desired, slices: now.length, desiredSlices: now.length });
  }
}
