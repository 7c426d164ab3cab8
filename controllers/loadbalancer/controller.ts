// The LoadBalancer allocation controller: the shell around allocate() (allocators/lb-allocator.ts).
//
// One work key, PASS, recomputes every Service's addresses from the caches: the allocator is global by nature
// (sharing, pool precedence, the reuse order), and a pass over thousands of Services is milliseconds. The pass
// only decides; per-Service keys (svc:<ns>/<name>) and per-pool keys (pool:<name>) write what differs from the
// cache, with compare-and-swap on resourceVersion, and record Events only together with a write. The addresses
// held start from the Services' own status after a start or a leader change, so a restart never moves an address
// and pending Services never take one that is held.
import { aborted } from '../runtime/abort.js';
import { objectKey, type KubeClient } from '../runtime/client.js';
import { Controller } from '../runtime/controller.js';
import { involvedObjectOf, type EventSink } from '../runtime/events.js';
import type { Informer } from '../runtime/informer.js';
import type { Logger } from '../runtime/log.js';
import type { Manager } from '../runtime/manager.js';
import { formatIP, parseIPStrict } from '../../api/ip.js';
import { Namespaces, Services } from '../../api/resources.js';
import { telemetry } from '../runtime/telemetry.js';
import type { Namespace, Service } from '../../api/wire.js';
import { IPAddressPools, PoolConditionValid, type IPAddressPool, type IPAddressPoolStatus } from '../../crds/ipaddresspool.js';
import { SWITCHBOARD_API_VERSION, type Condition } from '../../crds/meta.js';
import { allocate, assignmentsFromServices, type ServiceAllocation } from '../../allocators/loadbalancer/allocator.js';
import { parsePools, poolCounters, poolStatus, type ParsedPools, type PoolCounters } from '../../allocators/loadbalancer/pools.js';
import {
  ANNOTATION_ADDRESS_POOL,
  ANNOTATION_ALLOCATED_FROM_POOL,
  ANNOTATION_ALLOW_SHARED_IP,
  ANNOTATION_LOADBALANCER_IPS,
  ANNOTATION_PREFIX,
  LEGACY_ANNOTATION_PREFIX,
  isHandledClass,
  isLoadBalancer,
} from '../../allocators/loadbalancer/service-request.js';
import { AllocatorStateStore, freedAfterRestart } from './allocator-state.js';
import { conditionSays, setCondition } from './conditions.js';
import { WrittenView } from './written-view.js';
import { carriesOurMarks, releaseWriteFor, serviceWriteFor, type IPMode, type ServiceWrite } from './service-status.js';

export const PASS = '@pass';
const SVC = 'svc:';
const POOL = 'pool:';

export interface LoadBalancerControllerOptions {
  /** Services of this class are handled. */
  loadBalancerClass: string;
  /** Services without a class are handled too. */
  handleUnsetClass: boolean;
  ipMode: IPMode;
  /** Namespace of the allocator-state ConfigMap. */
  namespace: string;
  /** Keep the reuse order of freed addresses across restarts (a ConfigMap). */
  persistState: boolean;
}

const SERVICE_REF = { apiVersion: 'v1', kind: 'Service' };
const POOL_REF = { apiVersion: SWITCHBOARD_API_VERSION, kind: 'IPAddressPool' };
const ANNOTATIONS_READ = [ANNOTATION_ADDRESS_POOL, ANNOTATION_LOADBALANCER_IPS, ANNOTATION_ALLOW_SHARED_IP].flatMap((n) => [ANNOTATION_PREFIX + n, LEGACY_ANNOTATION_PREFIX + n]);

/** Everything of a Service the allocator reads: a change here needs a new pass, a status change does not. */
export function allocationInputs(svc: Service): string {
  const s = svc.spec ?? {};
  const annotations = svc.metadata?.annotations ?? {};
  return JSON.stringify([
    svc.metadata?.uid,
    svc.metadata?.labels ?? {},
    ANNOTATIONS_READ.map((k) => annotations[k] ?? null),
    s.type,
    s.loadBalancerClass ?? null,
    s.loadBalancerIP ?? null,
    s.ipFamilies ?? [],
    s.ipFamilyPolicy ?? null,
    s.clusterIPs ?? [],
    (s.ports ?? []).map((p) => [p.protocol, p.port]),
    s.externalTrafficPolicy ?? null,
    s.selector ?? null,
  ]);
}

