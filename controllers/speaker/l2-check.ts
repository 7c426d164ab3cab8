// What the speaker concludes from probing the LAN (prober.ts sends the probes), kept pure for the tests:
// - Self-check: for each announced address one node that does not own it (the next one in rendezvous-hash order, so
//   the probes do not grow with the number of nodes; proberFor says who when the winner is the only eligible node)
//   asks "who has it?" and expects exactly one answer, from the elected node's MAC. The outcome is the Service's
//   L2Healthy condition.
// - Conflict detection before first use (RFC 5227 2.1.1): an address nobody has announced yet is probed first, and
//   an answer from a MAC that is no speaker's means another host holds it: it is not announced, and the pool's status
//   records it so the allocator moves the Service (controllers/speaker/conflicts.ts writes it).
import type { Service } from '../../api/wire.js';
import type { AddressConflict } from '../../crds/ipaddresspool.js';
import { isHandledClass, isLoadBalancer, serviceKey } from '../../allocators/loadbalancer/service-request.js';
import type { ConditionDraft } from '../loadbalancer/conditions.js';
import { electionHash } from './election.js';
import { deputyFor, type ServicePlan } from './plan.js';

/** The Service condition type the self-check writes. */
export const L2_HEALTHY = 'L2Healthy';

export type L2Outcome = 'Answered' | 'NoAnswer' | 'ForeignResponder' | 'MultipleResponders';

export interface AddressCheck {
  address: string;
  outcome: L2Outcome;
  /** MACs that answered and belong to no speaker. */
  foreign: string[];
  message: string;
}

/**
 * The node that probes a Service's addresses. With a winner, in this order:
 * 1. the eligible node other than the winner with the smallest rendezvous hash for the election key (the winner's
 *    successor among equals), so the probes do not grow with the number of nodes;
 * 2. when the winner is the only eligible node (externalTrafficPolicy Local with one local endpoint, a nodeSelector
 *    of one node), the live node with the smallest hash among those not eligible for it but with an interface on
 *    the address's subnet (`onSubnet`, from what the speakers publish; only asked then): eligibility is about who may answer, not
 *    about who can hear, and such a node sees the same LAN as any eligible one. It still checks the winner's answer.
 * 3. when no other live node has such an interface (a one-node segment), the winner itself: its probes are sent
 *    from its interface and its own answers never come back to it (a packet socket skips what the host sent), so it
 *    hears only other responders; it cannot check its own answer, the others can (the checker counts it answered).
 * Without a winner, the Service's deputy, which then expects silence.
 */
export function proberFor(plan: ServicePlan, live: ReadonlySet<string>, onSubnet: () => Iterable<string> = () => []): string | undefined {
  const { winner, eligible } = plan.result;
  if (!winner) return deputyFor(plan.key, live);
  const key = plan.addresses[0];
  const first = (nodes: Iterable<string>): string | undefined => {
    let best: { node: string; hash: string } | undefined;
    for (const node of nodes) {
      if (node === winner || !live.has(node)) continue;
      const hash = electionHash(node, key);
      if (!best || hash < best.hash) best = { node, hash };
    }
    return best?.node;
  };
  return first(eligible) ?? first(onSubnet()) ?? (live.has(winner) ? winner : undefined);
}

const list = (xs: readonly string[]): string => xs.join(', ');

/**
 * Classifies the answers to one probe of `address`. `expected` is the node that announces it (undefined: nobody
 * should answer); `macOwners` maps every speaker's published MAC to its node.
 */
export function classify(address: string, responders: ReadonlySet<string>, expected: string | undefined, macOwners: ReadonlyMap<string, string>): AddressCheck {
  const macs = [...responders].sort();
  const foreign = macs.filter((m) => !macOwners.has(m));
  const nodes = [...new Set(macs.flatMap((m) => macOwners.get(m) ?? []))].sort();
  const expectedText = expected === undefined ? 'no node announces it' : `node ${JSON.stringify(expected)} announces it`;
  if (foreign.length > 0) {
    const also = nodes.length > 0 ? `; node${nodes.length > 1 ? 's' : ''} ${list(nodes)} answered too` : '';
    return { address, outcome: 'ForeignResponder', foreign, message: `${list(foreign)} answers for ${address}, which ${expectedText}: not a Switchboard speaker${also}` };
  }
  if (nodes.length > 1) return { address, outcome: 'MultipleResponders', foreign, message: `nodes ${list(nodes)} all answer for ${address}; ${expectedText}` };
  if (nodes.length === 1 && nodes[0] !== expected) return { address, outcome: 'MultipleResponders', foreign, message: `node ${JSON.stringify(nodes[0])} answers for ${address}, but ${expectedText}` };
  if (nodes.length === 0) {
    const message = expected === undefined ? `nothing answers for ${address}; no node announces it` : `nothing answers for ${address}, which ${expectedText}`;
    return { address, outcome: 'NoAnswer', foreign, message };
  }
  return { address, outcome: 'Answered', foreign, message: `${address} is answered by node ${JSON.stringify(expected)} only` };
}

