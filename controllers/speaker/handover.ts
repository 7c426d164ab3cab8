// Make-before-break handover for a planned departure (the protocol is described at the top of speaker.ts).
//
// A node is *leaving* when its speaker got SIGTERM (its Lease carries LEAVING_ANNOTATION), when its Node is cordoned
// (spec.unschedulable, as `kubectl drain` does first) or when it has the node.kubernetes.io/out-of-service taint
// (non-graceful node shutdown). A leaving node loses every election to any node that is not leaving, and the
// addresses it lists in its Lease do not hold its successor back: the successor answers and sends its gratuitous
// burst at once. The leaving node keeps answering what it hands over until it has seen the successor's Lease list
// the address (plus HANDOVER_LINGER_MS, so the successor's first gratuitous frames are out), or HANDOVER_TIMEOUT_MS
// at most; then it stops. Meanwhile it answers requests but sends no gratuitous frame of its own (a takeover burst
// still running, a periodic refresh): that would move clients back to it just before it goes. A crash (SIGKILL, a frozen process) is not a departure: no annotation, the Lease fence,
// break before make.
import type { Lease, Node } from '../../api/wire.js';
import type { Announcement } from './responder.js';

/** On a speaker's Lease: its process is shutting down (SIGTERM); the value says since when (RFC 3339). */
export const LEAVING_ANNOTATION = 'switchboard.dev/leaving';
/** The taint of a node declared shut down (KEP-2268, non-graceful node shutdown). */
export const OUT_OF_SERVICE_TAINT = 'node.kubernetes.io/out-of-service';
/**
 * The longest a leaving node answers together with its successor (or waits for one): beyond it, it stops anyway.
 * The speaker's terminationGracePeriodSeconds (config/speaker, charts) must cover it plus the Lease release.
 */
export const HANDOVER_TIMEOUT_MS = 3000;
/**
 * How long a leaving node keeps answering after it has seen the successor's Lease list the address: the successor
 * answers right after that renewal returns, so this covers its first gratuitous frames being on the wire.
 */
export const HANDOVER_LINGER_MS = 250;

/** A Node that asks its workloads to move (cordoned) or was declared shut down (out-of-service taint). */
export const isLeavingNode = (node: Node): boolean =>
  node.spec?.unschedulable === true || (node.spec?.taints ?? []).some((t) => t.key === OUT_OF_SERVICE_TAINT);

/** Whether a speaker Lease says its process is shutting down. */
export const leaseSaysLeaving = (lease: Lease): boolean => lease.metadata?.annotations?.[LEAVING_ANNOTATION] !== undefined;

export interface HandoverPass {
  /** This node is leaving. */
  leaving: boolean;
  /** What this node answers now. */
  answering: ReadonlyMap<string, Announcement>;
  /** What this node wins in this pass (it answers those anyway). */
  won: ReadonlySet<string>;
  /** Addresses other live nodes' Leases list, and by whom. */
  listedByOthers: ReadonlyMap<string, string>;
  now: number;
}

interface Pending {
  announcement: Announcement;
  /** When this node stops answering at the latest. */
  until: number;
  /** The successor that listed the address, once seen. */
  successor?: string;
}

/** The leaving node's side: which addresses it still answers for a successor, and until when. */
export class Handover {
  private readonly pending = new Map<string, Pending>();

  /** `ended`: this node stopped answering an address it handed over, to `successor` or (undefined) on the timeout. */
  constructor(private readonly ended: (address: string, successor: string | undefined) => void = () => undefined) {}

  /** The addresses to keep answering in this election pass besides what it wins. */
  pass(p: HandoverPass): Map<string, Announcement> {
    const keep = new Map<string, Announcement>();
    for (const address of this.pending.keys()) {
      if (!p.leaving || p.won.has(address) || !p.answering.has(address)) this.pending.delete(address);
    }
    if (!p.leaving) return keep;
    for (const [address, announcement] of p.answering) {
      if (p.won.has(address)) continue;
      let entry = this.pending.get(address);
      if (!entry) {
        entry = { announcement, until: p.now + HANDOVER_TIMEOUT_MS };
        this.pending.set(address, entry);
      }
      const successor = p.listedByOthers.get(address);
      if (successor !== undefined && entry.successor === undefined) {
        entry.successor = successor;
        entry.until = Math.min(entry.until, p.now + HANDOVER_LINGER_MS);
      }
      if (p.now >= entry.until) {
        this.pending.delete(address);
        this.ended(address, entry.successor);
        continue;
      }
      keep.set(address, { ...entry.announcement, handingOver: true });
    }
    return keep;
  }

  /** Whether `address` is being handed over. */
  has(address: string): boolean {
    return this.pending.has(address);
  }

  /** Addresses being handed over. */
  get size(): number {
    return this.pending.size;
  }

  /** When the next pass must run to stop answering something (ms since the epoch), if any. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const p of this.pending.values()) if (next === undefined || p.until < next) next = p.until;
    return next;
  }

}