const COUNTER_FAMILIES = [
  ['IPv4', 'assignedIPv4', 'availableIPv4'],
  ['IPv6', 'assignedIPv6', 'availableIPv6'],
] as const;

let metricsSource: LoadBalancerController | undefined;
let metricsRegistered = false;

export class LoadBalancerController {
  readonly controller: Controller;
  private readonly services: Informer<Service>;
  private readonly pools: Informer<IPAddressPool>;
  private readonly namespaces: Informer<Namespace>;
  private readonly serviceView: WrittenView<Service>;
  private readonly poolView: WrittenView<IPAddressPool>;
  private readonly client: KubeClient;
  private readonly events: EventSink;
  private readonly log: Logger;
  private readonly state: AllocatorStateStore | undefined;

  /** Addresses held, by Service key; undefined until the first pass of a leadership term rebuilds it. */
  private current: Map<string, string[]> | undefined;
  private freedAt = new Map<string, number>();
  private desired = new Map<string, ServiceAllocation>();
  private parsed: ParsedPools = { pools: [], invalid: new Map() };
  private counters = new Map<string, PoolCounters>();
  private poolDrafts = new Map<string, ReturnType<typeof poolStatus>>();
  private pending = 0;
  private allocated = 0;

  constructor(
    manager: Manager,
    private readonly options: LoadBalancerControllerOptions,
  ) {
    this.client = manager.client;
    this.events = manager.events;
    this.log = manager.log.child('loadbalancer');
    this.services = manager.informer<Service>(Services);
    this.pools = manager.informer<IPAddressPool>(IPAddressPools);
    this.namespaces = manager.informer<Namespace>(Namespaces);
    this.serviceView = new WrittenView(this.services.store);
    this.poolView = new WrittenView(this.pools.store);
    this.state = options.persistState ? new AllocatorStateStore(this.client, options.namespace, this.log) : undefined;
    this.controller = new Controller({ name: 'loadbalancer', reconcile: (key) => this.reconcile(key), workers: 4, log: this.log });
    const pass = () => this.controller.enqueue(PASS);
    this.services.addEventHandler({
      onAdd: pass,
      onUpdate: (old, svc) => {
        if (allocationInputs(old) !== allocationInputs(svc)) pass();
        else this.controller.enqueue(SVC + objectKey(svc)); // someone else changed the status: put ours back
      },
      onDelete: pass,
    });
    this.pools.addEventHandler({
      onAdd: pass,
      onUpdate: (old, p) => {
        const moved = JSON.stringify(old.status?.conflicts ?? []) !== JSON.stringify(p.status?.conflicts ?? []);
        if (moved || old.metadata.generation !== p.metadata.generation || JSON.stringify(old.metadata.labels) !== JSON.stringify(p.metadata.labels)) pass();
        else this.controller.enqueue(POOL + p.metadata.name);
      },
      onDelete: pass,
    });
    this.namespaces.addEventHandler({
      onUpdate: (old, ns) => {
        if (JSON.stringify(old.metadata?.labels) !== JSON.stringify(ns.metadata?.labels)) pass();
      },
      onDelete: pass,
      onAdd: pass,
    });
    manager.addController(this.controller);
    // A new leadership term rebuilds its memory from the Services, never from what a previous term believed.
    manager.addRunnable({
      name: 'loadbalancer-term',
      needsLeaderElection: true,
      run: async (signal) => {
        this.current = undefined;
        this.controller.enqueue(PASS);
        await aborted(signal);
        await this.state?.close();
      },
    });
    this.registerMetrics();
  }

