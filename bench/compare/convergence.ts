// Watches the EndpointSlices and Endpoints of the bench namespace and tells when each Service's output last became
// equal to the desired state. Convergence of a phase = the latest such moment over all Services, measured from the
// phase's last workload write, once everything matches and no slice or Endpoints event came for a quiet period
// (so a flap that is written down and up again counts from its last write, not from a transient match).
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Informer } from '../../controllers/runtime/informer.js';
import { EndpointSlices, Endpoints as EndpointsResource } from '../../api/resources.js';
import { byLabel } from '../../controllers/runtime/store.js';
import type { EndpointSlice, Endpoints } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME } from '../../controllers/endpointutil/constants.js';
import { NAMESPACE, type DesiredEndpoints, type Workload } from './workload.js';

/** Upstream's cap on addresses in one Endpoints object (the rest are left out, ready ones kept first). */
const MAX_ENDPOINTS_ADDRESSES = 1000;
const BY_SERVICE = 'service';

interface ServiceState {
  slicesMatch: boolean;
  endpointsMatch: boolean;
  /** When the slices (Endpoints) last went from differing to matching: the time of the event that did it. */
  slicesMatchedAt: number;
  endpointsMatchedAt: number;
  lastSliceEvent: number;
  lastEndpointsEvent: number;
}

export interface Convergence {
  /** Seconds from the last write until slices (Endpoints) matched; undefined: not within the timeout. */
  slicesSeconds?: number;
  endpointsSeconds?: number;
  /** Services still differing at the timeout. */
  unconverged: string[];
}

function sliceView(slices: readonly EndpointSlice[]): Map<string, boolean> | undefined {
  const view = new Map<string, boolean>();
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      const ip = endpoint.addresses[0];
      if (view.has(ip)) return undefined; // a duplicate is never the desired state
      view.set(ip, endpoint.conditions?.ready === true);
    }
  }
  return view;
}

function sameMap(a: ReadonlyMap<string, boolean>, b: ReadonlyMap<string, boolean>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function endpointsMatch(endpoints: Endpoints | undefined, desired: DesiredEndpoints): boolean {
  if (!endpoints) return desired.size === 0;
  const listed = new Map<string, boolean>();
  for (const subset of endpoints.subsets ?? []) {
    for (const a of subset.addresses ?? []) listed.set(a.ip, true);
    for (const a of subset.notReadyAddresses ?? []) listed.set(a.ip, false);
  }
  if (desired.size <= MAX_ENDPOINTS_ADDRESSES) return sameMap(listed, desired);
  // Truncated: the cap is filled, every listed address is current with its readiness, ready ones first.
  let readyDesired = 0;
  for (const ready of desired.values()) if (ready) readyDesired++;
  let readyListed = 0;
  for (const [ip, ready] of listed) {
    if (desired.get(ip) !== ready) return false;
    if (ready) readyListed++;
  }
  return listed.size === MAX_ENDPOINTS_ADDRESSES && readyListed === Math.min(readyDesired, MAX_ENDPOINTS_ADDRESSES);
}

export class ConvergenceWatcher {
  private readonly slices: Informer<EndpointSlice>;
  private readonly endpoints: Informer<Endpoints>;
  private readonly states = new Map<string, ServiceState>();
  private readonly dirty = new Set<string>();
  private desired = new Map<string, DesiredEndpoints>();
  private lastEvent = 0;

  constructor(
    client: KubeClient,
    private readonly workload: Workload,
  ) {
    this.slices = new Informer<EndpointSlice>(client, EndpointSlices, { namespace: NAMESPACE, indexers: { [BY_SERVICE]: byLabel(LABEL_ENDPOINTSLICE_SERVICE_NAME) } });
    this.endpoints = new Informer<Endpoints>(client, EndpointsResource, { namespace: NAMESPACE });
    const onSlice = (slice: EndpointSlice) => this.touch(slice.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME], 'slice');
    const onEndpoints = (endpoints: Endpoints) => this.touch(endpoints.metadata?.name, 'endpoints');
    this.slices.addEventHandler({ onAdd: onSlice, onUpdate: (_, s) => onSlice(s), onDelete: onSlice });
    this.endpoints.addEventHandler({ onAdd: onEndpoints, onUpdate: (_, e) => onEndpoints(e), onDelete: onEndpoints });
  }

  async start(): Promise<void> {
    this.slices.start();
    this.endpoints.start();
    await Promise.all([this.slices.waitForSync(), this.endpoints.waitForSync()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.slices.stop(), this.endpoints.stop()]);
  }

  /** How many slices hold at least one of `ips`: a sync that changes those endpoints writes each such slice. */
  slicesHolding(ips: ReadonlySet<string>): number {
    return this.slices.store.list().filter((slice) => slice.endpoints?.some((endpoint) => ips.has(endpoint.addresses[0]))).length;
  }

  private state(service: string): ServiceState {
    let state = this.states.get(service);
    if (!state) {
      state = { slicesMatch: false, endpointsMatch: false, slicesMatchedAt: 0, endpointsMatchedAt: 0, lastSliceEvent: 0, lastEndpointsEvent: 0 };
      this.states.set(service, state);
    }
    return state;
  }

  private touch(service: string | undefined, kind: 'slice' | 'endpoints'): void {
    if (!service) return;
    const now = Date.now();
    this.lastEvent = now;
    const state = this.state(service);
    if (kind === 'slice') state.lastSliceEvent = now;
    else state.lastEndpointsEvent = now;
    this.dirty.add(service);
  }

  /** Re-evaluates the Services whose output or desired state changed since the last call. */
  private evaluate(): void {
    if (this.workload.changed.size > 0) {
      this.desired = this.workload.desired();
      for (const service of this.workload.changed) this.dirty.add(service);
      this.workload.changed.clear();
    }
    for (const service of this.dirty) {
      const desired = this.desired.get(service) ?? new Map<string, boolean>();
      const state = this.state(service);
      const view = sliceView(this.slices.store.byIndex(BY_SERVICE, `${NAMESPACE}/${service}`));
      const slicesMatch = view !== undefined && sameMap(view, desired);
      if (slicesMatch && !state.slicesMatch) state.slicesMatchedAt = state.lastSliceEvent;
      state.slicesMatch = slicesMatch;
      const endpointsNow = endpointsMatch(this.endpoints.store.get(`${NAMESPACE}/${service}`), desired);
      if (endpointsNow && !state.endpointsMatch) state.endpointsMatchedAt = state.lastEndpointsEvent;
      state.endpointsMatch = endpointsNow;
    }
    this.dirty.clear();
  }

  /**
   * Waits until every Service matches and no event came for `quietMs`, or `timeoutMs` after `lastWriteAt`. Never
   * throws on time: an unconverged phase is reported as such.
   */
  async waitForConvergence(lastWriteAt: number, quietMs: number, timeoutMs: number): Promise<Convergence> {
    for (;;) {
      this.evaluate();
      const services = [...this.desired.keys()];
      const unconverged = services.filter((s) => !(this.state(s).slicesMatch && this.state(s).endpointsMatch));
      const now = Date.now();
      if (unconverged.length === 0 && now - Math.max(this.lastEvent, lastWriteAt) >= quietMs) {
        const since = (at: number) => Math.max(0, at - lastWriteAt) / 1000;
        return {
          slicesSeconds: Math.max(0, ...services.map((s) => since(this.state(s).slicesMatchedAt))),
          endpointsSeconds: Math.max(0, ...services.map((s) => since(this.state(s).endpointsMatchedAt))),
          unconverged: [],
        };
      }
      if (now - lastWriteAt > timeoutMs) return { unconverged };
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
