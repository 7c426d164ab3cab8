// What the controller writes to a Service for an allocation: status.loadBalancer.ingress (with ipMode), the
// LoadBalancerIPAllocated condition and the ip-allocated-from-pool annotation. Pure; the controller compares the
// result with the cached Service and writes only differences, so a decision already recorded costs no request and
// repeats no Event (restarts included: the Service itself remembers what was said).
import type { Service } from '../../api/wire.js';
import type { Condition } from '../../crds/meta.js';
import { SERVICE_CONDITION_TYPE, allocationCondition, ingressFor, type ServiceAllocation } from '../../allocators/loadbalancer/allocator.js';
import { ANNOTATION_ALLOCATED_FROM_POOL } from '../../allocators/loadbalancer/service-request.js';
import { conditionSays, removeCondition, setCondition } from './conditions.js';

export type IPMode = 'VIP' | 'Proxy';
export type ServiceStatus = NonNullable<Service['status']>;

export interface ServiceWrite {
  /** The whole new status, when it must change. */
  status?: ServiceStatus;
  /** The new ip-allocated-from-pool annotation (null: remove it), when it must change. */
  poolAnnotation?: string | null;
}

const ingressText = (ingress: readonly { ip?: string; ipMode?: string }[] | undefined): string =>
  JSON.stringify((ingress ?? []).map((i) => [i.ip ?? '', i.ipMode ?? '']));

/** Whether Switchboard has written to this Service (its condition or annotation is there). */
export const carriesOurMarks = (svc: Service): boolean =>
  (svc.status?.conditions ?? []).some((c) => c.type === SERVICE_CONDITION_TYPE) ||
  Object.prototype.hasOwnProperty.call(svc.metadata?.annotations ?? {}, ANNOTATION_ALLOCATED_FROM_POOL);

/** The writes that make `svc` show allocation `a`. */
export function serviceWriteFor(svc: Service, a: ServiceAllocation, ipMode: IPMode, now: Date): ServiceWrite {
  const out: ServiceWrite = {};
  const current = svc.status ?? {};
  const ingress = a.outcome === 'assigned' ? ingressFor(a, ipMode) : [];
  const condition = allocationCondition(a);
  const conditions = (current.conditions ?? []) as Condition[];
  if (ingressText(current.loadBalancer?.ingress) !== ingressText(ingress) || !conditionSays(conditions, condition)) {
    out.status = {
      ...current,
      loadBalancer: { ...current.loadBalancer, ingress },
      conditions: setCondition(conditions, condition, now, svc.metadata?.generation),
    };
  }
  const pool = a.outcome === 'assigned' ? (a.pool ?? null) : null;
  const annotated = svc.metadata?.annotations?.[ANNOTATION_ALLOCATED_FROM_POOL] ?? null;
  if (pool !== annotated) out.poolAnnotation = pool;
  return out;
}

/** The writes that remove what Switchboard wrote (the Service left type LoadBalancer or our class). */
export function releaseWriteFor(svc: Service): ServiceWrite {
  if (!carriesOurMarks(svc)) return {};
  const out: ServiceWrite = {};
  const current = svc.status ?? {};
  const conditions = (current.conditions ?? []) as Condition[];
  if ((current.loadBalancer?.ingress ?? []).length > 0 || conditions.some((c) => c.type === SERVICE_CONDITION_TYPE)) {
    out.status = { ...current, loadBalancer: {}, conditions: removeCondition(conditions, SERVICE_CONDITION_TYPE) };
  }
  if (Object.prototype.hasOwnProperty.call(svc.metadata?.annotations ?? {}, ANNOTATION_ALLOCATED_FROM_POOL)) out.poolAnnotation = null;
  return out;
}
