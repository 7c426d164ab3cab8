// What this node announces, from the caches: one election per LoadBalancer Service holding addresses, then the
// announcement table (address → allowed interfaces) of the Services this node wins. Pure, so every speaker
// computes the same elections from the same inputs.
import type { EndpointSlice, Node, Service } from '../../api/wire.js';
import { formatIP, parseIPStrict, type IPAddress } from '../../api/ip.js';
import { parsePrefix, rangeContains } from '../../allocators/loadbalancer/addresses.js';
import { locateAddress, type LBPool } from '../../allocators/loadbalancer/pools.js';
import { ANNOTATION_ALLOCATED_FROM_POOL, isHandledClass, isLoadBalancer, serviceKey } from '../../allocators/loadbalancer/service-request.js';
import { advertisementsForPool, type ParsedL2Advertisement } from './advertisements.js';
import { assessNodes, elect, electionHash, servingEndpoints, type ElectionResult } from './election.js';
import type { PublishedInterface } from './node-lease.js';
import type { Announcement } from './responder.js';

export interface PlanInputs {
  self: string;
  services: readonly Service[];
  /** EndpointSlices of a Service, by its key. */
  slicesOf: (key: string) => readonly EndpointSlice[];
  nodes: readonly Node[];
  live: ReadonlySet<string>;
  /** Nodes that are leaving (handover.ts): they win only where no other node can. */
  leaving?: ReadonlySet<string>;
  pools: readonly LBPool[];
  advertisements: readonly ParsedL2Advertisement[];
  /** What each node's speaker published about its interfaces (absent: assumed able everywhere). */
  published: ReadonlyMap<string, readonly PublishedInterface[]>;
  loadBalancerClass?: string;
  handleUnsetClass?: boolean;
  ignoreExcludeLabel?: boolean;
}

export interface ServicePlan {
  key: string;
  service: Service;
  /** Canonical, IPv4 first. */
  addresses: string[];
  result: ElectionResult;
}

export interface SpeakerPlan {
  services: Map<string, ServicePlan>;
  /** The addresses this node announces. */
  table: Map<string, Announcement>;
}

/** The Service's addresses from status.loadBalancer.ingress, canonical and IPv4 first. */
export function serviceAddresses(svc: Service): string[] {
  const ips = (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [parseIPStrict(i.ip)] : [])).filter((a): a is IPAddress => a !== undefined);
  return ips.sort((a, b) => (a.family === b.family ? 0 : a.family === 'IPv4' ? -1 : 1)).map(formatIP);
}

function poolOf(svc: Service, addresses: readonly string[], pools: readonly LBPool[]): LBPool | undefined {
  for (const text of addresses) {
    const ip = parseIPStrict(text);
    const at = ip && locateAddress(pools, ip);
    if (at) return at.pool;
  }
  const named = svc.metadata?.annotations?.[ANNOTATION_ALLOCATED_FROM_POOL];
  return pools.find((p) => p.name === named);
}

/**
 * ableInterfaces' answers per published map (SpeakerLiveness keeps one until a holder or its interfaces change) and
 * addresses: an election pass asks for every Service, and parsing every node's CIDRs each time was most of its cost.
 */
const ableMemo = new WeakMap<ReadonlyMap<string, readonly PublishedInterface[]>, Map<string, ReadonlyMap<string, ReadonlySet<string>>>>();

/** Whether one of the interface's published ranges holds one of `ips`. */
export function interfaceHolds(iface: PublishedInterface, ips: readonly IPAddress[]): boolean {
  return iface.cidrs.some((c) => {
    const p = parsePrefix(c);
    return p.ok && ips.some((ip) => rangeContains(p.value.range, ip));
  });
}

/** Per node, the interfaces whose published ranges hold one of the addresses. */
export function ableInterfaces(published: ReadonlyMap<string, readonly PublishedInterface[]>, addresses: readonly string[]): ReadonlyMap<string, ReadonlySet<string>> {
  let byAddresses = ableMemo.get(published);
  if (!byAddresses) ableMemo.set(published, (byAddresses = new Map()));
  const key = addresses.join(',');
  const known = byAddresses.get(key);
  if (known) return known;
  const ips = addresses.flatMap((a) => parseIPStrict(a) ?? []);
  const out = new Map<string, Set<string>>();
  for (const [node, interfaces] of published) {
    const able = new Set<string>();
    for (const i of interfaces) if (interfaceHolds(i, ips)) able.add(i.name);
    out.set(node, able);
  }
  byAddresses.set(key, out);
  return out;
}

export function planAnnouncements(inputs: PlanInputs): SpeakerPlan {
  const views = assessNodes(inputs.nodes, inputs.live, { ignoreExcludeLabel: inputs.ignoreExcludeLabel, leaving: inputs.leaving });
  const services = new Map<string, ServicePlan>();
  for (const svc of inputs.services) {
    if (!isLoadBalancer(svc) || !isHandledClass(svc, inputs.loadBalancerClass, inputs.handleUnsetClass)) continue;
    const addresses = serviceAddresses(svc);
    if (addresses.length === 0) continue;
    const key = serviceKey(svc);
    const pool = poolOf(svc, addresses, inputs.pools);
    const result = elect(
      {
        service: svc,
        addresses,
        advertisements: pool ? advertisementsForPool(inputs.advertisements, pool) : [],
        endpoints: servingEndpoints(inputs.slicesOf(key)),
        nodeInterfaces: ableInterfaces(inputs.published, addresses),
      },
      views,
    );
    services.set(key, { key, service: svc, addresses, result });
  }
  // An address shared by Services whose elections differ (say a dual-stack and a single-stack Service) follows the
  // Service with the smallest key, so it is never announced by two nodes.
  const owner = new Map<string, ServicePlan>();
  for (const plan of [...services.values()].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    for (const address of plan.addresses) if (!owner.has(address)) owner.set(address, plan);
  }
  const table = new Map<string, Announcement>();
  for (const [address, plan] of owner) {
    if (plan.result.winner !== inputs.self) continue;
    table.set(address, { interfaces: plan.result.interfaces ? new Set(plan.result.interfaces) : undefined });
  }
  return { services, table };
}

/** The node that reports "nobody announces" for a Service: the live node with the smallest hash for its key. */
export function deputyFor(key: string, live: ReadonlySet<string>): string | undefined {
  let best: { node: string; hash: string } | undefined;
  for (const node of live) {
    const hash = electionHash(node, key);
    if (!best || hash < best.hash) best = { node, hash };
  }
  return best?.node;
}
