// Who announces a Service's addresses: one node, the same answer on every node, computed without talking.
//
// Candidates are nodes whose speaker renews its per-node Lease (a stale Lease means the speaker is gone: that is the
// fence MetalLB's memberlist lacks), minus nodes labelled exclude-from-external-load-balancers, nodes with
// NetworkUnavailable=True, nodes no L2Advertisement allows, nodes known to lack the advertised interfaces and, for
// externalTrafficPolicy Local, nodes without a serving local endpoint. Among them a node that is not leaving
// (handover.ts: shutting down, cordoned, out of service) beats one that is, then the highest preference score wins,
// then the smallest sha256(node + "#" + address) (MetalLB's tie-break): rendezvous hashing, so adding a node moves
// only the addresses it wins and removing a node moves only the addresses it held. Every exclusion keeps its reason
// so "why does nobody announce?" has an answer (MetalLB #1154, #2274).
import { createHash } from 'node:crypto';
import type { EndpointSlice, Lease, Node, Service } from '../../api/wire.js';
import { L2ConditionAnnounced } from '../../crds/servicel2status.js';
import { readAnnotation, ANNOTATION_ALLOW_SHARED_IP } from '../../allocators/loadbalancer/service-request.js';
import type { Labels } from '../../allocators/loadbalancer/selector.js';
import { advertisementsForNode, advertisementsForService, interfacesOf, preferenceScore, type ParsedL2Advertisement } from './advertisements.js';

export const EXCLUDE_FROM_LB_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';

export type NodeExclusion = 'SpeakerNotLive' | 'ExcludedByLabel' | 'NetworkUnavailable' | 'NoMatchingAdvertisement' | 'MissingInterface' | 'NoLocalEndpoints';

export interface NodeView {
  name: string;
  labels: Labels;
  /** Set when the node can announce nothing at all. */
  exclusion?: NodeExclusion;
  /** Leaving (handover.ts): it wins only where no other node can. */
  leaving?: boolean;
}

/**
 * The speaker's lease duration in ms, finer than Lease.spec.leaseDurationSeconds (whole seconds, which tools read):
 * failover takes about one lease duration, and 1.5 s keeps its maximum under 2 s where 2 s could not.
 */
export const LEASE_DURATION_MS_ANNOTATION = 'switchboard.dev/lease-duration-ms';

