// Wiring of the EndpointSlice controller (upstream pkg/controller/endpointslice): informer events → the
// `endpoint_slice` queue → reconcileEndpointSlices → API writes. Behaviour lives in reconciler.ts; this file only
// decides when to sync, reads the cache, sends the writes and reports (Events, logs, metrics).
import { splitKey } from '../runtime/client.js';
import { Controller } from '../runtime/controller.js';
import { involvedObjectOf } from '../runtime/events.js';
import type { Manager } from '../runtime/manager.js';
import { PROMETHEUS_DEFAULT_BUCKETS, createUpstreamCounter } from '../runtime/telemetry.js';
import type { EndpointSlice, Node, Pod, Service } from '../../api/wire.js';
import { reconcileEndpointSlices, type EndpointSliceReconcileResult } from './reconciler.js';
import { StaleCacheError, applySliceWrites, message } from '../endpointwiring/api-writes.js';
import { type AddressType, LABEL_TOPOLOGY_ZONE } from '../endpointutil/constants.js';
import type { EndpointCaches } from '../endpointwiring/informers.js';
import type { PodSyncBatcher } from '../endpointwiring/pod-sync-batcher.js';
import { SliceControllerMetrics, recordEndpointWriteLatency } from '../endpointwiring/metrics.js';
import { CacheCatchUp } from '../endpointwiring/cache-catch-up.js';
import { type Reporting, controllerReporting, retryLimiter, workLoop } from '../endpointwiring/controller-parts.js';
import { notifyOwners, sliceEventHandlers } from '../endpointwiring/slice-events.js';
import { EndpointSliceTracker } from '../endpointutil/tracker.js';
import { type TriggerTimeState, computeTriggerTime } from '../endpointutil/trigger-time.js';
import { type ZoneEndpointCounts, isServiceOverloaded, topologyHintsEnabled, zoneRatiosFromNodes } from './topology.js';

export interface EndpointSliceControllerOptions {
  managedBy: string;
  maxEndpointsPerSlice: number;
  /** --concurrent-service-endpoint-syncs */
  workers: number;
  /** --endpointslice-updates-batch-period: delay of pod-triggered syncs. */
  batchPeriodMs: number;
}

/** Upstream endpointSliceChangeMinSyncDelay: slice events never trigger a sync sooner than this. */
const SLICE_CHANGE_MIN_SYNC_DELAY_MS = 1000;
const TOPOLOGY_KEY = 'topology';
const SERVICE = { apiVersion: 'v1', kind: 'Service' };