const SEVERITY: Record<L2Outcome, number> = { Answered: 0, NoAnswer: 1, MultipleResponders: 2, ForeignResponder: 3 };

/** The Service's L2Healthy condition from its addresses' checks: the worst outcome speaks. */
export function l2HealthyCondition(checks: readonly AddressCheck[]): ConditionDraft {
  const worst = [...checks].sort((a, b) => SEVERITY[b.outcome] - SEVERITY[a.outcome] || (a.address < b.address ? -1 : 1))[0];
  if (!worst) return { type: L2_HEALTHY, status: 'Unknown', reason: 'NotProbed', message: 'no address has been probed yet' };
  if (worst.outcome === 'Answered') {
    return { type: L2_HEALTHY, status: 'True', reason: 'Answered', message: `${list(checks.map((c) => c.address))} answered by the elected node only` };
  }
  return { type: L2_HEALTHY, status: 'False', reason: worst.outcome, message: worst.message };
}

/**
 * Outcomes confirmed by `needed` identical probes in a row, per address: one lost frame or a handover caught
 * mid-way does not flip a condition (and write it twice).
 */
export class OutcomeFilter {
  private readonly seen = new Map<string, { check: AddressCheck; streak: number; confirmed?: AddressCheck }>();

  constructor(private readonly needed = 2) {}

  /** Records a check; returns the confirmed check for its address (possibly an older one). */
  record(check: AddressCheck): AddressCheck | undefined {
    const previous = this.seen.get(check.address);
    const same = previous !== undefined && previous.check.outcome === check.outcome && previous.check.message === check.message;
    const streak = same ? previous.streak + 1 : 1;
    const confirmed = streak >= this.needed ? check : previous?.confirmed;
    this.seen.set(check.address, { check, streak, confirmed });
    return confirmed;
  }

  confirmed(address: string): AddressCheck | undefined {
    return this.seen.get(address)?.confirmed;
  }

  /** Forgets addresses not in `keep` (no longer probed by this node). */
  retain(keep: ReadonlySet<string>): void {
    for (const address of this.seen.keys()) if (!keep.has(address)) this.seen.delete(address);
  }
}

export type PreUseVerdict = { kind: 'clear' } | { kind: 'conflict'; foreign: string[] } | { kind: 'busy'; nodes: string[] };

/**
 * The verdict of a probe before first use: any MAC that is no speaker's holds the address (conflict); a speaker
 * answering means a handover is in flight (busy: probe again later); silence clears it.
 */
export function preUseVerdict(responders: ReadonlySet<string>, macOwners: ReadonlyMap<string, string>): PreUseVerdict {
  const foreign = [...responders].filter((m) => !macOwners.has(m)).sort();
  if (foreign.length > 0) return { kind: 'conflict', foreign };
  const nodes = [...new Set([...responders].flatMap((m) => macOwners.get(m) ?? []))].sort();
  return nodes.length > 0 ? { kind: 'busy', nodes } : { kind: 'clear' };
}

/** A pool's conflict list with `address` set to `entry` (undefined: removed); sorted by address; same list when unchanged. */
export function withConflict(conflicts: readonly AddressConflict[] | undefined, address: string, entry: AddressConflict | undefined): AddressConflict[] {
  const rest = (conflicts ?? []).filter((c) => c.address !== address);
  return (entry ? [...rest, entry] : rest).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

/** Which Services the speakers of one installation handle: its loadBalancerClass, and whether it takes unset ones. */
export interface ClassFilter {
  loadBalancerClass?: string;
  handleUnsetClass?: boolean;
}

/**
 * The Services whose L2Healthy condition nobody maintains any more and that `node`, their deputy, removes: they carry
 * one but left the plan (no longer type LoadBalancer, no ingress left, no advertisement). A LoadBalancer Service of
 * another loadBalancerClass is left alone: the installation of that class may be the one maintaining it, and two
 * installations would otherwise remove each other's (the price: a Service moved from our class to a foreign
 * implementation keeps our last condition).
 */
export function staleHealthKeys(services: readonly Service[], planned: ReadonlySet<string>, live: ReadonlySet<string>, node: string, classes: ClassFilter): string[] {
  const out: string[] = [];
  for (const svc of services) {
    if (!(svc.status?.conditions ?? []).some((c) => c.type === L2_HEALTHY)) continue;
    if (isLoadBalancer(svc) && !isHandledClass(svc, classes.loadBalancerClass, classes.handleUnsetClass)) continue;
    const key = serviceKey(svc);
    if (!planned.has(key) && deputyFor(key, live) === node) out.push(key);
  }
  return out;
}