/** A speaker Lease's duration: LEASE_DURATION_MS_ANNOTATION when valid, else leaseDurationSeconds. */
export function leaseDurationMs(lease: Lease): number {
  const ms = Number(lease.metadata?.annotations?.[LEASE_DURATION_MS_ANNOTATION]);
  return Number.isInteger(ms) && ms > 0 ? ms : (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
}

export interface AssessOptions {
  /** Like MetalLB's --ignore-exclude-lb. */
  ignoreExcludeLabel?: boolean;
  /** Nodes that are leaving (handover.ts). */
  leaving?: ReadonlySet<string>;
}

/** Per-node facts that do not depend on the Service. */
export function assessNodes(nodes: readonly Node[], live: ReadonlySet<string>, options: AssessOptions = {}): Map<string, NodeView> {
  const out = new Map<string, NodeView>();
  for (const node of nodes) {
    const name = node.metadata?.name ?? '';
    const labels = node.metadata?.labels ?? {};
    const networkUnavailable = (node.status?.conditions ?? []).some((c) => c.type === 'NetworkUnavailable' && c.status === 'True');
    const exclusion: NodeExclusion | undefined = !live.has(name)
      ? 'SpeakerNotLive'
      : !options.ignoreExcludeLabel && Object.prototype.hasOwnProperty.call(labels, EXCLUDE_FROM_LB_LABEL)
        ? 'ExcludedByLabel'
        : networkUnavailable
          ? 'NetworkUnavailable'
          : undefined;
    out.set(name, { name, labels, exclusion, ...(options.leaving?.has(name) ? { leaving: true } : {}) });
  }
  return out;
}

export interface ServingEndpoints {
  /** Some endpoint can serve (ready unset or true, or serving true). */
  any: boolean;
  /** Nodes with such an endpoint. */
  nodes: ReadonlySet<string>;
}

/** The serving endpoints of a Service's EndpointSlices. */
export function servingEndpoints(slices: readonly EndpointSlice[]): ServingEndpoints {
  const nodes = new Set<string>();
  let any = false;
  for (const slice of slices) {
    for (const ep of slice.endpoints ?? []) {
      const c = ep.conditions ?? {};
      if (!(c.ready === undefined || c.ready === null || c.ready === true || c.serving === true)) continue;
      any = true;
      if (ep.nodeName) nodes.add(ep.nodeName);
    }
  }
  return { any, nodes };
}

export type ElectionReason = 'Elected' | 'NoL2Advertisement' | 'SharedIPWithServiceSelector' | 'NoServingEndpoints' | 'NoEligibleNode';

export interface ElectionRequest {
  service: Service;
  /** The Service's addresses, IPv4 first; the first one is the election key (shared addresses elect together). */
  addresses: readonly string[];
  /** The advertisements covering the Service's pool (advertisementsForPool). */
  advertisements: readonly ParsedL2Advertisement[];
  endpoints: ServingEndpoints;
  /**
   * Interfaces on which each node can answer for the addresses (they exist and, unless the speaker answers outside
   * subnets, one of their subnets holds an address), as published by its speaker. Nodes not listed are assumed able.
   */
  nodeInterfaces?: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface ElectionResult {
  winner?: string;
  /** Interfaces the winner answers on; undefined means every eligible interface. */
  interfaces?: string[];
  reason: ElectionReason;
  message: string;
  /** Eligible nodes, by name. */
  eligible: string[];
  /** Excluded nodes and why, by name. */
  excluded: { node: string; reason: NodeExclusion }[];
}

/** electionHash's answers: a pass hashes every node for every address, and the pairs rarely change. */
const hashes = new Map<string, string>();
const HASH_MEMO_LIMIT = 100_000;

/** The rendezvous hash of a node for an address. */
export function electionHash(node: string, address: string): string {
  const input = `${node}#${address}`;
  let hash = hashes.get(input);
  if (hash === undefined) {
    if (hashes.size >= HASH_MEMO_LIMIT) hashes.clear();
    hash = createHash('sha256').update(input).digest('hex');
    hashes.set(input, hash);
  }
  return hash;
}

const EXCLUSION_TEXT: Record<NodeExclusion, string> = {
  SpeakerNotLive: 'without a live speaker',
  ExcludedByLabel: `labelled ${EXCLUDE_FROM_LB_LABEL}`,
  NetworkUnavailable: 'with NetworkUnavailable=True',
  NoMatchingAdvertisement: 'not selected by the nodeSelectors of any L2Advertisement',
  MissingInterface: 'without an advertised interface on the address’s subnet',
  NoLocalEndpoints: 'without a serving local endpoint (externalTrafficPolicy Local)',
};

function summarize(excluded: { node: string; reason: NodeExclusion }[]): string {
  const groups = new Map<NodeExclusion, string[]>();
  for (const e of excluded) {
    const list = groups.get(e.reason);
    if (list) list.push(e.node);
    else groups.set(e.reason, [e.node]);
  }
  return [...groups]
    .map(([reason, nodes]) => `${nodes.length} ${EXCLUSION_TEXT[reason]} (${nodes.slice(0, 5).join(', ')}${nodes.length > 5 ? ', …' : ''})`)
    .join('; ');
}

const noWinner = (reason: ElectionReason, message: string, excluded: ElectionResult['excluded'] = []): ElectionResult => ({
  reason,
  message,
  eligible: [],
  excluded,
});

/** Elects the node that announces a Service; pure and the same on every node given the same inputs. */
export function elect(req: ElectionRequest, nodes: ReadonlyMap<string, NodeView>): ElectionResult {
  const key = req.addresses[0];
  if (key === undefined) return noWinner('NoEligibleNode', 'the Service has no address to announce');
  const ads = advertisementsForService(req.advertisements, req.service.metadata?.labels);
  if (ads.length === 0) {
    const filtered = req.advertisements.length > 0 ? ' whose serviceSelectors match the Service' : '';
    return noWinner('NoL2Advertisement', `no L2Advertisement${filtered} covers the pool of ${key}; the address is allocated but not announced`);
  }
  if (readAnnotation(req.service, ANNOTATION_ALLOW_SHARED_IP) && ads.some((ad) => ad.serviceSelectors.length > 0)) {
    return noWinner('SharedIPWithServiceSelector', 'a Service sharing its address (allow-shared-ip) cannot use an L2Advertisement with serviceSelectors');
  }
  if (!req.endpoints.any) return noWinner('NoServingEndpoints', 'the Service has no serving endpoint');
  const local = req.service.spec?.externalTrafficPolicy === 'Local';

  const excluded: ElectionResult['excluded'] = [];
  let best: { node: string; staying: boolean; score: number; hash: string; ads: ParsedL2Advertisement[] } | undefined;
  const eligible: string[] = [];
  for (const view of [...nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const nodeAds = advertisementsForNode(ads, view.labels);
    const wanted = interfacesOf(nodeAds);
    const has = req.nodeInterfaces?.get(view.name);
    const exclusion: NodeExclusion | undefined =
      view.exclusion ??
      (nodeAds.length === 0
        ? 'NoMatchingAdvertisement'
        : has && (wanted ? !wanted.some((i) => has.has(i)) : has.size === 0)
          ? 'MissingInterface'
          : local && !req.endpoints.nodes.has(view.name)
            ? 'NoLocalEndpoints'
            : undefined);
    if (exclusion) {
      excluded.push({ node: view.name, reason: exclusion });
      continue;
    }
    eligible.push(view.name);
    const staying = !view.leaving;
    const score = preferenceScore(ads, view.labels);
    const hash = electionHash(view.name, key);
    const beats = !best || (staying !== best.staying ? staying : score !== best.score ? score > best.score : hash < best.hash);
    if (beats) best = { node: view.name, staying, score, hash, ads: nodeAds };
  }
  if (!best) {
    const why = excluded.length > 0 ? `: ${summarize(excluded)}` : ': there are no nodes';
    return noWinner('NoEligibleNode', `no node may announce ${key}${why}`, excluded);
  }
  return {
    winner: best.node,
    interfaces: interfacesOf(best.ads),
    reason: 'Elected',
    message: `announcing from node ${JSON.stringify(best.node)} with protocol "layer2"`,
    eligible,
    excluded,
  };
}

/** The Announced condition of a ServiceL2Status for an election (the speaker adds lastTransitionTime). */
export const announcedCondition = (r: ElectionResult): { type: typeof L2ConditionAnnounced; status: 'True' | 'False'; reason: ElectionReason; message: string } => ({
  type: L2ConditionAnnounced,
  status: r.winner ? 'True' : 'False',
  reason: r.reason,
  message: r.message,
});