function nodeReady(node: Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

interface HintState {
  populated: boolean;
  zoneCounts: Partial<Record<AddressType, ZoneEndpointCounts>>;
}

export class EndpointSliceController {
  readonly controller: Controller;
  /** Recomputes zone ratios after Node changes and re-syncs Services whose hints became unbalanced. */
  readonly topology: Controller;
  private readonly tracker = new EndpointSliceTracker();
  private readonly catchUp = new CacheCatchUp('endpoint_slice');
  private readonly triggerTimes = new Map<string, TriggerTimeState>();
  private readonly hints = new Map<string, HintState>();
  /** Services that left pods out because their Node was not cached yet, by Node name. */
  private readonly waitingForNode = new Map<string, Set<string>>();
  private readonly trafficDistribution = new Map<string, string>();
  private readonly reporting: Reporting;
  private readonly metrics = new SliceControllerMetrics('endpoint_slice_controller');
  private readonly syncs;
  private readonly changedPerSync;
  private podSyncs?: PodSyncBatcher;

  constructor(
    private readonly manager: Manager,
    private readonly caches: EndpointCaches,
    private readonly options: EndpointSliceControllerOptions,
  ) {
    this.reporting = controllerReporting(manager, 'endpointslice', 'endpoint-slice-controller');
    const { log } = this.reporting;
    this.syncs = createUpstreamCounter('endpoint_slice_controller_syncs', 'Number of EndpointSlice syncs');
    // Declared without buckets upstream (k8s.io/endpointslice/metrics/metrics.go): client_golang's defaults.
    this.changedPerSync = this.metrics.histogram('endpointslices_changed_per_sync', 'Number of EndpointSlices changed on each Service sync', PROMETHEUS_DEFAULT_BUCKETS);
    const services = this.metrics.meter.createObservableGauge('endpoint_slice_controller_services_count_by_traffic_distribution', {
      description: 'Number of Services using some specific trafficDistribution',
    });
    services.addCallback((result) => {
      const counts = new Map<string, number>();
      for (const value of this.trafficDistribution.values()) counts.set(value, (counts.get(value) ?? 0) + 1);
      for (const [value, count] of counts) result.observe(count, { traffic_distribution: value });
    });
    this.controller = workLoop('endpoint_slice', (key) => this.sync(key), options.workers, retryLimiter(1000), log);
    this.topology = new Controller({ name: 'endpoint_slice_topology', reconcile: () => this.checkTopology(), workers: 1, log });
    manager.addController(this.controller);
    manager.addController(this.topology);
    this.watch();
  }

  private watch(): void {
    this.podSyncs = this.caches.queueServicesOnChange(this.controller.queue, this.options.batchPeriodMs);

    this.caches.nodes.addEventHandler({
      onAdd: (node) => {
        this.topology.enqueue(TOPOLOGY_KEY);
        const name = node.metadata?.name ?? '';
        for (const key of this.waitingForNode.get(name) ?? []) this.controller.enqueue(key);
        this.waitingForNode.delete(name);
      },
      onUpdate: (old, node) => {
        const zone = (n: Node) => n.metadata?.labels?.[LABEL_TOPOLOGY_ZONE];
        if (nodeReady(old) !== nodeReady(node) || zone(old) !== zone(node)) this.topology.enqueue(TOPOLOGY_KEY);
      },
      onDelete: () => this.topology.enqueue(TOPOLOGY_KEY),
    });

    const delay = Math.max(SLICE_CHANGE_MIN_SYNC_DELAY_MS, this.options.batchPeriodMs);
    const resync = (key: string, stillNeeded: () => boolean) => {
      setTimeout(() => stillNeeded() && this.controller.queue.add(key), delay).unref();
    };
    this.caches.slices.addEventHandler(sliceEventHandlers(this.tracker, this.options.managedBy, resync, this.reporting.log));
    this.caches.slices.addEventHandler(notifyOwners(this.catchUp));
  }

  private forget(key: string): void {
    const { namespace = '', name } = splitKey(key);
    this.tracker.deleteOwner(namespace, name);
    this.triggerTimes.delete(key);
    this.hints.delete(key);
    this.trafficDistribution.delete(key);
    this.metrics.forgetOwner(key);
    this.reporting.skips.forget(key);
  }

  /** The Nodes the reconciler needs: those of the pods, or all of them when zone ratios are computed. */
  private nodesFor(service: Service, pods: readonly Pod[]): { nodes: Node[]; missing: Map<string, string> } {
    const missing = new Map<string, string>(); // pod → node
    if (topologyHintsEnabled(service.metadata?.annotations)) {
      const nodes = this.caches.nodes.store.list();
      const names = new Set(nodes.map((n) => n.metadata?.name));
      for (const pod of pods) if (!names.has(pod.spec?.nodeName)) missing.set(pod.metadata?.name ?? '', pod.spec?.nodeName ?? '');
      return { nodes, missing };
    }
    const nodes = new Map<string, Node>();
    for (const pod of pods) {
      const name = pod.spec?.nodeName ?? '';
      const node = this.caches.nodes.store.get(name);
      if (node) nodes.set(name, node);
      else missing.set(pod.metadata?.name ?? '', name);
    }
    return { nodes: [...nodes.values()], missing };
  }

  private async sync(key: string): Promise<void> {
    const { namespace = '', name } = splitKey(key);
    const service = this.caches.services.store.get(key);
    if (!service) {
      // The garbage collector removes the slices through their owner reference.
      this.forget(key);
      return;
    }
    const cachedSlices = () => this.caches.slicesOf(namespace, name, this.options.managedBy).filter((slice) => !slice.metadata?.deletionTimestamp);
    if (!(await this.catchUp.caughtUp(key, () => this.tracker.staleSlices(service, cachedSlices())))) {
      this.syncs.add(1, { result: 'stale' });
      throw new StaleCacheError('EndpointSlice');
    }
    const slices = cachedSlices();
    const pods = this.caches.podsOf(service);
    const trigger = computeTriggerTime(this.triggerTimes.get(key), service, pods);
    this.triggerTimes.set(key, trigger.state);
    const { nodes, missing } = this.nodesFor(service, pods);
    const result = reconcileEndpointSlices({
      service,
      pods,
      nodes,
      existingSlices: slices,
      triggerTime: trigger.triggerTime,
      topologyHintsPopulated: this.hints.get(key)?.populated,
      options: { managedBy: this.options.managedBy, maxEndpointsPerSlice: this.options.maxEndpointsPerSlice },
    });
    const involved = involvedObjectOf(service, SERVICE);
    this.reporting.skips.report(key, involved, result.skipped);
    for (const event of result.events) this.reporting.events.event(involved, event.type, event.reason, event.message);

    try {
      await applySliceWrites(this.manager.client, this.tracker, result, key, (operation) => this.metrics.recordChange(operation));
    } catch (err) {
      this.syncs.add(1, { result: 'error' });
      this.reporting.events.event(involved, 'Warning', 'FailedToUpdateEndpointSlices', `Error updating Endpoint Slices for Service ${key}: ${message(err)}`);
      throw err;
    }
    // Writes beyond one per sync count against the pod-sync budget (see pod-sync-batcher.ts).
    this.podSyncs?.charge(result.toCreate.length + result.toUpdate.length + result.toDelete.length);
    this.record(key, service, slices, result);
    if (result.toCreate.length + result.toUpdate.length > 0) recordEndpointWriteLatency('EndpointSlice', service.spec?.type, trigger.triggerTime);

    if (result.retry) {
      // Upstream (PR #110639): the pods of uncached Nodes are left out and the sync fails, so it is retried with
      // backoff; Switchboard also re-syncs as soon as the Node appears.
      const withheld = [...missing].filter(([pod]) => result.skipped.some((s) => s.code === 'PodNodeNotFound' && s.name === pod));
      for (const [, node] of withheld) if (node) this.waitingForNode.set(node, (this.waitingForNode.get(node) ?? new Set()).add(key));
      const detail = withheld.map(([pod, node]) => `skipping Pod ${pod} for Service ${key}: Node ${node} Not Found`).join(', ');
      this.syncs.add(1, { result: 'error' });
      this.reporting.events.event(involved, 'Warning', 'FailedToUpdateEndpointSlices', `Error updating Endpoint Slices for Service ${key}: ${detail}`);
      throw new Error(detail);
    }
    this.syncs.add(1, { result: 'success' });
  }

  private record(key: string, service: Service, slices: readonly EndpointSlice[], result: EndpointSliceReconcileResult): void {
    this.hints.set(key, { populated: result.topologyHintsPopulated, zoneCounts: result.zoneEndpointCounts });
    const { stats } = result;
    this.metrics.endpointsAdded.record(stats.endpointsAdded);
    this.metrics.endpointsRemoved.record(stats.endpointsRemoved);
    this.metrics.setOwner(key, {
      endpointsDesired: stats.endpointsDesired,
      slices: slices.length + result.toCreate.length - result.toDelete.length,
      desiredSlices: stats.desiredSlices,
    });
    const trafficDistribution = service.spec?.trafficDistribution ?? '';
    if (trafficDistribution) this.trafficDistribution.set(key, trafficDistribution);
    else this.trafficDistribution.delete(key);
    const changed = result.toCreate.length + result.toUpdate.length + result.toDelete.length;
    const topology = topologyHintsEnabled(service.metadata?.annotations) ? 'Auto' : 'Disabled';
    this.changedPerSync.record(changed, { topology, traffic_distribution: trafficDistribution });
  }

  /** After a Node change: Services whose hinted zones no longer match the CPU shares are synced again. */
  private async checkTopology(): Promise<void> {
    const ratios = zoneRatiosFromNodes(this.caches.nodes.store.list());
    for (const [key, state] of this.hints) {
      if (!state.populated) continue;
      if (Object.values(state.zoneCounts).some((counts) => isServiceOverloaded(counts, ratios))) this.controller.enqueue(key);
    }
  }
}