  /** The gauges read the latest controller of the process (a restarted manager makes a new one). */
  private registerMetrics(): void {
    metricsSource = this;
    if (metricsRegistered) return;
    metricsRegistered = true;
    const meter = telemetry().meter;
    meter
      .createObservableGauge('switchboard_lb_pool_addresses', { description: 'Addresses a pool can hand out, by family' })
      .addCallback((r) => {
        for (const [pool, c] of metricsSource?.counters ?? []) for (const [family, used, free] of COUNTER_FAMILIES) r.observe(c[used] + c[free], { pool, family });
      });
    meter
      .createObservableGauge('switchboard_lb_pool_addresses_in_use', { description: 'Addresses of a pool held by Services, by family' })
      .addCallback((r) => {
        for (const [pool, c] of metricsSource?.counters ?? []) for (const [family, used] of COUNTER_FAMILIES) r.observe(c[used], { pool, family });
      });
    meter
      .createObservableGauge('switchboard_lb_services', { description: 'LoadBalancer Services handled, by state (allocated or pending)' })
      .addCallback((r) => {
        r.observe(metricsSource?.allocated ?? 0, { state: 'allocated' });
        r.observe(metricsSource?.pending ?? 0, { state: 'pending' });
      });
  }

  private reconcile(key: string): Promise<void> {
    if (key === PASS) return this.pass();
    if (key.startsWith(SVC)) return this.writeService(key.slice(SVC.length));
    if (key.startsWith(POOL)) return this.writePool(key.slice(POOL.length));
    return Promise.resolve();
  }

  private isOurs(svc: Service): boolean {
    return isLoadBalancer(svc) && isHandledClass(svc, this.options.loadBalancerClass, this.options.handleUnsetClass);
  }

  /** Decides every Service's addresses and queues the writes that differ from the caches. */
  private async pass(): Promise<void> {
    const services = this.serviceView.list();
    const now = Date.now();
    if (!this.current) {
      this.current = assignmentsFromServices(services, this.options.loadBalancerClass, this.options.handleUnsetClass);
      const memory = this.state ? await this.state.load() : { freedAt: new Map<string, number>(), held: new Set<string>() };
      this.freedAt = freedAfterRestart(memory, [...this.current.values()].flat(), now);
      this.log.info('rebuilt assignments from Services', { services: this.current.size, freedRecords: this.freedAt.size });
    }
    const pools = this.poolView.list();
    this.parsed = parsePools(pools, this.namespaces.store.list());
    const result = allocate({
      pools: this.parsed.pools,
      services,
      current: this.current,
      freedAt: this.freedAt,
      now,
      loadBalancerClass: this.options.loadBalancerClass,
      handleUnsetClass: this.options.handleUnsetClass,
      conflicts: addressConflicts(pools),
    });
    this.current = result.assignments;
    this.freedAt = result.freedAt;
    this.desired = result.services;
    this.state?.save({ freedAt: this.freedAt, held: new Set([...this.current.values()].flat()) });

    let pending = 0;
    for (const a of result.services.values()) if (a.outcome === 'pending') pending++;
    this.pending = pending;
    this.allocated = result.assignments.size;
    for (const svc of services) {
      const key = objectKey(svc);
      const a = this.desired.get(key);
      const write = a && a.outcome !== 'released' && this.isOurs(svc) ? serviceWriteFor(svc, a, this.options.ipMode, new Date()) : carriesOurMarks(svc) && !this.isOurs(svc) ? releaseWriteFor(svc) : {};
      if (write.status || write.poolAnnotation !== undefined) this.controller.enqueue(SVC + key);
    }

    const counters = new Map<string, PoolCounters>();
    this.poolDrafts = new Map();
    for (const pool of pools) {
      const name = pool.metadata.name ?? '';
      const draft = poolStatus(name, this.parsed, result.usage);
      this.poolDrafts.set(name, draft);
      const parsedPool = this.parsed.pools.find((p) => p.name === name);
      if (parsedPool) counters.set(name, poolCounters(parsedPool, result.usage.get(name) ?? []));
      if (poolStatusFor(pool, draft, new Date())) this.controller.enqueue(POOL + name);
    }
    this.counters = counters;
  }

