// Wiring of the legacy Endpoints controller (upstream pkg/controller/endpoint): Service and pod events → the
// `endpoint` queue → reconcileEndpoints → one create, update or delete. Behaviour lives in reconciler.ts.
import { isNotFound, objectKey, splitKey } from '../runtime/client.js';
import { Controller } from '../runtime/controller.js';
import { involvedObjectOf } from '../runtime/events.js';
import type { Manager } from '../runtime/manager.js';
import { Endpoints as EndpointsResource } from '../../api/resources.js';
import type { Endpoints } from '../../api/wire.js';
import { StaleCacheError, isNamespaceTerminating, message } from '../endpointwiring/api-writes.js';
import type { EndpointCaches } from '../endpointwiring/informers.js';
import { CacheCatchUp } from '../endpointwiring/cache-catch-up.js';
import { type Reporting, controllerReporting, retryLimiter, workLoop } from '../endpointwiring/controller-parts.js';
import { recordEndpointWriteLatency } from '../endpointwiring/metrics.js';
import { type TriggerTimeState, computeTriggerTime } from '../endpointutil/trigger-time.js';
import { isLeaderElectionEndpoints, reconcileEndpoints } from './reconciler.js';
import { StaleEndpointsTracker } from './stale-tracker.js';

export interface EndpointsControllerOptions {
  /** Value of the endpoints.kubernetes.io/managed-by label; null leaves it off. */
  managedBy: string | null;
  /** --concurrent-endpoint-syncs */
  workers: number;
  /** --endpoint-updates-batch-period: delay of pod-triggered syncs. */
  batchPeriodMs: number;
}

const ENDPOINTS = { apiVersion: 'v1', kind: 'Endpoints' };
const SERVICE = { apiVersion: 'v1', kind: 'Service' };

export class EndpointsController {
  readonly controller: Controller;
  private readonly stale = new StaleEndpointsTracker();
  private readonly catchUp = new CacheCatchUp('endpoint');
  private readonly triggerTimes = new Map<string, TriggerTimeState>();
  /** Keys whose last write was truncated, so the log says so once per change. */
  private readonly truncated = new Set<string>();
  private readonly reporting: Reporting;

  constructor(
    private readonly manager: Manager,
    private readonly caches: EndpointCaches,
    private readonly options: EndpointsControllerOptions,
  ) {
    this.reporting = controllerReporting(manager, 'endpoints', 'endpoint-controller');
    // client-go's default limiter's shape (5 ms doubling per Service, 10 qps / burst 100 overall), capped lower.
    this.controller = workLoop('endpoint', (key) => this.sync(key), options.workers, retryLimiter(5), this.reporting.log);
    manager.addController(this.controller);
    // Upstream checkLeftoverEndpoints: on taking the lead, every Endpoints object is synced once, so those whose
    // Service is gone are deleted. Only then: an Endpoints created ahead of its Service must survive.
    manager.addRunnable({
      name: 'endpoints-leftovers',
      needsLeaderElection: true,
      run: async () => {
        for (const endpoints of this.caches.endpoints.store.list()) {
          if (!isLeaderElectionEndpoints(endpoints)) this.controller.enqueue(objectKey(endpoints));
        }
      },
    });
    this.watch();
  }

  private watch(): void {
    this.caches.queueServicesOnChange(this.controller.queue, this.options.batchPeriodMs);
    // A deleted Endpoints object is recreated; edits are left alone until the next sync, as upstream.
    this.caches.endpoints.addEventHandler({ onDelete: (endpoints) => this.controller.enqueue(objectKey(endpoints)) });
    // Every event (echoes of our own updates included) wakes a sync waiting for the cache to catch up.
    const notify = (endpoints: Endpoints, deleted = false) => {
      this.stale.observed(endpoints, deleted);
      this.catchUp.notify(objectKey(endpoints));
    };
    this.caches.endpoints.addEventHandler({ onAdd: (endpoints) => notify(endpoints), onUpdate: (_, endpoints) => notify(endpoints), onDelete: (endpoints) => notify(endpoints, true) });
  }

  private async sync(key: string): Promise<void> {
    const { namespace = '', name } = splitKey(key);
    if (!(await this.catchUp.caughtUp(key, () => this.stale.isStale(key, this.caches.endpoints.store.get(key))))) {
      // Never wait twice for an echo that did not come (the object may have changed hands meanwhile).
      this.stale.forget(namespace, name);
      throw new StaleCacheError('endpoints');
    }
    const service = this.caches.services.store.get(key);
    const existing = this.caches.endpoints.store.get(key);
    if (!service) {
      this.triggerTimes.delete(key);
      this.stale.forget(namespace, name);
      this.reporting.skips.forget(key);
      this.truncated.delete(key);
    }
    const pods = service ? this.caches.podsOf(service) : [];
    let triggerTime: string | undefined;
    if (service) {
      const trigger = computeTriggerTime(this.triggerTimes.get(key), service, pods);
      this.triggerTimes.set(key, trigger.state);
      triggerTime = trigger.triggerTime;
    }
    const result = reconcileEndpoints({ namespace, name, service, pods, existing, triggerTime, options: { managedByLabel: this.options.managedBy } });
    if (service) this.reporting.skips.report(key, involvedObjectOf(service, SERVICE), result.skipped);
    this.reportTruncation(key, result.truncated, result.counts);

    const { action } = result;
    switch (action.type) {
      case 'none':
        return;
      case 'delete':
        try {
          await this.manager.client.delete(EndpointsResource, action.name, { namespace: action.namespace, ...action.precondition });
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        if (existing) this.stale.recordDelete(existing);
        return;
      case 'create':
        try {
          this.stale.recordCreate(await this.manager.client.createForMetadata(EndpointsResource, action.endpoints));
          recordEndpointWriteLatency('Endpoints', service?.spec?.type, triggerTime);
        } catch (err) {
          if (isNamespaceTerminating(err)) return;
          this.failed(action.endpoints, 'FailedToCreateEndpoint', `Failed to create endpoint for service ${key}: ${message(err)}`);
          throw err;
        }
        return;
      case 'update':
        try {
          const updated = await this.manager.client.replaceUntracked(EndpointsResource, action.endpoints);
          if (existing) this.stale.recordUpdate(existing, updated);
          recordEndpointWriteLatency('Endpoints', service?.spec?.type, triggerTime);
        } catch (err) {
          this.failed(action.endpoints, 'FailedToUpdateEndpoint', `Failed to update endpoint ${key}: ${message(err)}`);
          throw err;
        }
        return;
    }
  }

  private failed(endpoints: Endpoints, reason: string, text: string): void {
    this.reporting.events.event(involvedObjectOf(endpoints, ENDPOINTS), 'Warning', reason, text);
  }

  private reportTruncation(key: string, truncated: boolean, counts: { ready: number; notReady: number }): void {
    if (truncated === this.truncated.has(key)) return;
    if (truncated) {
      this.truncated.add(key);
      this.reporting.log.warn('Endpoints over capacity: truncated to 1000 addresses (ready ones kept first); the over-capacity annotation says so', { key, ...counts });
    } else {
      this.truncated.delete(key);
      this.reporting.log.info('Endpoints back under capacity', { key, ...counts });
    }
  }
}