  private async writeService(key: string): Promise<void> {
    const svc = this.serviceView.get(key);
    if (!svc || this.current === undefined) return;
    const a = this.desired.get(key);
    let write: ServiceWrite;
    if (this.isOurs(svc)) {
      if (!a || a.outcome === 'released') return;
      write = serviceWriteFor(svc, a, this.options.ipMode, new Date());
    } else {
      write = releaseWriteFor(svc);
    }
    // The annotation first, so that once the status shows the decision everything about it is in place.
    let base = svc;
    if (write.poolAnnotation !== undefined) {
      const patch = { metadata: { annotations: { [ANNOTATION_ALLOCATED_FROM_POOL]: write.poolAnnotation } } };
      base = await this.client.patch<Service>(Services, svc.metadata?.name ?? '', patch, 'merge', { namespace: svc.metadata?.namespace });
      this.serviceView.wrote(key, svc, base);
    }
    if (!write.status) return;
    // CAS on the resourceVersion read: a conflict means the cache is behind; the retry sees the newer Service.
    this.serviceView.wrote(key, svc, await this.client.replace<Service>(Services, { ...base, status: write.status }, 'status'));
    if (a && this.isOurs(svc)) {
      for (const e of a.events) this.events.event(involvedObjectOf(svc, SERVICE_REF), e.type, e.reason, e.message);
      this.log.info(a.outcome === 'assigned' ? 'assigned' : 'pending', { service: key, ips: a.ips, pool: a.pool, reason: a.reason, message: a.message });
    } else {
      this.log.info('released', { service: key });
    }
  }

  private async writePool(name: string): Promise<void> {
    const pool = this.poolView.get(name);
    const draft = this.poolDrafts.get(name);
    if (!pool || !draft) return;
    const status = poolStatusFor(pool, draft, new Date());
    if (!status) return;
    this.poolView.wrote(name, pool, await this.client.replace<IPAddressPool>(IPAddressPools, { ...pool, status }, 'status'));
    const valid = draft.conditions.find((c) => c.type === PoolConditionValid);
    if (valid?.status === 'False' && !conditionSays(pool.status?.conditions, valid)) {
      // The webhook was bypassed or not installed: say it where `kubectl describe ipaddresspool` shows it.
      this.events.event(involvedObjectOf(pool, POOL_REF), 'Warning', 'InvalidConfiguration', `IPAddressPool ${JSON.stringify(name)} is not used: ${valid.message}`);
    }
  }
}

/** The addresses the speakers found held by another host before first use (status.conflicts of every pool), with why. */
export function addressConflicts(pools: readonly IPAddressPool[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const pool of pools) {
    for (const c of pool.status?.conflicts ?? []) {
      const ip = parseIPStrict(c.address);
      if (!ip) continue;
      const who = c.macs?.length ? c.macs.join(', ') : 'another host';
      out.set(formatIP(ip), `address ${formatIP(ip)} is in use on the LAN by ${who} (found by node ${JSON.stringify(c.node ?? '')} before it was announced; IPAddressPool ${JSON.stringify(pool.metadata.name ?? '')} status.conflicts)`);
    }
  }
  return out;
}

/** The new status of a pool, or undefined when the cached one already says it. */
export function poolStatusFor(pool: IPAddressPool, draft: ReturnType<typeof poolStatus>, now: Date): IPAddressPoolStatus | undefined {
  const current = pool.status ?? {};
  const generation = pool.metadata.generation;
  const counters: PoolCounters = { assignedIPv4: draft.assignedIPv4, availableIPv4: draft.availableIPv4, assignedIPv6: draft.assignedIPv6, availableIPv6: draft.availableIPv6 };
  const same =
    (Object.keys(counters) as (keyof PoolCounters)[]).every((k) => current[k] === counters[k]) &&
    current.observedGeneration === generation &&
    draft.conditions.every((c) => conditionSays(current.conditions, c));
  if (same) return undefined;
  let conditions: Condition[] = current.conditions ?? [];
  for (const c of draft.conditions) conditions = setCondition(conditions, c, now, generation);
  return { ...current, ...counters, observedGeneration: generation, conditions };
}
